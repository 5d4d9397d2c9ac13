//! The CI gate's comparison: profiles of a benchmark on the base commit
//! and on the change, per function, with significance.
//!
//! - **Several runs a side**: each run is one observation of each
//!   function's self (and inclusive) cost — per request when the run
//!   counted requests, else per run (the same benchmark each time). The
//!   rise is tested with one-sided Welch's t (with 5 runs a side,
//!   Mann–Whitney cannot go below p = 0.006, too coarse once a few
//!   functions share the false-discovery budget) and estimated with the
//!   Hodges–Lehmann shift and a seeded bootstrap interval.
//! - **One run a side**: a one-sided two-proportion z-test on the
//!   function's share of the samples, with a delta-method interval of the
//!   ratio of shares.
//!
//! Either way, Benjamini–Hochberg runs over every function tested; a
//! regression is significant (q ≤ `significance`), at least
//! `max_regression` relative, and holds at least `min_share` of the
//! candidate's cost. Functions under `min_share` or with too few samples
//! are not tested, and the report says so.
//!
//! Length: over 600 lines with its tests: about 490 lines of code; the rest is its tests.

use std::collections::{BTreeMap, BTreeSet};

use flameshift_profile::{FoldOptions, Profile, TopBy};
use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal};

use crate::callpath::{self, ByCallers, CallPath};
use crate::error::{Error, Result};
use crate::regression::Metric;
use crate::sensitivity::{detectable_difference, family_alpha, observations_for, Sensitivity};
use crate::stats::{benjamini_hochberg, hodges_lehmann, hodges_lehmann_ci, mean, welch_greater_p};

/// Thresholds of the gate.
#[derive(Debug, Clone, PartialEq)]
pub struct GateSettings {
    /// Smallest relative rise that fails the gate (default 0.02 = 2%).
    pub max_regression: f64,
    /// Largest q-value of a failing rise (default 0.01).
    pub significance: f64,
    /// Smallest share of the candidate's total cost a function needs to be
    /// tested (default 0.001 = 0.1%).
    pub min_share: f64,
    /// Test self cost (default true).
    pub self_cost: bool,
    /// Test inclusive cost (default false).
    pub inclusive: bool,
    /// Fewest samples, both sides together, for a function to be tested
    /// (default 20).
    pub min_samples: i64,
    /// Level of the intervals (default 0.95).
    pub confidence: f64,
}

impl Default for GateSettings {
    fn default() -> Self {
        GateSettings {
            max_regression: 0.02,
            significance: 0.01,
            min_share: 0.001,
            self_cost: true,
            inclusive: false,
            min_samples: 20,
            confidence: 0.95,
        }
    }
}

/// One function's cost in one run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FunctionRun {
    /// Self cost.
    pub self_value: f64,
    /// Inclusive cost.
    pub inclusive_value: f64,
    /// Samples behind the self cost.
    pub self_samples: f64,
    /// Samples behind the inclusive cost.
    pub inclusive_samples: f64,
}

/// The costs of one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunCosts {
    /// Total cost.
    pub total: f64,
    /// Total samples.
    pub total_samples: f64,
    /// Requests the run served, if it counted them.
    pub requests: Option<f64>,
    /// Per function.
    pub functions: BTreeMap<String, FunctionRun>,
    /// Exact, deterministic counts (callgrind): compared as values.
    pub exact: bool,
    /// Each function's self cost by the callers above it
    /// ([`crate::callpath`]), to say where a rise is.
    pub by_callers: BTreeMap<String, ByCallers>,
    /// The functions whose frames carry source lines (the program's own
    /// code, built with debug info; not a library without it).
    pub with_source: std::collections::BTreeSet<String>,
}

