//! The default change-point method for real measurement histories: level
//! changes, told apart from drifts, seasons and outliers.
//!
//! 1. **Season.** A clear period (given, or found by
//!    [`detect_period`](super::season::detect_period)) is taken out first.
//! 2. **Outliers.** A spike — up to three points more than five robust
//!    standard deviations from the running median of five — is replaced by
//!    that median (and reported): it cannot make a segment. (Clipping
//!    every point to 2.5 deviations as well, Huber's way, scored worse on
//!    the corpus: it hides noise the penalty needs to see.)
//! 3. **Segments.** PELT finds the optimal partition into segments that
//!    are each flat or a straight line, with a penalty of
//!    `penalty_factor · σ² · ln n` per segment and `σ² · ln n` more for a
//!    slope (BIC's price of a parameter: a step is not fitted as a line). σ² is the noise variance
//!    seen in successive differences or, when larger, the long-run
//!    variance `v·(1+ρ)/(1−ρ)` of the partition's residuals (v their
//!    variance, ρ their lag-one autocorrelation; the partition is found
//!    again with it, up to four times), so that a wandering series is not
//!    cut at each swing.
//! 4. **Change points or drift.** At each boundary, the two separate lines
//!    are tested against the best continuous bent line over both segments
//!    (its bend anywhere within a segment's length of the boundary): when
//!    the separate lines fit significantly better (χ² with one degree of
//!    freedom, `max_p_value`) and the levels where they meet differ by at
//!    least `min_change` (a segment whose slope is not significant counts
//!    as flat), the boundary is a change point; otherwise it is only a
//!    change of slope, which a misplaced bend would otherwise pass for. Segments whose slope is significant are reported
//!    as drifts (consecutive ones of one sign merged), with their slope
//!    per point and where they start — a trend is one drift, not a
//!    staircase of steps.
//!
//! The defaults were chosen on the evaluation corpus
//! (fixtures/changepoints/, docs/detection.md).

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal};

use super::season::{deseasonalize, detect_period, mad_sd, median, running_median};
use super::{optimal_partition, relative, ChangePoint};

/// Settings of the robust method.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Robust {
    /// Penalty per segment, in units of `σ² · ln n`.
    pub penalty_factor: f64,
    /// Fewest points per segment (at least 3: a line needs them).
    pub min_segment: usize,
    /// The seasonal period.
    pub period: Period,
    /// A jump is a change point when its two-sided p-value is below this;
    /// a slope is a drift likewise.
    pub max_p_value: f64,
    /// Ignore jumps (and drifts, over their whole length) smaller than this
    /// relative magnitude.
    pub min_change: f64,
}

impl Default for Robust {
    fn default() -> Self {
        Robust {
            penalty_factor: 4.0,
            min_segment: 5,
            period: Period::Detect,
            max_p_value: 0.01,
            min_change: 0.0,
        }
    }
}

/// Where the seasonal period comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// Found in the series, if it has a clear one.
    Detect,
    /// No seasonality.
    None,
    /// This many points per cycle.
    Every(usize),
}

/// A slow trend: the series rises (or falls) steadily from `start` to
/// `end`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drift {
    /// First index of the drift.
    pub start: usize,
    /// Last index of the drift.
    pub end: usize,
    /// Change per point (per unit of position).
    pub slope: f64,
    /// `slope` relative to the level where the drift starts.
    pub relative_slope: f64,
    /// Level (fitted) where the drift starts.
    pub level_start: f64,
    /// Level (fitted) where it ends.
    pub level_end: f64,
    /// Relative change over the whole drift.
    pub change: f64,
    /// Two-sided p-value of the slope (the largest of merged segments).
    pub p_value: f64,
}

/// What the robust method finds in a series.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Segmentation {
    /// Level changes, in index order.
    pub change_points: Vec<ChangePoint>,
    /// Trends, in index order.
    pub drifts: Vec<Drift>,
    /// The seasonal period taken out, if any.
    pub period: Option<usize>,
    /// Indexes of the points set aside as outliers (beyond five robust
    /// standard deviations of their neighbourhood).
    pub outliers: Vec<usize>,
}

/// [`robust_at`] with positions `0, 1, 2, …`.
pub fn robust(xs: &[f64], settings: &Robust) -> Segmentation {
    let positions: Vec<usize> = (0..xs.len()).collect();
    robust_at(xs, &positions, settings)
}

