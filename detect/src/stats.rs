//! Small statistics over slices: mean, variance, Welch's t-test and
//! Mann–Whitney U (p-values from statrs' distributions), the Hodges–Lehmann
//! shift with a bootstrap interval, and Benjamini–Hochberg q-values.

use statrs::distribution::{ContinuousCDF, StudentsT};

/// Arithmetic mean (0 for an empty slice).
pub fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Unbiased sample variance (0 below two values).
pub fn variance(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return 0.0;
    }
    let m = mean(xs);
    xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (xs.len() - 1) as f64
}

/// Two-sided p-value of Welch's t-test for a difference of means.
/// Two constant samples give 0 when their means differ, 1 when equal.
pub fn welch_p(a: &[f64], b: &[f64]) -> f64 {
    match welch_t(a, b) {
        Some((t, dist)) => (2.0 * dist.cdf(-t.abs())).clamp(0.0, 1.0),
        None if a.len() >= 2 && b.len() >= 2 && mean(a) != mean(b) => 0.0,
        None => 1.0,
    }
}

/// One-sided p-value of Welch's t-test that the mean of `b` is larger
/// than the mean of `a`.
pub fn welch_greater_p(a: &[f64], b: &[f64]) -> f64 {
    match welch_t(a, b) {
        Some((t, dist)) => dist.cdf(-t).clamp(0.0, 1.0),
        None if a.len() >= 2 && b.len() >= 2 && mean(b) > mean(a) => 0.0,
        None => 1.0,
    }
}

/// Welch's `t` of `mean(b) − mean(a)` and its t distribution, or none
/// below two values a side or without any variance.
fn welch_t(a: &[f64], b: &[f64]) -> Option<(f64, StudentsT)> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let (va, vb) = (variance(a) / a.len() as f64, variance(b) / b.len() as f64);
    let se2 = va + vb;
    if se2 <= 0.0 {
        return None;
    }
    let t = (mean(b) - mean(a)) / se2.sqrt();
    let df =
        se2 * se2 / (va * va / (a.len() - 1) as f64 + vb * vb / (b.len() - 1) as f64).max(f64::MIN_POSITIVE);
    StudentsT::new(0.0, 1.0, df).ok().map(|dist| (t, dist))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welch_matches_a_reference_value() {
        // t = -2, df = 8: R's t.test(1:5, 3:7)$p.value = 0.08051624.
        let p = welch_p(&[1.0, 2.0, 3.0, 4.0, 5.0], &[3.0, 4.0, 5.0, 6.0, 7.0]);
        assert!((p - 0.080_516_24).abs() < 1e-6, "{p}");
        assert_eq!(welch_p(&[1.0, 1.0], &[2.0, 2.0]), 0.0);
        assert_eq!(welch_p(&[1.0, 1.0], &[1.0, 1.0]), 1.0);
        assert_eq!(welch_p(&[1.0], &[2.0, 3.0]), 1.0);
        let up = welch_greater_p(&[1.0, 2.0, 3.0, 4.0, 5.0], &[3.0, 4.0, 5.0, 6.0, 7.0]);
        assert!((up - 0.080_516_24 / 2.0).abs() < 1e-6, "one-sided: {up}");
        let down = welch_greater_p(&[3.0, 4.0, 5.0, 6.0, 7.0], &[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert!((down - (1.0 - 0.080_516_24 / 2.0)).abs() < 1e-6, "{down}");
    }
}

/// Two-sided p-value of the Mann–Whitney U test (normal approximation
/// with tie correction and continuity correction); 1 when a side is empty.
pub fn mann_whitney_p(a: &[f64], b: &[f64]) -> f64 {
    let Some((excess, sd)) = mann_whitney_excess(a, b) else {
        return 1.0;
    };
    let z = (excess.abs() - 0.5).max(0.0) / sd;
    (2.0 * upper_normal_tail(z)).clamp(0.0, 1.0)
}

/// One-sided p-value of the Mann–Whitney U test that `b` tends to be
/// larger than `a` (same approximation as [`mann_whitney_p`]).
pub fn mann_whitney_greater_p(a: &[f64], b: &[f64]) -> f64 {
    let Some((excess, sd)) = mann_whitney_excess(a, b) else {
        return 1.0;
    };
    // `excess` is U of `b` minus its mean under no difference.
    upper_normal_tail((excess - 0.5) / sd).clamp(0.0, 1.0)
}

fn upper_normal_tail(z: f64) -> f64 {
    let normal = statrs::distribution::Normal::standard();
    1.0 - normal.cdf(z)
}

/// `U_b − n_a·n_b/2` and the tie-corrected standard deviation of U, or
/// none when a side is empty or every value is tied.
fn mann_whitney_excess(a: &[f64], b: &[f64]) -> Option<(f64, f64)> {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let mut all: Vec<(f64, bool)> = a
        .iter()
        .map(|&x| (x, false))
        .chain(b.iter().map(|&x| (x, true)))
        .collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    let n = all.len();
    let (mut rank_sum_b, mut tie_term) = (0.0, 0.0);
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0; // average rank of the tie group
        let size = (j - i + 1) as f64;
        tie_term += size * size * size - size;
        rank_sum_b += all[i..=j].iter().filter(|x| x.1).count() as f64 * rank;
        i = j + 1;
    }
    let u = rank_sum_b - n2 * (n2 + 1.0) / 2.0;
    let total = n1 + n2;
    let var_u = n1 * n2 / 12.0 * ((total + 1.0) - tie_term / (total * (total - 1.0)));
    (var_u > 0.0).then(|| (u - n1 * n2 / 2.0, var_u.sqrt()))
}