impl RunCosts {
    /// The costs of `profile` in sample type `value_index`; samples come
    /// from a `samples/count` type when there is one, else from the values
    /// divided by the period (or the values themselves).
    pub fn from_profile(profile: &Profile, value_index: usize) -> RunCosts {
        let count_index = profile
            .sample_types
            .iter()
            .position(|t| t.kind == "samples" && t.unit == "count");
        let period = profile.period.as_ref().map(|p| p.value).filter(|&v| v > 0);
        let costs = profile.top_functions(value_index, TopBy::SelfCost);
        let counts: BTreeMap<String, (i64, i64)> = match count_index {
            Some(i) if i != value_index => profile
                .top_functions(i, TopBy::SelfCost)
                .into_iter()
                .map(|f| (f.name, (f.self_value, f.inclusive_value)))
                .collect(),
            _ => BTreeMap::new(),
        };
        let as_samples = |value: i64| match period {
            Some(p) => value as f64 / p as f64,
            None => value as f64,
        };
        let mut run = RunCosts {
            total: profile.total(value_index) as f64,
            total_samples: match count_index {
                Some(i) => profile.total(i) as f64,
                None => as_samples(profile.total(value_index)),
            },
            requests: None,
            functions: BTreeMap::new(),
            exact: profile
                .comments
                .iter()
                .any(|c| c == flameshift_profile::format::callgrind::EXACT_COUNTS),
            by_callers: BTreeMap::new(),
            with_source: crate::suspects::frame_spans(profile).into_keys().collect(),
        };
        let folded = profile.fold_sorted(&FoldOptions {
            value_index,
            root_label: None,
        });
        for (stack, value) in folded {
            let frames: Vec<&str> = stack.split(';').collect();
            callpath::add_stack(&mut run.by_callers, &frames, value as f64, callpath::GATE_DEPTH);
        }
        for f in costs {
            let (self_samples, inclusive_samples) = match counts.get(&f.name) {
                Some(&(s, i)) => (s as f64, i as f64),
                None => (as_samples(f.self_value), as_samples(f.inclusive_value)),
            };
            run.functions.insert(
                f.name,
                FunctionRun {
                    self_value: f.self_value as f64,
                    inclusive_value: f.inclusive_value as f64,
                    self_samples,
                    inclusive_samples,
                },
            );
        }
        run
    }

    fn value(&self, function: &str, metric: Metric) -> (f64, f64) {
        let f = self.functions.get(function).copied().unwrap_or_default();
        let per = self.requests.filter(|&r| r > 0.0).unwrap_or(1.0);
        match metric {
            Metric::Inclusive => (f.inclusive_value / per, f.inclusive_samples),
            _ => (f.self_value / per, f.self_samples),
        }
    }
}

/// One function's comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateRow {
    /// The function.
    pub function: String,
    /// Self or inclusive.
    pub metric: Metric,
    /// Mean cost before (per run, or per request).
    pub before: f64,
    /// Mean cost after.
    pub after: f64,
    /// Relative change.
    pub change: f64,
    /// Lower end of its interval.
    pub low: f64,
    /// Upper end of its interval.
    pub high: f64,
    /// One-sided p-value of the rise (or fall, for improvements).
    pub p_value: f64,
    /// Benjamini–Hochberg q-value.
    pub q_value: f64,
    /// Samples before and after (summed over runs).
    pub samples: [f64; 2],
    /// Where a self-cost rise concentrates: the callers above the
    /// function that hold most of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_path: Option<CallPath>,
    /// Absent from the baseline: its cost is new, not a relative rise
    /// (`change`, `low` and `high` are then 1, a flag, never infinite).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub new: bool,
}

/// What the gate divided each run's costs by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GateMeasure {
    /// Several runs a side, each with its requests counted: cost per
    /// request of each run.
    PerRequest,
    /// Several runs a side of the same benchmark: cost per run.
    PerRun,
    /// One run a side: each function's share of its run's samples.
    Share,
}

impl GateMeasure {
    /// `per_request`, `per_run` or `share`.
    pub fn as_str(self) -> &'static str {
        match self {
            GateMeasure::PerRequest => "per_request",
            GateMeasure::PerRun => "per_run",
            GateMeasure::Share => "share",
        }
    }
}

/// What the gate decided, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateReport {
    /// Runs on each side.
    pub runs: [usize; 2],
    /// Whether exact counts (callgrind) were compared as values.
    pub exact: bool,
    /// What costs were divided by.
    pub measure: GateMeasure,
    /// Functions × metrics tested.
    pub tests: usize,
    /// The failing rises, largest first.
    pub regressions: Vec<GateRow>,
    /// The largest significant falls (at most five).
    pub improvements: Vec<GateRow>,
    /// Functions over `min_share` not tested for lack of samples.
    pub untested: Vec<String>,
    /// How small a rise each function's test could have seen, and the
    /// runs a side it would need to see `max_regression` (untested ones
    /// included), costliest first.
    pub sensitivity: Vec<Sensitivity>,
}

impl GateReport {
    /// Whether the gate fails.
    pub fn failed(&self) -> bool {
        !self.regressions.is_empty()
    }
}