/// Change points, drifts, season and outliers of `xs`, whose values were
/// measured at increasing `positions` (rows of a file with gaps: slopes
/// are per position and seasons follow positions). Indexes in the result
/// are into `xs`.
pub fn robust_at(xs: &[f64], positions: &[usize], settings: &Robust) -> Segmentation {
    let min = settings.min_segment.max(3);
    let n = xs.len();
    if n < 2 * min || positions.len() != n {
        return Segmentation::default();
    }
    let period = match settings.period {
        Period::Detect => detect_period(xs),
        Period::None => None,
        Period::Every(p) => Some(p).filter(|&p| p >= 2 && n >= 2 * p),
    };
    let adjusted = match period {
        Some(p) => deseasonalize(xs, positions, p),
        None => xs.to_vec(),
    };
    let (clipped, outliers) = replace_outliers(&adjusted);
    let centre = median(&clipped);
    let sigma = noise_sd(&clipped);
    let scaled: Vec<f64> = clipped.iter().map(|x| (x - centre) / sigma).collect();
    let t0 = positions[0] as f64;
    let times: Vec<f64> = positions.iter().map(|&p| p as f64 - t0).collect();
    let sums = Sums::new(&times, &scaled);
    let beta = settings.penalty_factor * (n as f64).ln();
    let slope_penalty = (n as f64).ln();
    // The noise level: successive differences hide autocorrelation and
    // wander, which the residuals of a partition show; the penalty grows
    // with their long-run variance until it no longer does.
    let mut bounds = partition(&sums, min, beta, slope_penalty);
    let mut variance = 1.0;
    for _ in 0..4 {
        let next = long_run_variance(&sums, &times, &scaled, &bounds).max(1.0);
        if next <= variance * 1.05 {
            break;
        }
        variance = next;
        bounds = partition(&sums, min, beta * variance, slope_penalty * variance);
    }
    let unscale = |v: f64| centre + sigma * v;
    let lines = bounds
        .windows(2)
        .map(|w| Line::fit(&sums, w[0], w[1], variance, settings.max_p_value))
        .collect::<Vec<_>>();
    let mut change_points = Vec::new();
    let mut jump_after = vec![false; lines.len()];
    for (k, pair) in lines.windows(2).enumerate() {
        let (a, b) = (&pair[0], &pair[1]);
        let at = (times[a.end - 1] + times[b.start]) / 2.0;
        let (before, after) = (a.at(at), b.at(at));
        let p_value = jump_p(&times, &scaled, a, b, min, variance);
        let (before, after) = (unscale(before), unscale(after));
        let change = relative(before, after);
        if p_value < settings.max_p_value && change.abs() >= settings.min_change {
            jump_after[k] = true;
            change_points.push(ChangePoint {
                index: b.start,
                mean_before: before,
                mean_after: after,
                change,
                p_value,
            });
        }
    }
    let mut drifts: Vec<Drift> = Vec::new();
    for (k, line) in lines.iter().enumerate() {
        if !line.sloped {
            continue;
        }
        let (start, end) = (line.start, line.end - 1);
        let (level_start, level_end) = (unscale(line.at(times[start])), unscale(line.at(times[end])));
        let slope = line.slope * sigma;
        let continues = k > 0 && !jump_after[k - 1] && lines[k - 1].sloped;
        match drifts.last_mut() {
            Some(last) if continues && last.slope.signum() == slope.signum() => {
                last.end = end;
                last.level_end = level_end;
                last.change = relative(last.level_start, level_end);
                last.slope = (level_end - last.level_start) / (times[end] - times[last.start]).max(1.0);
                last.relative_slope = relative_slope(last.slope, last.level_start);
                last.p_value = last.p_value.max(line.p_value);
            }
            _ => drifts.push(Drift {
                start,
                end,
                slope,
                relative_slope: relative_slope(slope, level_start),
                level_start,
                level_end,
                change: relative(level_start, level_end),
                p_value: line.p_value,
            }),
        }
    }
    drifts.retain(|d| d.change.abs() >= settings.min_change);
    Segmentation {
        change_points,
        drifts,
        period,
        outliers,
    }
}

