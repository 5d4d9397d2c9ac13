//! How small a rise each test could have seen: the minimum detectable
//! effect at the test's significance and 80% power, from its sample
//! volume and the spread measured between runs (gate) or windows
//! (server), and how many more runs or windows a side would bring it down
//! to a target such as 2%. No peer reports this; without it, "no
//! regression" cannot be told from "could not have seen one".
//!
//! For a one-sided test at level α with power 1 − β, a difference of
//! means is detected when it exceeds `(z₁₋α + z₁₋β) · se`, with
//! `se = √(s_a²/n_a + s_b²/n_b)`. The level is that of a lone rise among
//! `m` tests under Benjamini–Hochberg at `q`: α = q / m (its p-value is
//! multiplied by m). With few observations (five runs a side) the
//! normal formula is far off: the estimated spread itself varies, so the
//! factor is the noncentrality δ at which Student's t with `n_a + n_b − 2`
//! degrees of freedom passes its 1 − α quantile with 80% probability,
//! found by integrating over the χ² of the spread estimate. The
//! simulation tests (here, in the gate and in the deploy comparison) and
//! BENCHMARKS.md check that a rise of the predicted size is caught about
//! 80% of the time.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

use crate::regression::{Measure, Metric};

/// The power the minimum detectable effect is stated at.
pub const POWER: f64 = 0.8;

/// One test's sensitivity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sensitivity {
    /// The endpoint (server), or empty (gate).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub endpoint: String,
    /// The function (none: the endpoint's total).
    pub function: Option<String>,
    /// Which cost.
    pub metric: Metric,
    /// What the cost is divided by, in a deploy comparison (per request,
    /// share, per second); none in the gate (per run, or a share of the
    /// run's samples with one run a side).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measure: Option<Measure>,
    /// The cost before (mean per window, in `measure`, or per run).
    pub before: f64,
    /// The smallest relative rise the test would catch with 80% power
    /// (never below the threshold a rise must pass anyway); `None` when
    /// the function was not tested.
    pub mde: Option<f64>,
    /// Observations a side (runs or windows).
    pub observations: [usize; 2],
    /// More observations a side needed to see `target` (0 when it can
    /// already); `None` when no amount would do (no spread measured yet).
    pub more_for_target: Option<usize>,
    /// The relative rise `more_for_target` is for.
    pub target: f64,
}

/// The smallest absolute difference of means a one-sided test at level
/// `alpha` catches with [`POWER`], given the variances and counts of both
/// sides.
pub fn detectable_difference(var: [f64; 2], n: [usize; 2], alpha: f64) -> f64 {
    let se = (var[0] / n[0].max(1) as f64 + var[1] / n[1].max(1) as f64).sqrt();
    // Welch's test spends about one more degree of freedom on the second
    // variance than Student's (5 runs a side: power 78% at the δ of 7,
    // 65% at that of 8, simulated).
    noncentrality(alpha, (n[0] + n[1]).saturating_sub(3)) * se
}

/// Observations a side (both sides equal) for the difference `effect` to
/// be detectable, given the variances; `None` when `effect` is not
/// positive.
pub fn observations_for(var: [f64; 2], effect: f64, alpha: f64) -> Option<usize> {
    if effect <= 0.0 || !effect.is_finite() {
        return None;
    }
    let enough = |n: usize| detectable_difference(var, [n, n], alpha) <= effect;
    // The normal approximation first (no t quantiles to solve), then the
    // exact answer near it: t only ever asks for more.
    let normal = Normal::standard();
    let z = normal.inverse_cdf(1.0 - alpha.clamp(1e-300, 0.5)) + normal.inverse_cdf(POWER);
    let guess = ((z / effect).powi(2) * (var[0] + var[1])).ceil();
    if !guess.is_finite() || guess > (1u64 << 24) as f64 {
        return None;
    }
    let mut low = (guess as usize).max(2);
    if enough(low) {
        return Some(low);
    }
    let mut high = low + 1;
    while !enough(high) {
        if high > 1 << 24 {
            return None;
        }
        (low, high) = (high, high + (high - low) * 2);
    }
    while low < high {
        let mid = (low + high) / 2;
        match enough(mid) {
            true => high = mid,
            false => low = mid + 1,
        }
    }
    Some(high)
}

/// The noncentrality δ at which a one-sided t-test at level `alpha` with
/// `df` degrees of freedom (at least one) rejects with probability
/// [`POWER`]: `P(T'(δ) > t₁₋α) = POWER` with `T' = (Z + δ) / √(V/df)`,
/// V ~ χ²(df), integrated over 100 quantiles of V (Wilson–Hilferty), δ
/// by bisection; remembered per (α, df). Above 300 degrees of freedom,
/// the normal `z₁₋α + z_power` (within 1% of it).
pub fn noncentrality(alpha: f64, df: usize) -> f64 {
    thread_local! {
        static KNOWN: std::cell::RefCell<std::collections::HashMap<(u64, usize), f64>> =
            std::cell::RefCell::default();
    }
    let key = (alpha.to_bits(), df);
    if let Some(delta) = KNOWN.with(|k| k.borrow().get(&key).copied()) {
        return delta;
    }
    let delta = solve_noncentrality(alpha, df);
    KNOWN.with(|k| k.borrow_mut().insert(key, delta));
    delta
}

