//! Change points in a numeric series — the per-window cost of an
//! endpoint or a function, or a benchmark's history in CI.
//!
//! [`robust`] (the default of `flameshift changepoints`, the gate's
//! history mode and the within-deploy search) is for real measurement
//! histories: it takes a season out, clips outliers, and tells level
//! changes from drifts (robust.rs). Two exact methods for clean steps,
//! usable on their own:
//!
//! - **E-Divisive means with a t-test significance step**, as Apache
//!   Otava (Hunter) does it: find the split that maximises the energy
//!   divergence between the two sides (exact, every split considered),
//!   keep it if Welch's t-test between the two sides gives p below the
//!   threshold, and recurse into both sides. Because the split tested is
//!   the best of many, its p-value is multiplied by the number of splits
//!   considered (Bonferroni) before the comparison; without it, pure noise
//!   yields change points (a test here showed it).
//! - **PELT** (Killick et al. 2012) for changes in mean under a Gaussian
//!   cost, the noise scale estimated robustly from successive differences
//!   (MAD), with a penalty of `penalty_factor × ln n` per change (3: MBIC-like,
//!   the default; 2: BIC); exact by dynamic programming with pruning.
//!
//! Each change point is reported with the means of the segments on either
//! side, the relative change and the t-test p-value between those segments.

use serde::Serialize;

use crate::stats::{mean, welch_p};

mod robust;
mod season;

pub use robust::{robust, robust_at, Drift, Period, Robust, Segmentation};
pub use season::{deseasonalize, detect_period};

/// One change point: the series shifts at `index` (the first point of the
/// new segment).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChangePoint {
    /// First index of the new segment.
    pub index: usize,
    /// Mean of the segment before.
    pub mean_before: f64,
    /// Mean of the segment after.
    pub mean_after: f64,
    /// `(after - before) / |before|` (infinite when before is 0).
    pub change: f64,
    /// Welch's t-test p-value between the two segments.
    pub p_value: f64,
}

/// Settings of E-Divisive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EDivisive {
    /// Keep a split only when the t-test p-value is below this.
    pub max_p_value: f64,
    /// Fewest points on each side of a split.
    pub min_segment: usize,
    /// Ignore changes smaller than this relative magnitude.
    pub min_change: f64,
}

impl Default for EDivisive {
    /// p < 0.001 (after the correction), segments of at least 5 points,
    /// any magnitude.
    fn default() -> Self {
        EDivisive {
            max_p_value: 0.001,
            min_segment: 5,
            min_change: 0.0,
        }
    }
}

/// The split `tau` in `min..=len-min` of `xs` with the largest energy
/// divergence, and that divergence. Exact, in O(n²): moving one point
/// from the right side to the left changes each pairwise sum by the
/// point's distances to one side, so every split is scored in one pass.
fn best_split(xs: &[f64], min: usize) -> Option<(usize, f64)> {
    let n = xs.len();
    if n < 2 * min.max(2) {
        return None;
    }
    let mut within_right: f64 = 0.0;
    for i in 0..n {
        for j in i + 1..n {
            within_right += (xs[i] - xs[j]).abs();
        }
    }
    let (mut within_left, mut between) = (0.0, 0.0);
    let mut best: Option<(usize, f64)> = None;
    for tau in 1..=n - min {
        let x = xs[tau - 1];
        let to_left: f64 = xs[..tau - 1].iter().map(|a| (a - x).abs()).sum();
        let to_right: f64 = xs[tau..].iter().map(|b| (x - b).abs()).sum();
        within_left += to_left;
        within_right -= to_right;
        between += to_right - to_left;
        if tau < min.max(2) || n - tau < 2 {
            continue;
        }
        let (l, r) = (tau as f64, (n - tau) as f64);
        let pairs = |k: f64| k * (k - 1.0) / 2.0;
        let divergence = 2.0 * between / (l * r) - within_left / pairs(l) - within_right / pairs(r);
        let score = l * r / (l + r) * divergence;
        if best.is_none_or(|(_, b)| score > b) {
            best = Some((tau, score));
        }
    }
    best
}