fn relative_slope(slope: f64, level: f64) -> f64 {
    if level == 0.0 {
        0.0
    } else {
        slope / level.abs()
    }
}

fn two_sided_p(z: f64) -> f64 {
    if !z.is_finite() {
        return if z.is_nan() { 1.0 } else { 0.0 };
    }
    let normal = Normal::standard();
    (2.0 * normal.cdf(-z.abs())).clamp(0.0, 1.0)
}

/// `xs` with each spike (up to three points beyond [`OUTLIER_SDS`]
/// robust standard deviations of the running median of five) replaced by
/// that median, and the indexes of those points; none when they would be
/// more than one point in ten.
fn replace_outliers(xs: &[f64]) -> (Vec<f64>, Vec<usize>) {
    let local = running_median(xs, 2);
    let residuals: Vec<f64> = xs.iter().zip(&local).map(|(x, m)| x - m).collect();
    // A running median follows the noise (a fifth of the residuals are
    // zero), so their spread understates it; the differences' does not.
    let sd = mad_sd(&residuals).max(noise_sd(xs));
    if sd <= 1e-9 * median(xs).abs() {
        return (xs.to_vec(), Vec::new());
    }
    let n = xs.len();
    // Near the ends the running median lags a trend; a point there is far
    // only if it is far from the line through its next two points too.
    let extrapolated = |i: usize| match i {
        _ if n < 5 => None,
        0 | 1 => Some(2.0 * xs[i + 1] - xs[i + 2]),
        _ if i + 2 >= n => Some(2.0 * xs[i - 1] - xs[i - 2]),
        _ => None,
    };
    let far: Vec<bool> = (0..n)
        .map(|i| {
            let beyond = |reference: f64| (xs[i] - reference).abs() > OUTLIER_SDS * sd;
            beyond(local[i]) && extrapolated(i).is_none_or(beyond)
        })
        .collect();
    // A spike is up to three points (shorter than any segment); a longer
    // run far from the running median is the series itself moving.
    let mut outliers = Vec::new();
    let mut i = 0;
    while i < far.len() {
        let run = far[i..].iter().take_while(|&&f| f).count();
        if (1..=3).contains(&run) {
            outliers.extend(i..i + run);
        }
        i += run.max(1);
    }
    if outliers.len() * 10 > xs.len() {
        // More than one point in ten: not outliers but the noise itself.
        return (xs.to_vec(), Vec::new());
    }
    let mut replaced = xs.to_vec();
    for &i in &outliers {
        replaced[i] = local[i];
    }
    (replaced, outliers)
}

/// How far from its neighbourhood's median a point is an outlier, in
/// robust standard deviations (normal noise goes beyond it once in about
/// 2,000 points).
const OUTLIER_SDS: f64 = 5.0;

/// The noise's standard deviation from successive differences (their
/// robust spread about their median, over √2), which neither a level
/// change nor a trend moves much; the plain spread of the differences
/// when most are equal, and a tiny positive number for a constant series.
fn noise_sd(xs: &[f64]) -> f64 {
    let diffs: Vec<f64> = xs.windows(2).map(|w| w[1] - w[0]).collect();
    let robust = mad_sd(&diffs) / std::f64::consts::SQRT_2;
    if robust > 0.0 {
        return robust;
    }
    let m = diffs.iter().sum::<f64>() / diffs.len().max(1) as f64;
    let spread = (diffs.iter().map(|d| (d - m) * (d - m)).sum::<f64>() / diffs.len().max(1) as f64).sqrt()
        / std::f64::consts::SQRT_2;
    if spread > 0.0 {
        spread
    } else {
        1e-9 * median(xs).abs().max(1.0)
    }
}

/// The p-value that segments `a` and `b` (adjacent) differ by a jump
/// rather than only by a bend: the residual sum of squares of the best
/// continuous bent line over both (bend at any point within `reach` of
/// the boundary) against that of two separate lines, in units of the
/// noise `variance`, as χ² with one degree of freedom.
fn jump_p(times: &[f64], ys: &[f64], a: &Line, b: &Line, reach: usize, variance: f64) -> f64 {
    let (start, end) = (a.start, b.end);
    let separate = a.rss + b.rss;
    let bends = b.start.saturating_sub(reach).max(start + 2)..(b.start + reach).min(end - 2);
    let bent = bends
        .map(|h| bent_line_rss(&times[start..end], &ys[start..end], times[h]))
        .fold(f64::INFINITY, f64::min);
    if !bent.is_finite() {
        return 1.0;
    }
    let excess = (bent - separate).max(0.0) / variance;
    two_sided_p(excess.sqrt())
}