/// Compares the candidate's runs with the baseline's.
pub fn gate(baseline: &[RunCosts], candidate: &[RunCosts], settings: &GateSettings) -> Result<GateReport> {
    if baseline.iter().all(|r| r.total_samples <= 0.0) {
        return Err(Error::Empty("baseline"));
    }
    if candidate.iter().all(|r| r.total_samples <= 0.0) {
        return Err(Error::Empty("candidate"));
    }
    let names = |runs: &[RunCosts]| -> BTreeSet<String> {
        runs.iter().flat_map(|r| r.functions.keys().cloned()).collect()
    };
    let (before_names, after_names) = (names(baseline), names(candidate));
    // Programs share `main` and the like; what must be shared is where
    // the time goes: at least a tenth of the candidate's self cost in
    // functions with self cost in the baseline too.
    let before_costly: BTreeSet<&String> = baseline
        .iter()
        .flat_map(|r| {
            r.functions
                .iter()
                .filter(|(_, f)| f.self_value > 0.0)
                .map(|(n, _)| n)
        })
        .collect();
    let shared: f64 = candidate
        .iter()
        .flat_map(|r| r.functions.iter())
        .filter(|(n, _)| before_costly.contains(n))
        .map(|(_, f)| f.self_value)
        .sum();
    if shared < 0.1 * candidate.iter().map(|r| r.total).sum::<f64>() {
        return Err(Error::NoCommonFunctions);
    }
    let candidate_total: f64 = candidate.iter().map(|r| r.total).sum();
    let mut metrics = Vec::new();
    if settings.self_cost {
        metrics.push(Metric::SelfCost);
    }
    if settings.inclusive {
        metrics.push(Metric::Inclusive);
    }
    let several = baseline.len() >= 2 && candidate.len() >= 2;
    let exact = baseline.iter().chain(candidate).all(|r| r.exact);
    let measure = if !several && !exact {
        GateMeasure::Share
    } else if baseline
        .iter()
        .chain(candidate)
        .all(|r| r.requests.is_some_and(|n| n > 0.0))
    {
        GateMeasure::PerRequest
    } else {
        GateMeasure::PerRun
    };
    let mut rows = Vec::new();
    let mut falls = Vec::new();
    let mut untested = BTreeSet::new();
    // Per function tested (or not): its values a side and samples, for
    // the sensitivity once the family's size is known.
    let mut spreads: Vec<Observed> = Vec::new();
    for name in before_names.union(&after_names) {
        for &metric in &metrics {
            let side = |runs: &[RunCosts]| -> (Vec<f64>, f64) {
                let values: Vec<(f64, f64)> = runs.iter().map(|r| r.value(name, metric)).collect();
                (
                    values.iter().map(|v| v.0).collect(),
                    values.iter().map(|v| v.1).sum(),
                )
            };
            let ((a, sa), (b, sb)) = (side(baseline), side(candidate));
            let after_cost: f64 = candidate
                .iter()
                .map(|r| r.value(name, metric).0 * r.requests.unwrap_or(1.0))
                .sum();
            let before_share = sa / baseline.iter().map(|r| r.total_samples).sum::<f64>().max(1.0);
            let share = (after_cost / candidate_total.max(1.0)).max(before_share);
            if share < settings.min_share {
                continue;
            }
            if sa + sb < settings.min_samples as f64 {
                untested.insert(name.clone());
                spreads.push(Observed {
                    function: name.clone(),
                    metric,
                    values: [a, b],
                    samples: [sa, sb],
                    tested: false,
                });
                continue;
            }
            spreads.push(Observed {
                function: name.clone(),
                metric,
                values: [a.clone(), b.clone()],
                samples: [sa, sb],
                tested: true,
            });
            let row = if exact {
                compare_exact(name, metric, &a, &b, [sa, sb])
            } else if several {
                compare_runs(name, metric, &a, &b, [sa, sb], settings)
            } else {
                compare_shares(
                    name,
                    metric,
                    (sa, total_samples(baseline)),
                    (sb, total_samples(candidate)),
                    settings,
                )
            };
            rows.push(row.0);
            falls.push(row.1);
        }
    }
    let q = benjamini_hochberg(&rows.iter().map(|r| r.p_value).collect::<Vec<_>>());
    for (row, q) in rows.iter_mut().zip(q) {
        row.q_value = q;
    }
    let tests = rows.len();
    let sensitivity = sensitivities(&spreads, tests, several, exact, [baseline, candidate], settings);
    let mut regressions: Vec<GateRow> = rows
        .into_iter()
        .filter(|r| r.q_value <= settings.significance && r.change >= settings.max_regression)
        .collect();
    regressions.sort_by(|a, b| b.change.total_cmp(&a.change));
    for row in regressions.iter_mut().filter(|r| r.metric == Metric::SelfCost) {
        row.call_path = call_path(&row.function, baseline, candidate, !several && !exact);
    }
    let q = benjamini_hochberg(&falls.iter().map(|r| r.p_value).collect::<Vec<_>>());
    for (row, q) in falls.iter_mut().zip(q) {
        row.q_value = q;
    }
    let mut improvements: Vec<GateRow> = falls
        .into_iter()
        .filter(|r| r.q_value <= settings.significance && r.change <= -settings.max_regression)
        .collect();
    improvements.sort_by(|a, b| a.change.total_cmp(&b.change));
    improvements.truncate(5);
    Ok(GateReport {
        runs: [baseline.len(), candidate.len()],
        exact,
        measure,
        tests,
        regressions,
        improvements,
        untested: untested.into_iter().collect(),
        sensitivity,
    })
}