/// The energy divergence statistic (α = 1) of splitting `xs` at `tau`:
/// `(nm/(n+m)) · (2·E|X−Y| − E|X−X'| − E|Y−Y'|)`, directly (the
/// reference [`best_split`] is checked against).
#[cfg(test)]
fn energy(xs: &[f64], tau: usize) -> f64 {
    let (left, right) = xs.split_at(tau);
    let (n, m) = (left.len() as f64, right.len() as f64);
    if left.len() < 2 || right.len() < 2 {
        return f64::NEG_INFINITY;
    }
    let mut between = 0.0;
    for a in left {
        for b in right {
            between += (a - b).abs();
        }
    }
    let within = |side: &[f64]| {
        let mut sum = 0.0;
        for i in 0..side.len() {
            for j in i + 1..side.len() {
                sum += (side[i] - side[j]).abs();
            }
        }
        let pairs = (side.len() * (side.len() - 1) / 2) as f64;
        sum / pairs
    };
    let divergence = 2.0 * between / (n * m) - within(left) - within(right);
    n * m / (n + m) * divergence
}

/// `(after − before) / |before|`, infinite (with the sign of `after`)
/// when `before` is 0 and `after` is not.
pub(super) fn relative(before: f64, after: f64) -> f64 {
    if before == 0.0 {
        if after == 0.0 {
            0.0
        } else {
            f64::INFINITY.copysign(after)
        }
    } else {
        (after - before) / before.abs()
    }
}

/// Describes the change points `indexes` (sorted) of `xs`, comparing the
/// segments on either side of each.
pub fn describe(xs: &[f64], indexes: &[usize]) -> Vec<ChangePoint> {
    let mut bounds = vec![0];
    bounds.extend_from_slice(indexes);
    bounds.push(xs.len());
    (1..bounds.len() - 1)
        .map(|i| {
            let before = &xs[bounds[i - 1]..bounds[i]];
            let after = &xs[bounds[i]..bounds[i + 1]];
            let (mb, ma) = (mean(before), mean(after));
            ChangePoint {
                index: bounds[i],
                mean_before: mb,
                mean_after: ma,
                change: relative(mb, ma),
                p_value: welch_p(before, after),
            }
        })
        .collect()
}

/// E-Divisive means with a t-test significance step; change points in
/// index order.
pub fn e_divisive(xs: &[f64], settings: &EDivisive) -> Vec<ChangePoint> {
    let mut found = Vec::new();
    let mut pending = vec![(0usize, xs.len())];
    while let Some((start, end)) = pending.pop() {
        let segment = &xs[start..end];
        let min = settings.min_segment.max(2);
        if segment.len() < 2 * min {
            continue;
        }
        let best = best_split(segment, min);
        let Some((tau, _)) = best else { continue };
        let (left, right) = segment.split_at(tau);
        let candidates = (segment.len() - 2 * min + 1) as f64;
        let p = (welch_p(left, right) * candidates).min(1.0);
        let change = relative(mean(left), mean(right)).abs();
        if p < settings.max_p_value && change >= settings.min_change {
            found.push(start + tau);
            pending.push((start, start + tau));
            pending.push((start + tau, end));
        }
    }
    found.sort_unstable();
    describe(xs, &found)
}

/// Settings of PELT.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pelt {
    /// Penalty per change is `penalty_factor × ln n` (3: MBIC-like; 2: BIC).
    pub penalty_factor: f64,
    /// Fewest points per segment.
    pub min_segment: usize,
}

impl Default for Pelt {
    fn default() -> Self {
        Pelt {
            penalty_factor: 3.0,
            min_segment: 2,
        }
    }
}

/// A robust estimate of the noise's standard deviation: the MAD of
/// successive differences / (√2 · 0.6745), which a shift in mean barely moves.
fn noise_sd(xs: &[f64]) -> f64 {
    let mut diffs: Vec<f64> = xs.windows(2).map(|w| (w[1] - w[0]).abs()).collect();
    if diffs.is_empty() {
        return 1.0;
    }
    diffs.sort_by(f64::total_cmp);
    let median = diffs[diffs.len() / 2];
    let sd = median / (std::f64::consts::SQRT_2 * 0.674_489_75);
    if sd > 0.0 {
        sd
    } else {
        // Mostly constant series: fall back to the overall spread.
        let m = mean(xs);
        let spread = (xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / xs.len() as f64).sqrt();
        if spread > 0.0 {
            spread
        } else {
            1.0
        }
    }
}

