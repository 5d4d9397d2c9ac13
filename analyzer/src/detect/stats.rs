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
    if a.len() < 2 || b.len() < 2 {
        return 1.0;
    }
    let (va, vb) = (variance(a) / a.len() as f64, variance(b) / b.len() as f64);
    let diff = mean(a) - mean(b);
    let se2 = va + vb;
    if se2 <= 0.0 {
        return if diff == 0.0 { 1.0 } else { 0.0 };
    }
    let t = diff / se2.sqrt();
    let df =
        se2 * se2 / (va * va / (a.len() - 1) as f64 + vb * vb / (b.len() - 1) as f64).max(f64::MIN_POSITIVE);
    match StudentsT::new(0.0, 1.0, df) {
        Ok(dist) => (2.0 * dist.cdf(-t.abs())).clamp(0.0, 1.0),
        Err(_) => 1.0,
    }
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
    }
}

/// Two-sided p-value of the Mann–Whitney U test (normal approximation
/// with tie correction and continuity correction); 1 when a side is empty.
pub fn mann_whitney_p(a: &[f64], b: &[f64]) -> f64 {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    if a.is_empty() || b.is_empty() {
        return 1.0;
    }
    let mut all: Vec<(f64, bool)> = a
        .iter()
        .map(|&x| (x, true))
        .chain(b.iter().map(|&x| (x, false)))
        .collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    let n = all.len();
    let (mut rank_sum_a, mut tie_term) = (0.0, 0.0);
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0; // average rank of the tie group
        let size = (j - i + 1) as f64;
        tie_term += size * size * size - size;
        rank_sum_a += all[i..=j].iter().filter(|x| x.1).count() as f64 * rank;
        i = j + 1;
    }
    let u = rank_sum_a - n1 * (n1 + 1.0) / 2.0;
    let mean_u = n1 * n2 / 2.0;
    let total = n1 + n2;
    let var_u = n1 * n2 / 12.0 * ((total + 1.0) - tie_term / (total * (total - 1.0)));
    if var_u <= 0.0 {
        return 1.0;
    }
    let z = ((u - mean_u).abs() - 0.5).max(0.0) / var_u.sqrt();
    let normal = statrs::distribution::Normal::standard();
    (2.0 * (1.0 - normal.cdf(z))).clamp(0.0, 1.0)
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
    if xs.len() % 2 == 0 {
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
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
    let mut q = vec![1.0; m];
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
    }
}