/// The Hodges–Lehmann estimate of the shift from `a` to `b`: the median
/// of every pairwise difference `b_j − a_i`.
pub fn hodges_lehmann(a: &[f64], b: &[f64]) -> f64 {
    let mut diffs: Vec<f64> = a.iter().flat_map(|x| b.iter().map(move |y| y - x)).collect();
    median(&mut diffs)
}

fn median(xs: &mut [f64]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(f64::total_cmp);
    let mid = xs.len() / 2;
    if xs.len().is_multiple_of(2) {
        (xs[mid - 1] + xs[mid]) / 2.0
    } else {
        xs[mid]
    }
}

/// A percentile bootstrap confidence interval (`level`, e.g. 0.95) of the
/// Hodges–Lehmann shift, from `rounds` resamples of each side with a fixed
/// seed (the same data give the same interval).
pub fn hodges_lehmann_ci(a: &[f64], b: &[f64], level: f64, rounds: usize, seed: u64) -> (f64, f64) {
    if a.is_empty() || b.is_empty() {
        return (0.0, 0.0);
    }
    let mut state = seed | 1;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let mut shifts = Vec::with_capacity(rounds);
    let (mut ra, mut rb) = (vec![0.0; a.len()], vec![0.0; b.len()]);
    for _ in 0..rounds.max(1) {
        for x in ra.iter_mut() {
            *x = a[next(a.len())];
        }
        for y in rb.iter_mut() {
            *y = b[next(b.len())];
        }
        shifts.push(hodges_lehmann(&ra, &rb));
    }
    shifts.sort_by(f64::total_cmp);
    let tail = (1.0 - level.clamp(0.0, 1.0)) / 2.0;
    let at = |q: f64| shifts[((q * (shifts.len() - 1) as f64).round() as usize).min(shifts.len() - 1)];
    (at(tail), at(1.0 - tail))
}

/// Benjamini–Hochberg q-values (adjusted p-values) of `p`, in input order.
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    benjamini_hochberg_among(p, p.len())
}

/// Benjamini–Hochberg q-values of `p` within a family of `m ≥ p.len()`
/// tests whose others were not computed because they could not be
/// significant: they count as p = 1, which leaves these q-values exactly
/// what the whole family would give them when the others are truly 1,
/// and no smaller otherwise (conservative).
pub fn benjamini_hochberg_among(p: &[f64], m: usize) -> Vec<f64> {
    let m = m.max(p.len());
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
    let mut q = vec![1.0; p.len()];
    let mut running = 1.0f64;
    for (rank, &i) in order.iter().enumerate().rev() {
        running = running.min(p[i] * m as f64 / (rank + 1) as f64);
        q[i] = running.clamp(0.0, 1.0);
    }
    q
}