/// The optimal partition of `0..n` into segments of at least `min`
/// points, minimising the sum of `cost(start, end)` over segments plus
/// `beta` per segment, by PELT (Killick et al. 2012): exact dynamic
/// programming, with the candidates that can never be optimal again
/// pruned. The bounds `[0, …, n]`.
pub(crate) fn optimal_partition(
    n: usize,
    min: usize,
    beta: f64,
    cost: impl Fn(usize, usize) -> f64,
) -> Vec<usize> {
    let mut best = vec![f64::INFINITY; n + 1];
    let mut last = vec![0usize; n + 1];
    best[0] = -beta;
    let mut candidates: Vec<usize> = vec![0];
    for t in min..=n {
        let mut best_here = f64::INFINITY;
        let mut arg = 0;
        for &s in &candidates {
            if t - s < min {
                continue;
            }
            let value = best[s] + cost(s, t) + beta;
            if value < best_here {
                best_here = value;
                arg = s;
            }
        }
        best[t] = best_here;
        last[t] = arg;
        // s can never be optimal again once F(s) + C(s, t) > F(t) + β (the
        // β keeps it exact with a minimum segment length).
        candidates.retain(|&s| t - s < min || best[s] + cost(s, t) <= best[t] + beta);
        if t + 1 >= 2 * min && t + min <= n {
            candidates.push(t + 1 - min);
        }
        candidates.sort_unstable();
        candidates.dedup();
    }
    let mut bounds = vec![n];
    let mut t = n;
    while t > 0 {
        t = last[t];
        bounds.push(t);
    }
    bounds.reverse();
    bounds
}