/// One function's values a side (per run), samples a side, and whether
/// it had enough samples to be tested.
struct Observed {
    function: String,
    metric: Metric,
    values: [Vec<f64>; 2],
    samples: [f64; 2],
    tested: bool,
}

/// The sensitivity of each function's test ([`crate::sensitivity`]): a
/// lone rise among `tests` at `significance`, never below
/// `max_regression`; exact counts see any rise past it. Several runs a
/// side use the run-to-run spread; one run a side the binomial spread of
/// the function's share of the samples. Untested functions get the runs a
/// side their samples need to reach `min_samples`.
fn sensitivities(
    spreads: &[Observed],
    tests: usize,
    several: bool,
    exact: bool,
    [baseline, candidate]: [&[RunCosts]; 2],
    settings: &GateSettings,
) -> Vec<Sensitivity> {
    let alpha = family_alpha(settings.significance, tests);
    let target = settings.max_regression;
    let totals = [total_samples(baseline), total_samples(candidate)];
    let runs = [baseline.len(), candidate.len()];
    let mut rows: Vec<Sensitivity> = spreads
        .iter()
        .filter_map(|o| {
            let ([a, b], samples, name, metric) = (&o.values, o.samples, &o.function, &o.metric);
            let tested = o.tested;
            let before = mean(a);
            if before <= 0.0 {
                return None;
            }
            let (mde, more) = if !tested {
                let per_run = (samples[0] + samples[1]) / (runs[0] + runs[1]).max(1) as f64;
                let needed = (settings.min_samples as f64 / per_run.max(1e-9) / 2.0).ceil() as usize;
                (None, Some(needed.saturating_sub(runs[0].min(runs[1]))))
            } else if exact {
                (Some(target), Some(0))
            } else if several {
                let var = [crate::stats::variance(a), crate::stats::variance(b)];
                let mde = detectable_difference(var, runs, alpha) / before;
                let more = observations_for(var, target * before, alpha)
                    .map(|k| k.saturating_sub(runs[0].min(runs[1])));
                (Some(mde.max(target)), more)
            } else {
                // One run a side: the function's share of the samples.
                let share = samples[0] / totals[0].max(1.0);
                let var = share * (1.0 - share);
                let n = [totals[0] as usize, totals[1] as usize];
                let mde = detectable_difference([var, var], n, alpha) / share.max(1e-12);
                (Some(mde.max(target)), None)
            };
            Some(Sensitivity {
                endpoint: String::new(),
                function: Some(name.clone()),
                metric: *metric,
                measure: None,
                before,
                mde,
                observations: runs,
                more_for_target: more,
                target,
            })
        })
        .collect();
    rows.sort_by(|a, b| b.before.total_cmp(&a.before));
    rows
}

