//! Seasonality: finding a series' period and taking its seasonal pattern
//! out before change points are looked for, so that a yearly cycle in a
//! monthly series is not read as a staircase of level changes.

use statrs::distribution::{ContinuousCDF, FisherSnedecor};

/// Median of `xs` (sorted in place; 0 for an empty slice).
pub(crate) fn median_in_place(xs: &mut [f64]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(f64::total_cmp);
    let mid = xs.len() / 2;
    if xs.len() % 2 == 1 {
        xs[mid]
    } else {
        (xs[mid - 1] + xs[mid]) / 2.0
    }
}

/// Median of `xs`.
pub(crate) fn median(xs: &[f64]) -> f64 {
    median_in_place(&mut xs.to_vec())
}

/// The median absolute deviation from the median, scaled by 1.4826 to
/// estimate a normal standard deviation.
pub(crate) fn mad_sd(xs: &[f64]) -> f64 {
    let m = median(xs);
    let mut deviations: Vec<f64> = xs.iter().map(|x| (x - m).abs()).collect();
    1.4826 * median_in_place(&mut deviations)
}

/// The running median of `xs` over `2·half + 1` points (shorter at the
/// ends).
pub(crate) fn running_median(xs: &[f64], half: usize) -> Vec<f64> {
    let mut window = Vec::with_capacity(2 * half + 1);
    (0..xs.len())
        .map(|i| {
            window.clear();
            window.extend_from_slice(&xs[i.saturating_sub(half)..(i + half + 1).min(xs.len())]);
            median_in_place(&mut window)
        })
        .collect()
}

/// The running mean of `xs` over `2·half + 1` points (shorter at the
/// ends), in O(n) from prefix sums.
fn running_mean(prefix: &[f64], half: usize) -> Vec<f64> {
    let n = prefix.len() - 1;
    (0..n)
        .map(|i| {
            let (a, b) = (i.saturating_sub(half), (i + half + 1).min(n));
            (prefix[b] - prefix[a]) / (b - a) as f64
        })
        .collect()
}

/// How strongly `xs` repeats with period `period`: the F-test p-value of
/// its phase means (`index % period`) after the running mean over one
/// period is taken out (a trend or a level change goes with it), and the
/// share of that detrended variance the phase means explain. `prefix`
/// holds the prefix sums of `xs`.
fn seasonality(xs: &[f64], prefix: &[f64], period: usize) -> (f64, f64) {
    let level = running_mean(prefix, period / 2);
    let detrended: Vec<f64> = xs.iter().zip(&level).map(|(x, l)| x - l).collect();
    let mut sums = vec![0.0; period];
    let mut counts = vec![0.0; period];
    for (i, r) in detrended.iter().enumerate() {
        sums[i % period] += r;
        counts[i % period] += 1.0;
    }
    let n = detrended.len() as f64;
    let grand = detrended.iter().sum::<f64>() / n;
    let means: Vec<f64> = sums.iter().zip(&counts).map(|(s, c)| s / c).collect();
    let between: f64 = means
        .iter()
        .zip(&counts)
        .map(|(m, c)| c * (m - grand).powi(2))
        .sum();
    let within: f64 = detrended
        .iter()
        .enumerate()
        .map(|(i, r)| (r - means[i % period]).powi(2))
        .sum();
    let (df1, df2) = ((period - 1) as f64, n - period as f64);
    if within <= 0.0 || df2 < 1.0 {
        return (
            if between > 0.0 { 0.0 } else { 1.0 },
            if between > 0.0 { 1.0 } else { 0.0 },
        );
    }
    let f = (between / df1) / (within / df2);
    let p = FisherSnedecor::new(df1, df2).map_or(1.0, |d| d.sf(f));
    (p, between / (between + within))
}