/// PELT for changes in mean; change points in index order.
pub fn pelt(xs: &[f64], settings: &Pelt) -> Vec<ChangePoint> {
    let n = xs.len();
    let min = settings.min_segment.max(1);
    if n < 2 * min {
        return Vec::new();
    }
    let sd = noise_sd(xs);
    let scaled: Vec<f64> = xs.iter().map(|x| x / sd).collect();
    let mut sum = vec![0.0; n + 1];
    let mut sum_sq = vec![0.0; n + 1];
    for (i, x) in scaled.iter().enumerate() {
        sum[i + 1] = sum[i] + x;
        sum_sq[i + 1] = sum_sq[i] + x * x;
    }
    // Cost of segment [s, t): residual sum of squares around its mean.
    let cost = |s: usize, t: usize| {
        let len = (t - s) as f64;
        let total = sum[t] - sum[s];
        (sum_sq[t] - sum_sq[s]) - total * total / len
    };
    let beta = settings.penalty_factor * (n as f64).ln();
    let bounds = optimal_partition(n, min, beta, cost);
    let found: Vec<usize> = bounds[1..bounds.len() - 1].to_vec();
    describe(xs, &found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_one_pass_split_search_equals_scoring_every_split() {
        let mut rng = crate::rng::Rng::new(5);
        for n in [10, 11, 37, 120] {
            let xs: Vec<f64> = (0..n)
                .map(|i| rng.normal() + if i > n / 3 { 1.5 } else { 0.0 })
                .collect();
            for min in [2, 5] {
                let brute = (min..=n - min)
                    .map(|tau| (tau, energy(&xs, tau)))
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .unwrap();
                let fast = best_split(&xs, min).unwrap();
                assert_eq!(fast.0, brute.0, "n {n} min {min}");
                assert!(
                    (fast.1 - brute.1).abs() < 1e-9 * brute.1.abs().max(1.0),
                    "{fast:?} {brute:?}"
                );
            }
        }
    }

    /// Deterministic noise: a small LCG mapped to roughly N(0, 1).
    fn noise(seed: u64, n: usize) -> Vec<f64> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                let mut sum = 0.0;
                for _ in 0..12 {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    sum += (state >> 11) as f64 / (1u64 << 53) as f64;
                }
                sum - 6.0
            })
            .collect()
    }

    fn series(levels: &[(usize, f64)], sd: f64, seed: u64) -> Vec<f64> {
        let total = levels.iter().map(|l| l.0).sum();
        let eps = noise(seed, total);
        let mut out = Vec::with_capacity(total);
        for &(len, level) in levels {
            for _ in 0..len {
                out.push(level + sd * eps[out.len()]);
            }
        }
        out
    }

    #[test]
    fn both_methods_find_a_fifteen_percent_step() {
        for seed in 1..=5 {
            let xs = series(&[(60, 100.0), (60, 115.0)], 2.0, seed);
            for found in [
                e_divisive(&xs, &EDivisive::default()),
                pelt(&xs, &Pelt::default()),
            ] {
                assert_eq!(found.len(), 1, "seed {seed}: {found:?}");
                assert!((found[0].index as i64 - 60).abs() <= 2, "{found:?}");
                assert!((found[0].change - 0.15).abs() < 0.02);
                assert!(found[0].p_value < 1e-6);
            }
        }
    }

    #[test]
    fn noise_alone_gives_no_change_point() {
        for seed in 1..=40 {
            let xs = series(&[(200, 50.0)], 3.0, seed);
            assert!(e_divisive(&xs, &EDivisive::default()).is_empty(), "seed {seed}");
            assert!(pelt(&xs, &Pelt::default()).is_empty(), "seed {seed}");
        }
    }

    #[test]
    fn a_regression_and_its_fix_are_two_change_points() {
        let xs = series(&[(40, 10.0), (30, 13.0), (40, 10.0)], 0.5, 7);
        for found in [
            e_divisive(&xs, &EDivisive::default()),
            pelt(&xs, &Pelt::default()),
        ] {
            let indexes: Vec<usize> = found.iter().map(|c| c.index).collect();
            assert_eq!(indexes.len(), 2, "{found:?}");
            assert!(
                (indexes[0] as i64 - 40).abs() <= 2 && (indexes[1] as i64 - 70).abs() <= 2,
                "{indexes:?}"
            );
            assert!(found[0].change > 0.25 && found[1].change < -0.2);
        }
    }

    #[test]
    fn pelt_is_exact_against_brute_force_on_small_series() {
        // Optimal partitioning by exhaustive search over all split sets.
        let xs = series(&[(6, 0.0), (6, 4.0), (5, 1.0)], 1.0, 3);
        let settings = Pelt::default();
        let sd = noise_sd(&xs);
        let scaled: Vec<f64> = xs.iter().map(|x| x / sd).collect();
        let beta = settings.penalty_factor * (xs.len() as f64).ln();
        let seg_cost = |s: &[f64]| {
            let m = mean(s);
            s.iter().map(|x| (x - m) * (x - m)).sum::<f64>()
        };
        let n = xs.len();
        let mut best = (f64::INFINITY, Vec::new());
        for mask in 0u32..(1 << (n - 1)) {
            let cuts: Vec<usize> = (1..n).filter(|i| mask & (1 << (i - 1)) != 0).collect();
            let mut bounds = vec![0];
            bounds.extend(&cuts);
            bounds.push(n);
            if bounds.windows(2).any(|w| w[1] - w[0] < settings.min_segment) {
                continue;
            }
            let total: f64 = bounds
                .windows(2)
                .map(|w| seg_cost(&scaled[w[0]..w[1]]) + beta)
                .sum();
            if total < best.0 - 1e-9 {
                best = (total, cuts);
            }
        }
        let found: Vec<usize> = pelt(&xs, &settings).iter().map(|c| c.index).collect();
        assert_eq!(found, best.1);
    }

    #[test]
    fn short_and_constant_series_are_handled() {
        assert!(e_divisive(&[], &EDivisive::default()).is_empty());
        assert!(pelt(&[1.0], &Pelt::default()).is_empty());
        let flat = vec![5.0; 50];
        assert!(e_divisive(&flat, &EDivisive::default()).is_empty());
        assert!(pelt(&flat, &Pelt::default()).is_empty());
        let mut step = vec![5.0; 20];
        step.extend(vec![6.0; 20]);
        assert_eq!(pelt(&step, &Pelt::default())[0].index, 20);
        assert_eq!(e_divisive(&step, &EDivisive::default())[0].index, 20);
    }
}