/// Residual sum of squares of the least-squares fit of
/// `y = c₀ + c₁·t + c₂·max(0, t − bend)`.
fn bent_line_rss(times: &[f64], ys: &[f64], bend: f64) -> f64 {
    let t0 = times[0];
    let rows = times.iter().map(|&t| [1.0, t - t0, (t - bend).max(0.0)]);
    let mut xtx = [[0.0f64; 3]; 3];
    let mut xty = [0.0f64; 3];
    for (row, &y) in rows.clone().zip(ys) {
        for i in 0..3 {
            xty[i] += row[i] * y;
            for j in 0..3 {
                xtx[i][j] += row[i] * row[j];
            }
        }
    }
    let Some(c) = solve3(xtx, xty) else {
        return f64::INFINITY;
    };
    rows.zip(ys)
        .map(|(row, &y)| {
            let fit = c[0] * row[0] + c[1] * row[1] + c[2] * row[2];
            (y - fit) * (y - fit)
        })
        .sum()
}

/// Solves the 3×3 system `a·x = b` by Gaussian elimination with partial
/// pivoting; `None` when it is singular.
fn solve3(mut a: [[f64; 3]; 3], mut b: [f64; 3]) -> Option<[f64; 3]> {
    for col in 0..3 {
        let pivot = (col..3).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..3 {
            let factor = a[row][col] / a[col][col];
            let pivot_row = a[col];
            for (cell, above) in a[row].iter_mut().zip(pivot_row).skip(col) {
                *cell -= factor * above;
            }
            b[row] -= factor * b[col];
        }
    }
    let mut x = [0.0; 3];
    for row in (0..3).rev() {
        let rest: f64 = (row + 1..3).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - rest) / a[row][row];
    }
    Some(x)
}

/// Prefix sums for the least-squares line of any segment in O(1).
struct Sums {
    n: Vec<f64>,
    t: Vec<f64>,
    tt: Vec<f64>,
    y: Vec<f64>,
    yy: Vec<f64>,
    ty: Vec<f64>,
}

impl Sums {
    fn new(times: &[f64], ys: &[f64]) -> Sums {
        let len = ys.len() + 1;
        let mut s = Sums {
            n: vec![0.0; len],
            t: vec![0.0; len],
            tt: vec![0.0; len],
            y: vec![0.0; len],
            yy: vec![0.0; len],
            ty: vec![0.0; len],
        };
        for (i, (&t, &y)) in times.iter().zip(ys).enumerate() {
            s.n[i + 1] = s.n[i] + 1.0;
            s.t[i + 1] = s.t[i] + t;
            s.tt[i + 1] = s.tt[i] + t * t;
            s.y[i + 1] = s.y[i] + y;
            s.yy[i + 1] = s.yy[i] + y * y;
            s.ty[i + 1] = s.ty[i] + t * y;
        }
        s
    }

    /// (count, Σt, Σt², Σy, Σy², Σty) over `[a, b)`.
    fn over(&self, a: usize, b: usize) -> [f64; 6] {
        [
            self.n[b] - self.n[a],
            self.t[b] - self.t[a],
            self.tt[b] - self.tt[a],
            self.y[b] - self.y[a],
            self.yy[b] - self.yy[a],
            self.ty[b] - self.ty[a],
        ]
    }

    /// Residual sums of squares over `[a, b)` of the mean and of the
    /// least-squares line.
    fn rss(&self, a: usize, b: usize) -> (f64, f64) {
        let [n, st, stt, sy, syy, sty] = self.over(a, b);
        let sxx = stt - st * st / n;
        let flat = (syy - sy * sy / n).max(0.0);
        let sxy = sty - st * sy / n;
        let line = if sxx > 0.0 { flat - sxy * sxy / sxx } else { flat };
        (flat, line.max(0.0))
    }