/// The period of a seasonal series, if it has a clear one: of the periods
/// from 2 to a third of the series (three cycles at least), the one whose
/// phase means are the most significant ([`seasonality`]), when that
/// p-value is below 10⁻⁶ (many periods are tried) and the phase means
/// explain at least half of the detrended variance. A trend or a level
/// change is taken out with the running mean before the test, so it
/// does not pass for a season.
pub fn detect_period(xs: &[f64]) -> Option<usize> {
    if xs.len() < 12 {
        return None;
    }
    let longest = (xs.len() / 3).min(MAX_PERIOD);
    let mut prefix = vec![0.0; xs.len() + 1];
    for (i, x) in xs.iter().enumerate() {
        prefix[i + 1] = prefix[i] + x;
    }
    (2..=longest)
        .map(|p| (p, seasonality(xs, &prefix, p)))
        .filter(|(_, (p_value, share))| *p_value < 1e-6 && *share >= 0.5)
        .min_by(|a, b| a.1 .0.total_cmp(&b.1 .0))
        .map(|(p, _)| p)
}

/// The longest period looked for (a year of weeks, or five days of hours).
const MAX_PERIOD: usize = 120;

/// `xs` with its seasonal pattern of period `period` taken out: each
/// point's ratio to (or, when some value is not positive, difference
/// from) the running median over one period, the median of those per
/// phase (`position % period`) as the season, normalised to average 1
/// (or 0), and each point divided by (or less) its phase's season. Ratios
/// keep a season that grows with the level (sales, traffic) from leaving
/// a pattern behind; medians keep a level change or an outlier from
/// bending the season.
pub fn deseasonalize(xs: &[f64], positions: &[usize], period: usize) -> Vec<f64> {
    if period < 2 || xs.len() < 2 * period {
        return xs.to_vec();
    }
    let multiplicative = xs.iter().all(|&x| x > 0.0);
    let level = running_median(xs, period / 2);
    let mut by_phase: Vec<Vec<f64>> = vec![Vec::new(); period];
    for ((x, l), p) in xs.iter().zip(&level).zip(positions) {
        let relative = if multiplicative { x / l } else { x - l };
        by_phase[p % period].push(relative);
    }
    let neutral = if multiplicative { 1.0 } else { 0.0 };
    let mut season: Vec<f64> = by_phase
        .iter()
        .map(|v| if v.is_empty() { neutral } else { median(v) })
        .collect();
    let average = season.iter().sum::<f64>() / period as f64;
    for s in &mut season {
        if multiplicative {
            *s /= average;
        } else {
            *s -= average;
        }
    }
    xs.iter()
        .zip(positions)
        .map(|(x, p)| {
            if multiplicative {
                x / season[p % period]
            } else {
                x - season[p % period]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn seasonal(n: usize, period: usize, step_at: Option<usize>, seed: u64) -> Vec<f64> {
        let mut rng = Rng::new(seed);
        (0..n)
            .map(|i| {
                let phase = (i % period) as f64 / period as f64;
                let step = if step_at.is_some_and(|s| i >= s) { 8.0 } else { 0.0 };
                100.0 + 10.0 * (phase * std::f64::consts::TAU).sin() + step + rng.normal()
            })
            .collect()
    }

    #[test]
    fn a_monthly_season_is_found_and_noise_or_a_step_has_none() {
        for seed in 1..=10 {
            assert_eq!(
                detect_period(&seasonal(120, 12, None, seed)),
                Some(12),
                "seed {seed}"
            );
            assert_eq!(
                detect_period(&seasonal(120, 12, Some(70), seed)),
                Some(12),
                "seed {seed}"
            );
            let mut rng = Rng::new(seed);
            let noise: Vec<f64> = (0..120).map(|_| rng.normal()).collect();
            assert_eq!(detect_period(&noise), None, "seed {seed}");
            let step: Vec<f64> = (0..120)
                .map(|i| rng.normal() + if i >= 60 { 5.0 } else { 0.0 })
                .collect();
            assert_eq!(detect_period(&step), None, "seed {seed}");
        }
    }

    #[test]
    fn taking_the_season_out_keeps_a_level_change() {
        let xs = seasonal(120, 12, Some(60), 3);
        let positions: Vec<usize> = (0..xs.len()).collect();
        let flat = deseasonalize(&xs, &positions, 12);
        let before = crate::stats::mean(&flat[..60]);
        let after = crate::stats::mean(&flat[60..]);
        assert!((after - before - 8.0).abs() < 1.0, "{before} {after}");
        // What is left within a segment is the noise, not the ±10 season.
        assert!(crate::stats::variance(&flat[..60]).sqrt() < 2.0);
    }
}