/// Where `function`'s self-cost rise from `baseline` to `candidate`
/// concentrates (means over runs, per request when counted, or as shares
/// of each run's total when one run a side is compared by shares), with
/// the nearest caller's inclusive cost before and after.
fn call_path(
    function: &str,
    baseline: &[RunCosts],
    candidate: &[RunCosts],
    shares: bool,
) -> Option<CallPath> {
    let basis = |r: &RunCosts| match shares {
        true => r.total.max(1.0),
        false => r.requests.filter(|&q| q > 0.0).unwrap_or(1.0),
    };
    let side = |runs: &[RunCosts]| {
        let mut sum = ByCallers::new();
        for r in runs {
            let per = basis(r);
            for (chain, cost) in r.by_callers.get(function).into_iter().flatten() {
                *sum.entry(chain.clone()).or_default() += cost / per / runs.len() as f64;
            }
        }
        sum
    };
    let inclusive = |runs: &[RunCosts], name: &str| {
        let values: Vec<f64> = runs
            .iter()
            .map(|r| r.functions.get(name).map_or(0.0, |f| f.inclusive_value) / basis(r))
            .collect();
        mean(&values)
    };
    let existed = |name: &str| callpath::ran_before(inclusive(baseline, name), inclusive(candidate, name));
    // Where the program's own code is, if its profiles say (debug info).
    let sourced = |name: &str| candidate.iter().any(|r| r.with_source.contains(name));
    let any_source = candidate.iter().any(|r| !r.with_source.is_empty());
    let code: Option<&dyn Fn(&str) -> bool> = if any_source { Some(&sourced) } else { None };
    let mut path = callpath::concentrate(&side(baseline), &side(candidate), &existed, code)?;
    let caller = |runs: &[RunCosts]| {
        let values: Vec<f64> = runs
            .iter()
            .map(|r| {
                let inclusive = r
                    .functions
                    .get(&path.callers[0])
                    .map_or(0.0, |f| f.inclusive_value);
                inclusive / basis(r)
            })
            .collect();
        mean(&values)
    };
    path.caller_before = Some(caller(baseline));
    path.caller_after = Some(caller(candidate));
    Some(path)
}

/// Exact counts: the values themselves are compared (a rise is a rise;
/// p is 0 for any rise and 1 otherwise, so q follows).
fn compare_exact(name: &str, metric: Metric, a: &[f64], b: &[f64], samples: [f64; 2]) -> (GateRow, GateRow) {
    let (before, after) = (mean(a), mean(b));
    let change = if before > 0.0 {
        after / before - 1.0
    } else {
        f64::from(u8::from(after > 0.0))
    };
    let row = |p_value: f64| GateRow {
        function: name.to_owned(),
        metric,
        before,
        after,
        change,
        low: change,
        high: change,
        p_value,
        q_value: 1.0,
        samples,
        call_path: None,
        new: before <= 0.0 && after > 0.0,
    };
    (
        row(if change > 0.0 { 0.0 } else { 1.0 }),
        row(if change < 0.0 { 0.0 } else { 1.0 }),
    )
}

fn total_samples(runs: &[RunCosts]) -> f64 {
    runs.iter().map(|r| r.total_samples).sum()
}

/// Several runs a side: (the rise's row, the fall's row).
fn compare_runs(
    name: &str,
    metric: Metric,
    a: &[f64],
    b: &[f64],
    samples: [f64; 2],
    settings: &GateSettings,
) -> (GateRow, GateRow) {
    let (before, after) = (mean(a), mean(b));
    let shift = hodges_lehmann(a, b);
    let seed = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, c| {
        (h ^ c as u64).wrapping_mul(0x100_0000_01b3)
    });
    let (low, high) = hodges_lehmann_ci(a, b, settings.confidence, 400, seed);
    let new = before <= 0.0;
    // A function new in the candidate: no relative change (it would be
    // infinite); flagged, with 1 in its place.
    let relative = |x: f64| {
        if new {
            f64::from(u8::from(after > 0.0))
        } else {
            x / before.abs()
        }
    };
    let row = |p_value: f64| GateRow {
        function: name.to_owned(),
        metric,
        before,
        after,
        change: relative(shift),
        low: relative(low),
        high: relative(high),
        p_value,
        q_value: 1.0,
        samples,
        call_path: None,
        new: new && after > 0.0,
    };
    let (up, down) = (welch_greater_p(a, b), welch_greater_p(b, a));
    (row(up), row(down))
}

/// One run a side: a two-proportion z-test on the function's share of the
/// samples. (the rise's row, the fall's row).
fn compare_shares(
    name: &str,
    metric: Metric,
    (sa, na): (f64, f64),
    (sb, nb): (f64, f64),
    settings: &GateSettings,
) -> (GateRow, GateRow) {
    let (pa, pb) = (sa / na.max(1.0), sb / nb.max(1.0));
    let pooled = (sa + sb) / (na + nb).max(1.0);
    let se = (pooled * (1.0 - pooled) * (1.0 / na.max(1.0) + 1.0 / nb.max(1.0))).sqrt();
    let normal = Normal::standard();
    let z = if se > 0.0 { (pb - pa) / se } else { 0.0 };
    let ratio = if pa > 0.0 {
        pb / pa
    } else {
        f64::from(u8::from(pb > 0.0)) + 1.0
    };
    let z_ci = normal.inverse_cdf(1.0 - (1.0 - settings.confidence) / 2.0);
    let se_log = (1.0 / sa.max(0.5) - 1.0 / na.max(1.0) + 1.0 / sb.max(0.5) - 1.0 / nb.max(1.0))
        .max(0.0)
        .sqrt();
    let new = pa <= 0.0 && pb > 0.0;
    let row = |p_value: f64| GateRow {
        function: name.to_owned(),
        metric,
        before: pa,
        after: pb,
        change: ratio - 1.0,
        low: if new {
            1.0
        } else {
            ratio * (-z_ci * se_log).exp() - 1.0
        },
        high: if new {
            1.0
        } else {
            ratio * (z_ci * se_log).exp() - 1.0
        },
        p_value,
        q_value: 1.0,
        samples: [sa, sb],
        call_path: None,
        new,
    };
    (row(1.0 - normal.cdf(z)), row(normal.cdf(z)))
}