    /// The cost of `[a, b)` as one segment: its residual sum of squares
    /// around its mean, or around its line plus `slope_penalty`.
    fn cost(&self, a: usize, b: usize, slope_penalty: f64) -> f64 {
        let (flat, line) = self.rss(a, b);
        flat.min(line + slope_penalty)
    }
}

/// PELT over segments of at least `min` points, each flat or a line
/// (which costs `slope_penalty` more), with penalty `beta` per segment:
/// the segment bounds `[0, …, n]`.
fn partition(sums: &Sums, min: usize, beta: f64, slope_penalty: f64) -> Vec<usize> {
    optimal_partition(sums.n.len() - 1, min, beta, |s, t| sums.cost(s, t, slope_penalty))
}

/// The residuals' long-run variance (in units of the scaled series):
/// their variance times `(1+ρ)/(1−ρ)`, ρ their lag-one autocorrelation
/// within segments (clamped to [0, 0.9]).
fn long_run_variance(sums: &Sums, times: &[f64], ys: &[f64], bounds: &[usize]) -> f64 {
    let mut residuals: Vec<Vec<f64>> = Vec::new();
    for w in bounds.windows(2) {
        let line = Line::fit(sums, w[0], w[1], 1.0, 1.0);
        residuals.push((w[0]..w[1]).map(|i| ys[i] - line.at(times[i])).collect());
    }
    let all: Vec<f64> = residuals.iter().flatten().copied().collect();
    let dof = (all.len() as f64 - 2.0 * residuals.len() as f64).max(1.0);
    let variance = all.iter().map(|r| r * r).sum::<f64>() / dof;
    let lagged: f64 = residuals
        .iter()
        .map(|r| r.windows(2).map(|w| w[0] * w[1]).sum::<f64>())
        .sum();
    let total: f64 = all.iter().map(|r| r * r).sum();
    let rho = if total > 0.0 {
        (lagged / total).clamp(0.0, 0.9)
    } else {
        0.0
    };
    variance * (1.0 + rho) / (1.0 - rho)
}

/// A segment's least-squares line, or its mean when the slope is not
/// significant.
struct Line {
    start: usize,
    end: usize,
    mean_t: f64,
    level: f64,
    slope: f64,
    sloped: bool,
    p_value: f64,
    /// Residual sum of squares of the least-squares line (sloped or not).
    rss: f64,
}

impl Line {
    fn fit(sums: &Sums, start: usize, end: usize, variance: f64, max_p_value: f64) -> Line {
        let [n, st, stt, sy, _, sty] = sums.over(start, end);
        let mean_t = st / n;
        let sxx = stt - st * st / n;
        let slope = if sxx > 0.0 { (sty - st * sy / n) / sxx } else { 0.0 };
        let p_value = if sxx > 0.0 {
            two_sided_p(slope / (variance / sxx).sqrt())
        } else {
            1.0
        };
        let sloped = p_value < max_p_value;
        Line {
            rss: sums.rss(start, end).1,
            start,
            end,
            mean_t,
            level: sy / n,
            slope: if sloped { slope } else { 0.0 },
            sloped,
            p_value,
        }
    }