#[cfg(test)]
mod comparison_tests {
    use super::*;

    #[test]
    fn mann_whitney_matches_a_reference_value() {
        // U = 0, mean 12.5, variance 25·11/12, continuity correction:
        // z = 12 / 4.787 = 2.5067, p = erfc(z/√2) = 0.0121858 (as scipy's
        // mannwhitneyu(..., method="asymptotic") reports).
        let p = mann_whitney_p(&[1.0, 2.0, 3.0, 4.0, 5.0], &[6.0, 7.0, 8.0, 9.0, 10.0]);
        assert!((p - 0.012_185_78).abs() < 1e-6, "{p}");
        assert!(mann_whitney_p(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]) > 0.9);
        assert_eq!(mann_whitney_p(&[], &[1.0]), 1.0);
        assert_eq!(mann_whitney_p(&[2.0, 2.0], &[2.0, 2.0]), 1.0, "all tied");
        // One-sided: scipy's mannwhitneyu(b, a, alternative="greater",
        // method="asymptotic") = 0.0060929.
        let a = [1.0, 2.0, 3.0, 4.0, 5.0];
        let b = [6.0, 7.0, 8.0, 9.0, 10.0];
        let up = mann_whitney_greater_p(&a, &b);
        assert!((up - 0.006_092_89).abs() < 1e-6, "{up}");
        assert!(mann_whitney_greater_p(&b, &a) > 0.99);
    }

    #[test]
    fn hodges_lehmann_and_its_interval() {
        let a: Vec<f64> = (0..40).map(|i| 100.0 + (i % 5) as f64).collect();
        let b: Vec<f64> = a.iter().map(|x| x + 15.0).collect();
        assert_eq!(hodges_lehmann(&a, &b), 15.0);
        let (low, high) = hodges_lehmann_ci(&a, &b, 0.95, 500, 7);
        assert!(low <= 15.0 && 15.0 <= high && high - low < 3.0, "({low}, {high})");
        assert_eq!(
            hodges_lehmann_ci(&a, &b, 0.95, 500, 7),
            (low, high),
            "deterministic"
        );
    }

    #[test]
    fn benjamini_hochberg_matches_a_reference() {
        // R: p.adjust(c(0.01, 0.04, 0.03, 0.005), "BH") = 0.02 0.04 0.04 0.02
        let q = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.005]);
        let expected = [0.02, 0.04, 0.04, 0.02];
        for (got, want) in q.iter().zip(expected) {
            assert!((got - want).abs() < 1e-12, "{q:?}");
        }
        assert!(benjamini_hochberg(&[]).is_empty());
        // The same family with two more tests at p = 1, left uncomputed.
        let among = benjamini_hochberg_among(&[0.01, 0.04, 0.03, 0.005], 6);
        let whole = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.005, 1.0, 1.0]);
        assert_eq!(among, whole[..4].to_vec());
        assert!((among[3] - 0.03).abs() < 1e-12, "{among:?}");
    }
}

/// A Student-t confidence interval (`level`, e.g. 0.95) of the mean of
/// `xs`; the mean itself on both ends below two values.
pub fn mean_ci(xs: &[f64], level: f64) -> (f64, f64) {
    let m = mean(xs);
    if xs.len() < 2 {
        return (m, m);
    }
    let se = (variance(xs) / xs.len() as f64).sqrt();
    let tail = (1.0 - level.clamp(0.0, 1.0)) / 2.0;
    let t = StudentsT::new(0.0, 1.0, (xs.len() - 1) as f64)
        .map(|d| d.inverse_cdf(1.0 - tail))
        .unwrap_or(f64::INFINITY);
    (m - t * se, m + t * se)
}

#[cfg(test)]
mod interval_tests {
    use super::*;

    #[test]
    fn mean_interval_matches_a_reference() {
        // R: t.test(c(1, 2, 3, 4, 5))$conf.int = 1.036757 4.963243
        let (low, high) = mean_ci(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.95);
        assert!(
            (low - 1.036_757).abs() < 1e-5 && (high - 4.963_243).abs() < 1e-5,
            "({low}, {high})"
        );
        assert_eq!(mean_ci(&[7.0], 0.95), (7.0, 7.0));
    }
}