fn solve_noncentrality(alpha: f64, df: usize) -> f64 {
    let alpha = alpha.clamp(1e-300, 0.5);
    let normal = Normal::standard();
    if df > 300 {
        return normal.inverse_cdf(1.0 - alpha) + normal.inverse_cdf(POWER);
    }
    let df = df.max(1) as f64;
    let t = StudentsT::new(0.0, 1.0, df).expect("positive degrees of freedom");
    let critical = t.inverse_cdf(1.0 - alpha);
    const POINTS: usize = 100;
    // √(V/df) at the quantiles of V ~ χ²(df), by Wilson and Hilferty's
    // cube of a normal.
    let h = 2.0 / (9.0 * df);
    let scales: Vec<f64> = (0..POINTS)
        .map(|k| {
            let z = normal.inverse_cdf((k as f64 + 0.5) / POINTS as f64);
            (1.0 - h + z * h.sqrt()).max(0.0).powi(3).sqrt()
        })
        .collect();
    let power = |delta: f64| {
        scales
            .iter()
            .map(|s| normal.cdf(delta - critical * s))
            .sum::<f64>()
            / POINTS as f64
    };
    let (mut low, mut high) = (0.0, critical + 10.0);
    while power(high) < POWER {
        high *= 2.0;
    }
    for _ in 0..40 {
        let mid = (low + high) / 2.0;
        if power(mid) < POWER {
            low = mid;
        } else {
            high = mid;
        }
    }
    high
}

/// The level of a lone rise among `tests` tests under Benjamini–Hochberg
/// at `q`.
pub fn family_alpha(q: f64, tests: usize) -> f64 {
    q / tests.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use crate::stats::welch_greater_p;

    #[test]
    fn a_rise_of_the_predicted_size_is_caught_about_80_percent_of_the_time() {
        // 10 windows a side, 5% noise, one test among 50 at q = 0.01.
        let (n, sd, mean, alpha) = (10usize, 5.0, 100.0, family_alpha(0.01, 50));
        let mde = detectable_difference([sd * sd, sd * sd], [n, n], alpha);
        let mut rng = Rng::new(21);
        let trials = 400;
        let caught = (0..trials)
            .filter(|_| {
                let a: Vec<f64> = (0..n).map(|_| mean + sd * rng.normal()).collect();
                let b: Vec<f64> = (0..n).map(|_| mean + mde + sd * rng.normal()).collect();
                welch_greater_p(&a, &b) <= alpha
            })
            .count();
        let rate = caught as f64 / trials as f64;
        assert!((0.72..=0.88).contains(&rate), "{rate} at an MDE of {mde}");
        // Half the effect is caught far less often.
        let half = (0..trials)
            .filter(|_| {
                let a: Vec<f64> = (0..n).map(|_| mean + sd * rng.normal()).collect();
                let b: Vec<f64> = (0..n).map(|_| mean + mde / 2.0 + sd * rng.normal()).collect();
                welch_greater_p(&a, &b) <= alpha
            })
            .count();
        assert!((half as f64 / trials as f64) < 0.35, "{half}");
    }

    #[test]
    fn the_noncentrality_matches_the_noncentral_t() {
        // scipy.stats.nct: δ with P(T'(δ, df) > t₁₋α(df)) = 0.8.
        for (alpha, df, expected) in [(0.01 / 3.0, 8, 4.644), (0.01 / 3.0, 6, 5.164), (0.001, 38, 4.197)] {
            let delta = noncentrality(alpha, df);
            assert!(
                (delta - expected).abs() < 0.05,
                "α {alpha} df {df}: {delta} vs {expected}"
            );
        }
    }

    #[test]
    fn more_observations_bring_the_effect_down_as_the_square_root() {
        let var = [4.0, 4.0];
        let alpha = 0.001;
        let d10 = detectable_difference(var, [10, 10], alpha);
        let d40 = detectable_difference(var, [40, 40], alpha);
        // Twice as small, and a little more: t's tails thin out too.
        assert!((2.0..2.4).contains(&(d10 / d40)), "{}", d10 / d40);
        let needed = observations_for(var, d40, alpha).unwrap();
        assert!((39..=41).contains(&needed), "{needed}");
        assert_eq!(observations_for(var, 0.0, alpha), None);
    }
}