    /// The fitted value at time `t`.
    fn at(&self, t: f64) -> f64 {
        self.level + self.slope * (t - self.mean_t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn noise(seed: u64, n: usize, sd: f64) -> Vec<f64> {
        let mut rng = Rng::new(seed);
        (0..n).map(|_| sd * rng.normal()).collect()
    }

    #[test]
    fn a_step_is_a_change_point_and_not_a_drift() {
        for seed in 1..=10 {
            let xs: Vec<f64> = noise(seed, 100, 1.0)
                .iter()
                .enumerate()
                .map(|(i, e)| 100.0 + e + if i >= 40 { 5.0 } else { 0.0 })
                .collect();
            let found = robust(&xs, &Robust::default());
            let indexes: Vec<usize> = found.change_points.iter().map(|c| c.index).collect();
            assert_eq!(indexes.len(), 1, "seed {seed}: {found:?}");
            assert!(indexes[0].abs_diff(40) <= 2, "seed {seed}: {indexes:?}");
            assert!((found.change_points[0].change - 0.05).abs() < 0.01);
            assert!(found.drifts.is_empty(), "seed {seed}: {:?}", found.drifts);
        }
    }

    #[test]
    fn a_trend_is_one_drift_not_a_staircase() {
        for seed in 1..=10 {
            let xs: Vec<f64> = noise(seed, 120, 1.0)
                .iter()
                .enumerate()
                .map(|(i, e)| 100.0 + e + if i >= 50 { 0.4 * (i - 50) as f64 } else { 0.0 })
                .collect();
            let found = robust(&xs, &Robust::default());
            assert!(
                found.change_points.is_empty(),
                "seed {seed}: {:?}",
                found.change_points
            );
            assert_eq!(found.drifts.len(), 1, "seed {seed}: {:?}", found.drifts);
            let drift = &found.drifts[0];
            assert!(drift.start.abs_diff(50) <= 8, "{drift:?}");
            assert!((drift.slope - 0.4).abs() < 0.08, "{drift:?}");
        }
    }

    #[test]
    fn a_spike_is_an_outlier_not_a_change_point() {
        for seed in 1..=10 {
            let mut xs: Vec<f64> = noise(seed, 80, 1.0).iter().map(|e| 50.0 + e).collect();
            xs[30] += 40.0;
            xs[31] += 35.0;
            let found = robust(&xs, &Robust::default());
            assert!(found.change_points.is_empty(), "seed {seed}: {found:?}");
            assert!(found.outliers.contains(&30), "{:?}", found.outliers);
        }
    }

    #[test]
    fn a_season_gives_no_change_point_but_a_step_within_it_does() {
        for seed in 1..=10 {
            let e = noise(seed, 144, 1.0);
            let season = |i: usize| 100.0 + 12.0 * ((i % 12) as f64 / 12.0 * std::f64::consts::TAU).sin();
            let plain: Vec<f64> = (0..144).map(|i| season(i) + e[i]).collect();
            let found = robust(&plain, &Robust::default());
            assert_eq!(found.period, Some(12));
            assert!(found.change_points.is_empty(), "seed {seed}: {found:?}");
            let stepped: Vec<f64> = (0..144)
                .map(|i| season(i) + e[i] + if i >= 100 { 6.0 } else { 0.0 })
                .collect();
            let found = robust(&stepped, &Robust::default());
            let indexes: Vec<usize> = found.change_points.iter().map(|c| c.index).collect();
            assert!(
                indexes.len() == 1 && indexes[0].abs_diff(100) <= 3,
                "seed {seed}: {indexes:?}"
            );
        }
    }

    #[test]
    fn autocorrelated_noise_is_not_cut_at_every_swing() {
        let mut false_points = 0;
        for seed in 1..=20 {
            let e = noise(seed, 150, 1.0);
            let mut x = 0.0;
            let xs: Vec<f64> = e
                .iter()
                .map(|e| {
                    x = 0.7 * x + e;
                    100.0 + x
                })
                .collect();
            false_points += robust(&xs, &Robust::default()).change_points.len();
        }
        // PELT on the differences' noise level finds 38 here.
        assert!(
            false_points <= 6,
            "{false_points} change points in 20 AR(1) series"
        );
    }

    #[test]
    fn gaps_keep_slopes_per_position() {
        let positions: Vec<usize> = (0..60).map(|i| i + i / 10).collect();
        let xs: Vec<f64> = positions.iter().map(|&p| 10.0 + 0.5 * p as f64).collect();
        let found = robust_at(&xs, &positions, &Robust::default());
        assert!(found.change_points.is_empty(), "{found:?}");
        assert_eq!(found.drifts.len(), 1, "{found:?}");
        assert!((found.drifts[0].slope - 0.5).abs() < 1e-6, "{found:?}");
    }

    #[test]
    fn short_and_constant_series_are_handled() {
        assert_eq!(robust(&[], &Robust::default()), Segmentation::default());
        assert_eq!(robust(&[1.0; 5], &Robust::default()), Segmentation::default());
        let flat = robust(&[7.0; 40], &Robust::default());
        assert!(
            flat.change_points.is_empty() && flat.drifts.is_empty(),
            "{flat:?}"
        );
        let mut step = vec![5.0; 20];
        step.extend(vec![6.0; 20]);
        let found = robust(&step, &Robust::default());
        assert_eq!(found.change_points.len(), 1, "{found:?}");
        assert_eq!(found.change_points[0].index, 20);
    }
}