/// How the newest point of a benchmark history compares with the
/// segment it would extend.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewestPoint {
    /// The newest value.
    pub value: f64,
    /// First index of the current segment (after the last change point
    /// before the newest value).
    pub segment_start: usize,
    /// What the segment predicts for the newest point: its mean, or where
    /// its drift has taken it.
    pub mean: f64,
    /// The spread of the segment around that (mean or drift line).
    pub sd: f64,
    /// The segment's drift per point, when it drifts.
    pub drift: Option<f64>,
    /// `value / mean − 1`.
    pub change: f64,
    /// One-sided p-value that the newest value comes from the segment
    /// (Student-t prediction: `(x − mean) / (sd·√(1 + 1/n))`, n − 1 df).
    pub p_value: f64,
    /// Whether it starts a regression (higher is worse).
    pub regression: bool,
}

/// History mode: does the newest point of `xs` start a regression? The
/// series before it is cut at its change points by the robust method
/// ([`crate::changepoint::robust`]: seasons, outliers and drifts are not
/// change points); the newest value is tested against the last segment —
/// its mean, or, when the segment drifts, the drift's line carried one
/// point on (a slow leak is expected to go on; a jump beyond it is the
/// news). `None` with fewer than four earlier points.
pub fn newest_point(xs: &[f64], settings: &GateSettings) -> Option<NewestPoint> {
    use crate::changepoint::{robust, Robust};
    use statrs::distribution::StudentsT;
    let (&value, earlier) = xs.split_last()?;
    let found = robust(earlier, &Robust::default());
    let start = found.change_points.last().map_or(0, |c| c.index);
    let segment = &earlier[start..];
    if segment.len() < 3 {
        return None;
    }
    let drifting = found.drifts.last().filter(|d| d.end + 1 == earlier.len());
    let n = segment.len() as f64;
    // Least squares over the segment, or only its mean when it does not
    // drift: the prediction, its residual spread and the prediction's
    // standard error.
    let (predicted, sd, se, df) = match drifting {
        Some(_) if segment.len() >= 4 => {
            let ts: Vec<f64> = (0..segment.len()).map(|i| i as f64).collect();
            let (mt, my) = (mean(&ts), mean(segment));
            let sxx: f64 = ts.iter().map(|t| (t - mt) * (t - mt)).sum();
            let slope = ts
                .iter()
                .zip(segment)
                .map(|(t, y)| (t - mt) * (y - my))
                .sum::<f64>()
                / sxx;
            let rss: f64 = ts
                .iter()
                .zip(segment)
                .map(|(t, y)| (y - my - slope * (t - mt)).powi(2))
                .sum();
            let sd = (rss / (n - 2.0)).sqrt();
            let next = n - mt;
            let se = sd * (1.0 + 1.0 / n + next * next / sxx).sqrt();
            (my + slope * next, sd, se, n - 2.0)
        }
        _ => {
            let sd = crate::stats::variance(segment).sqrt();
            (mean(segment), sd, sd * (1.0 + 1.0 / n).sqrt(), n - 1.0)
        }
    };
    let change = if predicted != 0.0 {
        value / predicted - 1.0
    } else {
        0.0
    };
    let p_value = if se > 0.0 {
        let t = (value - predicted) / se;
        StudentsT::new(0.0, 1.0, df).map_or(1.0, |d| 1.0 - d.cdf(t))
    } else if value > predicted {
        0.0
    } else {
        1.0
    };
    Some(NewestPoint {
        value,
        segment_start: start,
        mean: predicted,
        sd,
        drift: drifting.map(|d| d.slope),
        change,
        p_value,
        regression: p_value <= settings.significance && change >= settings.max_regression,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// A run of `funcs` (name, mean samples), Poisson-drawn, 1 sample = 1 unit.
    fn run(rng: &mut Rng, funcs: &[(&str, f64)]) -> RunCosts {
        let mut r = RunCosts::default();
        for (name, mean) in funcs {
            let n = rng.poisson(*mean) as f64;
            r.total += n;
            r.total_samples += n;
            r.functions.insert(
                (*name).to_owned(),
                FunctionRun {
                    self_value: n,
                    inclusive_value: n,
                    self_samples: n,
                    inclusive_samples: n,
                },
            );
        }
        r
    }

    const BASE: [(&str, f64); 4] = [
        ("parse", 2_000.0),
        ("render", 3_000.0),
        ("sort", 4_000.0),
        ("tiny", 2.0),
    ];

    #[test]
    fn a_20_percent_slowdown_is_caught_and_named_with_runs_or_shares() {
        let mut rng = Rng::new(1);
        let slow = [
            ("parse", 2_400.0),
            ("render", 3_000.0),
            ("sort", 4_000.0),
            ("tiny", 2.0),
        ];
        for runs in [5, 1] {
            let a: Vec<RunCosts> = (0..runs).map(|_| run(&mut rng, &BASE)).collect();
            let b: Vec<RunCosts> = (0..runs).map(|_| run(&mut rng, &slow)).collect();
            let report = gate(&a, &b, &GateSettings::default()).unwrap();
            assert!(report.failed(), "{runs} runs: {report:#?}");
            assert_eq!(report.regressions.len(), 1, "{report:#?}");
            let r = &report.regressions[0];
            assert_eq!(r.function, "parse");
            let measure = if runs > 1 {
                GateMeasure::PerRun
            } else {
                GateMeasure::Share
            };
            assert_eq!(report.measure, measure, "{runs} runs");
            // Several runs: the cost per run rose 20%. One run: its share
            // of the samples rose from 2,000/9,002 to 2,400/9,402.
            let truth = if runs > 1 {
                0.2
            } else {
                (2_400.0 / 9_402.0) / (2_000.0 / 9_002.0) - 1.0
            };
            assert!(r.low <= truth && truth <= r.high, "{runs} runs: {r:?}");
        }
        // Over the share floor, under the sample floor: said, not tested.
        let rare = [("big", 3_000.0), ("rare", 6.0)];
        let report = gate(
            &[run(&mut rng, &rare)],
            &[run(&mut rng, &rare)],
            &GateSettings::default(),
        )
        .unwrap();
        assert_eq!(report.untested, vec!["rare".to_owned()]);
        assert_eq!(report.tests, 1);
    }

    #[test]
    fn identical_builds_pass_at_the_defaults() {
        let mut rng = Rng::new(2);
        let failed = (0..50)
            .filter(|_| {
                let a: Vec<RunCosts> = (0..5).map(|_| run(&mut rng, &BASE)).collect();
                let b: Vec<RunCosts> = (0..5).map(|_| run(&mut rng, &BASE)).collect();
                gate(&a, &b, &GateSettings::default()).unwrap().failed()
            })
            .count();
        assert_eq!(failed, 0);
    }

    #[test]
    fn exact_counts_catch_a_2_percent_rise_every_time() {
        let exact = |work: f64| RunCosts {
            total: 1_000_000.0 + work,
            total_samples: 1_000_000.0 + work,
            requests: None,
            functions: [("work", work), ("other", 1_000_000.0)]
                .into_iter()
                .map(|(n, v)| {
                    let f = FunctionRun {
                        self_value: v,
                        inclusive_value: v,
                        self_samples: v,
                        inclusive_samples: v,
                    };
                    (n.to_owned(), f)
                })
                .collect(),
            exact: true,
            by_callers: BTreeMap::new(),
            with_source: Default::default(),
        };
        let report = gate(&[exact(100_000.0)], &[exact(102_000.0)], &GateSettings::default()).unwrap();
        assert_eq!(report.regressions.len(), 1);
        assert!((report.regressions[0].change - 0.02).abs() < 1e-12);
        let same = gate(&[exact(100_000.0)], &[exact(100_000.0)], &GateSettings::default()).unwrap();
        assert!(!same.failed());
    }

    #[test]
    fn the_newest_point_of_a_history_is_judged_against_its_segment() {
        let mut rng = Rng::new(4);
        // An old step (100 → 110) the team accepted, then a steady series.
        let mut history: Vec<f64> = (0..20).map(|_| 100.0 + rng.normal()).collect();
        history.extend((0..15).map(|_| 110.0 + rng.normal()));
        let settings = GateSettings::default();
        let mut steady = history.clone();
        steady.push(110.5);
        let verdict = newest_point(&steady, &settings).unwrap();
        assert_eq!(verdict.segment_start, 20, "the old step is a change point");
        assert!(!verdict.regression, "{verdict:?}");
        let mut worse = history.clone();
        worse.push(116.0);
        let verdict = newest_point(&worse, &settings).unwrap();
        assert!(verdict.regression && verdict.p_value < 1e-3, "{verdict:?}");
        let mut better = history;
        better.push(104.0);
        assert!(!newest_point(&better, &settings).unwrap().regression);
        assert_eq!(newest_point(&[1.0, 2.0, 3.0], &settings), None);
    }

    #[test]
    fn a_drifting_history_predicts_the_drift_and_a_spike_is_not_a_segment() {
        let mut rng = Rng::new(8);
        let settings = GateSettings::default();
        // A leak: +0.5 per run from run 20 on, noise of 1.
        let history: Vec<f64> = (0..50)
            .map(|i| 100.0 + rng.normal() + if i >= 20 { 0.5 * (i - 20) as f64 } else { 0.0 })
            .collect();
        let mut next = history.clone();
        next.push(115.5); // where the leak has taken it
        let verdict = newest_point(&next, &settings).unwrap();
        assert!(
            verdict.drift.is_some_and(|d| (d - 0.5).abs() < 0.15),
            "{verdict:?}"
        );
        assert!((verdict.mean - 115.0).abs() < 1.5, "{verdict:?}");
        assert!(!verdict.regression, "{verdict:?}");
        let mut jump = history;
        jump.push(124.0);
        assert!(newest_point(&jump, &settings).unwrap().regression);
        // An old spike stays inside its segment.
        let mut spiky: Vec<f64> = (0..30).map(|_| 100.0 + rng.normal()).collect();
        spiky[12] = 140.0;
        spiky.push(100.5);
        let verdict = newest_point(&spiky, &settings).unwrap();
        assert_eq!(verdict.segment_start, 0, "{verdict:?}");
        assert!(!verdict.regression);
    }

    #[test]
    fn the_predicted_minimum_detectable_effect_is_caught_about_80_percent_of_the_time() {
        let mut rng = Rng::new(17);
        let settings = GateSettings::default();
        let sides = |rng: &mut Rng, parse: f64| -> Vec<RunCosts> {
            (0..5)
                .map(|_| run(rng, &[("parse", parse), ("render", 3_000.0), ("sort", 4_000.0)]))
                .collect()
        };
        // What identical builds say `parse` could show, over 100 pairs (five
        // runs estimate a spread only roughly: the root mean square, as
        // variances average without bias).
        let predicted: Vec<f64> = (0..100)
            .map(|_| {
                let report = gate(&sides(&mut rng, 2_000.0), &sides(&mut rng, 2_000.0), &settings).unwrap();
                let row = report
                    .sensitivity
                    .iter()
                    .find(|s| s.function.as_deref() == Some("parse"))
                    .unwrap();
                row.mde.unwrap()
            })
            .collect();
        let mde = (predicted.iter().map(|m| m * m).sum::<f64>() / predicted.len() as f64).sqrt();
        assert!(mde > 0.03 && mde < 0.15, "{mde}");
        let caught = (0..200)
            .filter(|_| {
                let report = gate(
                    &sides(&mut rng, 2_000.0),
                    &sides(&mut rng, 2_000.0 * (1.0 + mde)),
                    &settings,
                )
                .unwrap();
                report.regressions.iter().any(|r| r.function == "parse")
            })
            .count();
        assert!(
            (140..=185).contains(&caught),
            "{caught} of 200 at the predicted {mde}"
        );
        // The runs a side needed for 2%: more than five.
        let report = gate(&sides(&mut rng, 2_000.0), &sides(&mut rng, 2_000.0), &settings).unwrap();
        let parse = report
            .sensitivity
            .iter()
            .find(|s| s.function.as_deref() == Some("parse"))
            .unwrap();
        assert!(parse.more_for_target.is_some_and(|k| k > 0), "{parse:?}");
    }

    #[test]
    fn empty_sides_and_different_programs_are_errors() {
        let mut rng = Rng::new(3);
        let a = vec![run(&mut rng, &BASE)];
        assert_eq!(
            gate(&a, &[RunCosts::default()], &GateSettings::default()),
            Err(Error::Empty("candidate"))
        );
        assert_eq!(
            gate(&[], &a, &GateSettings::default()),
            Err(Error::Empty("baseline"))
        );
        let other = vec![run(&mut rng, &[("main", 100.0)])];
        assert_eq!(
            gate(&a, &other, &GateSettings::default()),
            Err(Error::NoCommonFunctions)
        );
    }
}
