//! The deploy comparison (docs/detection.md, layer 1): a deploy against
//! the one before, per endpoint, for the endpoint total and every
//! function's self and inclusive cost, each window one observation, in the
//! measure the endpoint's data supports ([`crate::costs::Basis`]: per
//! request, else the share of the endpoint's samples against the
//! functions that did not change, else per second). A raw share that
//! rose only as the mirror of a fall elsewhere is set aside as a cost
//! shift.
//!
//! 1. **Effect first**: a test is a candidate only when the mean rose by
//!    at least the minimum effect (`min_relative` of the cost before, and
//!    at least `min_share` of the endpoint's cost per request) and Welch's
//!    one-sided p is within the false-discovery rate (otherwise its q-value
//!    could not be either). The rest count in the family with p = 1.
//! 2. **Tests**: one-sided Mann–Whitney U and Welch's t; a candidate's p is
//!    the larger (both must agree). Benjamini–Hochberg over every test of
//!    the deploy gives q; `q ≤ max_q` is significant.
//! 3. **Filters**, after FBDetect: *went-away* (the second half of the new
//!    deploy keeps at least `persist_fraction` of the rise), *cost-shift*
//!    (a rise offset by significant falls of related functions — a caller,
//!    a callee, or a sibling under a common caller — down to less than the
//!    minimum effect is a rename or a refactor), *dedupe* (inclusive and
//!    endpoint-total rises explained by the self-cost regressions below
//!    them are listed in those regressions' `explains`).
//! 4. **Estimates** for what is left: the Hodges–Lehmann shift with a
//!    seeded bootstrap interval, and t intervals of both means.
//!
//! Length: over 600 lines with its tests: the comparison and its four filters share private candidate types and run as one pass; the last 235 lines are tests.

use std::collections::HashMap;

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal};

use crate::costs::{ratios, Basis, CostTable, EndpointCosts, NotCompared};
use crate::regression::{regression_id, Estimate, Links, Measure, Metric, Regression, Source, State};
use crate::sensitivity::{detectable_difference, family_alpha, observations_for, Sensitivity};
use crate::settings::DetectSettings;
use crate::stats::{
    benjamini_hochberg_among, hodges_lehmann, hodges_lehmann_ci, mann_whitney_greater_p, mean, mean_ci,
    welch_greater_p,
};
use flameshift_profile::wire::Unit;

/// What the comparison of two deploys found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// The earlier deploy.
    pub deploy_before: String,
    /// The deploy under test.
    pub deploy_after: String,
    /// Tests in the Benjamini–Hochberg family.
    pub tests: usize,
    /// Endpoints with enough windows on both sides.
    pub endpoints_compared: usize,
    /// The regressions.
    pub regressions: Vec<Regression>,
    /// Significant rises a filter set aside, and why.
    pub suppressed: Vec<Suppressed>,
    /// How small a rise each endpoint total and function self cost could
    /// have shown (tested or not for lack of samples), costliest first.
    pub sensitivity: Vec<Sensitivity>,
    /// Endpoints whose deploys could not be compared, and why.
    pub not_compared: Vec<NotCompared>,
}

/// A significant rise that is not a regression.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suppressed {
    /// The endpoint.
    pub endpoint: String,
    /// The function (none: the endpoint total).
    pub function: Option<String>,
    /// Which cost.
    pub metric: Metric,
    /// The rise, relative to before (none when it was zero before).
    pub relative: Option<f64>,
    /// Why it is not a regression.
    pub reason: Reason,
}

/// Why a significant rise is not reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Reason {
    /// The second half of the new deploy no longer shows it.
    WentAway,
    /// Related functions fell by about as much: cost moved.
    CostShift {
        /// The functions the cost came from.
        from: Vec<String>,
    },
    /// The agent's exact cost per request of the endpoint did not rise by
    /// `exact_fraction` of the sampled rise: the samples moved, the cost
    /// did not.
    ExactCostFlat {
        /// The endpoint's exact cost per request, relative change.
        endpoint_rise: f64,
    },
}

/// A rise that passed the effect filter.
struct Candidate {
    endpoint: usize,
    function: Option<usize>,
    metric: Metric,
    before: Vec<f64>,
    after: Vec<f64>,
    mean_before: f64,
    delta: f64,
    min_effect: f64,
    p_mann_whitney: f64,
    p_welch: f64,
    q: f64,
    explains: Vec<String>,
    cause: Option<usize>,
}

/// A significant fall, as evidence for a cost shift.
struct Fall {
    endpoint: usize,
    function: usize,
    metric: Metric,
    before: f64,
    remaining: f64,
}

/// One endpoint's side of the comparison: its usable columns before and
/// after, its total cost before (in `measure`), and each column's divisor.
struct Compared {
    a: Vec<usize>,
    b: Vec<usize>,
    level: f64,
    per: Vec<f64>,
    measure: Measure,
}

/// Mean and unbiased variance of `costs[c] / per[c]` over `columns`,
/// without allocating.
fn moments(costs: &[f64], requests: &[f64], columns: &[usize]) -> (f64, f64) {
    let n = columns.len() as f64;
    let (mut sum, mut sum_sq) = (0.0, 0.0);
    for &c in columns {
        let x = costs[c] / requests[c];
        sum += x;
        sum_sq += x * x;
    }
    let m = sum / n;
    let var = if columns.len() > 1 {
        ((sum_sq - n * m * m) / (n - 1.0)).max(0.0)
    } else {
        0.0
    };
    (m, var)
}

/// Compares deploy `after` with deploy `before` (indexes into
/// `table.deploys`) at time `now_ms`.
pub fn compare_deploys(
    table: &CostTable,
    before: usize,
    after: usize,
    settings: &DetectSettings,
    now_ms: i64,
) -> Comparison {
    let z_max = Normal::standard().inverse_cdf(1.0 - settings.max_q.clamp(1e-300, 0.5));
    let mut tests = 0usize;
    let mut endpoints_compared = 0;
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut falls: Vec<Fall> = Vec::new();
    let mut columns: Vec<Compared> = Vec::with_capacity(table.endpoints.len());
    let mut spreads: Vec<Spread> = Vec::new();
    let mut not_compared = Vec::new();
    // Share rises that are only the mirror of a fall elsewhere: the
    // function's raw share rose, its share against the functions that did
    // not change did not.
    let mut mirrored: Vec<(usize, usize, f64)> = Vec::new();
    for (ei, e) in table.endpoints.iter().enumerate() {
        let basis = match e.basis(before, after, settings) {
            Ok(basis) => basis,
            Err(why) => {
                columns.push(Compared {
                    a: Vec::new(),
                    b: Vec::new(),
                    level: 0.0,
                    per: Vec::new(),
                    measure: why.measure,
                });
                not_compared.push(why);
                continue;
            }
        };
        let Basis {
            measure,
            columns: [cols_a, cols_b],
            per,
            ..
        } = basis;
        endpoints_compared += 1;
        let level = moments(&e.total, &per, &cols_a).0;
        let floor = settings.min_share * level;
        let raw_share = (measure == Measure::Share).then(|| e.divisors(measure, settings));
        let mut test = |function: Option<usize>, metric: Metric, costs: &[f64], samples: i64| {
            let counts = [cols_a.len(), cols_b.len()];
            if samples < settings.min_samples {
                if metric != Metric::Inclusive && samples > 0 {
                    let (ma, va) = moments(costs, &per, &cols_a);
                    spreads.push(Spread {
                        endpoint: ei,
                        function,
                        metric,
                        measure,
                        mean: ma,
                        var: [va, va],
                        windows: counts,
                        untested_samples: Some(samples),
                    });
                }
                return;
            }
            tests += 1;
            let (ma, va) = moments(costs, &per, &cols_a);
            let (mb, vb) = moments(costs, &per, &cols_b);
            if metric != Metric::Inclusive {
                spreads.push(Spread {
                    endpoint: ei,
                    function,
                    metric,
                    measure,
                    mean: ma,
                    var: [va, vb],
                    windows: counts,
                    untested_samples: None,
                });
            }
            let delta = mb - ma;
            let min_effect = (settings.min_relative * ma).max(floor);
            let se = (va / cols_a.len() as f64 + vb / cols_b.len() as f64).sqrt();
            let rises = |delta: f64, se: f64| {
                // Welch's p is above max_q when t is below the normal
                // quantile (the t distribution's tails are heavier), and
                // then q is too.
                delta + settings.effect_slack * se >= min_effect
                    && delta > 0.0
                    && !(se > 0.0 && delta / se < z_max)
            };
            if !rises(delta, se) {
                // A share that rose only against every function (not
                // against those that did not change) mirrors a fall.
                if let (Some(raw), Some(f), Metric::SelfCost) = (&raw_share, function, metric) {
                    let (rb, rv) = moments(costs, raw, &cols_b);
                    let se = (va / cols_a.len() as f64 + rv / cols_b.len() as f64).sqrt();
                    if rises(rb - ma, se) {
                        mirrored.push((ei, f, (rb - ma) / ma));
                    }
                }
            }
            if delta + settings.effect_slack * se >= min_effect && delta > 0.0 {
                if se > 0.0 && delta / se < z_max {
                    return;
                }
                let a = ratios(costs, &per, &cols_a);
                let b = ratios(costs, &per, &cols_b);
                candidates.push(Candidate {
                    endpoint: ei,
                    function,
                    metric,
                    p_mann_whitney: mann_whitney_greater_p(&a, &b),
                    p_welch: welch_greater_p(&a, &b),
                    before: a,
                    after: b,
                    mean_before: ma,
                    delta,
                    min_effect,
                    q: 1.0,
                    explains: Vec::new(),
                    cause: None,
                });
            } else if let Some(function) = function.filter(|_| -delta >= floor && delta < 0.0) {
                let a = ratios(costs, &per, &cols_a);
                let b = ratios(costs, &per, &cols_b);
                if mann_whitney_greater_p(&b, &a) < settings.shift_max_p {
                    falls.push(Fall {
                        endpoint: ei,
                        function,
                        metric,
                        before: ma,
                        remaining: -hodges_lehmann(&a, &b),
                    });
                }
            }
        };
        // A share of the whole endpoint is 1: its total is tested per
        // request or per second only.
        if measure != Measure::Share {
            test(
                None,
                Metric::Total,
                &e.total,
                e.total_samples[before] + e.total_samples[after],
            );
        }
        for (fi, f) in e.functions.iter().enumerate() {
            let self_samples = f.self_samples[before] + f.self_samples[after];
            test(Some(fi), Metric::SelfCost, &f.self_cost, self_samples);
            let inclusive_samples = f.inclusive_samples[before] + f.inclusive_samples[after];
            if inclusive_samples > self_samples {
                test(Some(fi), Metric::Inclusive, &f.inclusive, inclusive_samples);
            }
        }
        columns.push(Compared {
            a: cols_a,
            b: cols_b,
            level,
            per,
            measure,
        });
    }

    let p: Vec<f64> = candidates
        .iter()
        .map(|c| c.p_mann_whitney.max(c.p_welch))
        .collect();
    for (c, q) in candidates.iter_mut().zip(benjamini_hochberg_among(&p, tests)) {
        c.q = q;
    }
    candidates.retain(|c| c.q <= settings.max_q);
    candidates.sort_by(|a, b| b.delta.total_cmp(&a.delta));

    let mut suppressed = Vec::new();
    let mut kept: Vec<Candidate> = Vec::new();
    for c in candidates {
        let e = &table.endpoints[c.endpoint];
        let side = &columns[c.endpoint];
        let reason = went_away(&c, settings)
            .or_else(|| exact_cost_flat(&c, e, side, settings))
            .or_else(|| cost_shift(&c, e, &mut falls, settings));
        match reason {
            Some(reason) => suppressed.push(Suppressed {
                endpoint: e.endpoint.to_string(),
                function: c.function.map(|f| e.functions[f].name.to_string()),
                metric: c.metric,
                relative: (c.mean_before > 0.0).then(|| c.delta / c.mean_before),
                reason,
            }),
            None => kept.push(c),
        }
    }
    for (ei, f, relative) in mirrored {
        let e = &table.endpoints[ei];
        let from: Vec<String> = falls
            .iter()
            .filter(|fall| fall.endpoint == ei && fall.metric == Metric::SelfCost && fall.function != f)
            .map(|fall| e.functions[fall.function].name.to_string())
            .collect();
        suppressed.push(Suppressed {
            endpoint: e.endpoint.to_string(),
            function: Some(e.functions[f].name.to_string()),
            metric: Metric::SelfCost,
            relative: Some(relative),
            reason: Reason::CostShift { from },
        });
    }
    let kept = dedupe(kept, table, &columns, settings);
    let levels: Vec<f64> = columns.iter().map(|c| c.level).collect();
    let sensitivity = sensitivities(table, &spreads, &levels, tests, settings);
    let (deploy_before, deploy_after) = (&*table.deploys[before], &*table.deploys[after]);
    let regressions = kept
        .into_iter()
        .map(|c| {
            let e = &table.endpoints[c.endpoint];
            let samples = match c.function {
                None => [e.total_samples[before], e.total_samples[after]],
                Some(f) => {
                    let f = &e.functions[f];
                    match c.metric {
                        Metric::Inclusive => [f.inclusive_samples[before], f.inclusive_samples[after]],
                        _ => [f.self_samples[before], f.self_samples[after]],
                    }
                }
            };
            let function = c.function.map(|f| &*e.functions[f].name);
            let found = Found {
                service: &table.service,
                endpoint: &e.endpoint,
                function,
                metric: c.metric,
                measure: columns[c.endpoint].measure,
                source: Source::Deploy,
                deploys: [deploy_before, deploy_after],
                samples,
                q: c.q,
                explains: c.explains,
                cause: c.cause.map(|f| &*e.functions[f].name),
                at_ms: None,
                now_ms,
            };
            found.into_regression(
                table,
                &c.before,
                &c.after,
                [c.p_mann_whitney, c.p_welch],
                settings,
            )
        })
        .collect::<Vec<Regression>>();
    let mut regressions = regressions;
    for r in &mut regressions {
        r.mde = sensitivity
            .iter()
            .find(|s| s.endpoint == r.endpoint && s.function == r.function && s.metric == r.metric)
            .and_then(|s| s.mde);
    }
    Comparison {
        deploy_before: deploy_before.to_owned(),
        deploy_after: deploy_after.to_owned(),
        tests,
        endpoints_compared,
        regressions,
        suppressed,
        sensitivity,
        not_compared,
    }
}

/// A total or self cost compared (or left untested): where, its mean per
/// request before, the variances per window, and the windows a side.
struct Spread {
    endpoint: usize,
    function: Option<usize>,
    metric: Metric,
    measure: Measure,
    mean: f64,
    var: [f64; 2],
    windows: [usize; 2],
    /// The samples, when too few to test.
    untested_samples: Option<i64>,
}

/// The sensitivity of each cost compared ([`crate::sensitivity`]): a lone
/// rise among `tests` at `max_q`, never below `min_relative` (or the
/// `min_share` floor), and the windows a side still needed to see
/// `min_relative` — for lack of spread, or of samples when untested.
fn sensitivities(
    table: &CostTable,
    spreads: &[Spread],
    levels: &[f64],
    tests: usize,
    settings: &DetectSettings,
) -> Vec<Sensitivity> {
    let alpha = family_alpha(settings.max_q, tests);
    let target = settings.min_relative;
    let mut rows: Vec<Sensitivity> = spreads
        .iter()
        .filter(|s| s.mean > 0.0)
        .map(|s| {
            let (ei, ma, var, n) = (s.endpoint, s.mean, s.var, s.windows);
            let (function, metric, samples) = (s.function, s.metric, s.untested_samples);
            let e = &table.endpoints[ei];
            let (mde, more) = match samples {
                None => {
                    let floor = settings.min_share * levels[ei];
                    let mde = (detectable_difference(var, n, alpha) / ma)
                        .max(target)
                        .max(floor / ma);
                    let more =
                        observations_for(var, target * ma, alpha).map(|k| k.saturating_sub(n[0].min(n[1])));
                    (Some(mde), more)
                }
                Some(samples) => {
                    // Windows a side until the samples reach the minimum.
                    let per_window = samples as f64 / (n[0] + n[1]).max(1) as f64;
                    let needed = (settings.min_samples as f64 / per_window / 2.0).ceil() as usize;
                    (None, Some(needed.saturating_sub(n[0].min(n[1]))))
                }
            };
            Sensitivity {
                endpoint: e.endpoint.to_string(),
                function: function.map(|f| e.functions[f].name.to_string()),
                metric,
                measure: Some(s.measure),
                before: ma,
                mde,
                observations: n,
                more_for_target: more,
                target,
            }
        })
        .collect();
    rows.sort_by(|a, b| b.before.total_cmp(&a.before));
    rows
}

/// *Went-away*: the rise must still be there in the second half.
fn went_away(c: &Candidate, settings: &DetectSettings) -> Option<Reason> {
    let late = &c.after[c.after.len() / 2..];
    (mean(late) - c.mean_before < settings.persist_fraction * c.delta).then_some(Reason::WentAway)
}

/// *Exact cost*: a sampled rise (of a function or of the endpoint's total)
/// that the endpoint's exact cost per request (every column of both
/// deploys measured) does not show, by at least `exact_fraction` of it at
/// the upper end of its 95% interval.
fn exact_cost_flat(
    c: &Candidate,
    e: &EndpointCosts,
    side: &Compared,
    settings: &DetectSettings,
) -> Option<Reason> {
    if side.measure != Measure::PerRequest {
        return None;
    }
    let (cols_a, cols_b) = (&side.a[..], &side.b[..]);
    let measured = |cols: &[usize]| cols.len() >= 2 && cols.iter().all(|&i| e.measured[i] > 0.0);
    if !(measured(cols_a) && measured(cols_b)) {
        return None;
    }
    let (ma, va) = moments(&e.measured, &e.requests, cols_a);
    let (mb, vb) = moments(&e.measured, &e.requests, cols_b);
    let se = (va / cols_a.len() as f64 + vb / cols_b.len() as f64).sqrt();
    let rise = mb - ma;
    (rise + 1.96 * se < settings.exact_fraction * c.delta).then(|| Reason::ExactCostFlat {
        endpoint_rise: rise / ma,
    })
}

/// Whether cost can move between functions `f` and `g` of `e`: one calls
/// the other, or they share a caller, or both are roots.
fn related(e: &EndpointCosts, f: usize, g: usize) -> bool {
    let (cf, cg) = (&e.callers[f], &e.callers[g]);
    cf.binary_search(&(g as u32)).is_ok()
        || cg.binary_search(&(f as u32)).is_ok()
        || cf.iter().any(|x| cg.binary_search(x).is_ok())
        || (cf.is_empty() && cg.is_empty())
}

/// *Cost-shift*: offsets the rise with significant falls of related
/// functions; what remains must still be a minimum effect for the
/// functions taken together (as if they were one function).
fn cost_shift(
    c: &Candidate,
    e: &EndpointCosts,
    falls: &mut [Fall],
    settings: &DetectSettings,
) -> Option<Reason> {
    let f = c.function?;
    // Shifts are compared robustly (Hodges–Lehmann), so that a spike in a
    // few windows of a renamed function does not leave a "remainder".
    let rise = hodges_lehmann(&c.before, &c.after);
    let (mut offset, mut merged_before) = (0.0, c.mean_before);
    let mut taken: Vec<(usize, f64)> = Vec::new();
    for (i, fall) in falls.iter().enumerate() {
        if offset >= rise {
            break;
        }
        if fall.endpoint == c.endpoint
            && fall.metric == c.metric
            && fall.remaining > 0.0
            && related(e, f, fall.function)
        {
            let take = fall.remaining.min(rise - offset);
            offset += take;
            merged_before += fall.before;
            taken.push((i, take));
        }
    }
    let merged_effect = (settings.min_relative * merged_before).max(c.min_effect);
    if taken.is_empty() || rise - offset >= merged_effect {
        return None;
    }
    for &(i, take) in &taken {
        falls[i].remaining -= take;
    }
    Some(Reason::CostShift {
        from: taken
            .iter()
            .map(|&(i, _)| e.functions[falls[i].function].name.to_string())
            .collect(),
    })
}

/// The function at or below `top` (anywhere in the endpoint when none)
/// whose self cost per request rose most, if that rise explains at least
/// `explain_fraction` of `delta`.
fn likely_cause(
    e: &EndpointCosts,
    side: &Compared,
    top: Option<usize>,
    delta: f64,
    settings: &DetectSettings,
) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (s, f) in e.functions.iter().enumerate() {
        let below = top.is_none_or(|a| s == a || e.ancestors[s].binary_search(&(a as u32)).is_ok());
        if !below {
            continue;
        }
        let rise = moments(&f.self_cost, &side.per, &side.b).0 - moments(&f.self_cost, &side.per, &side.a).0;
        if best.is_none_or(|(_, r)| rise > r) {
            best = Some((s, rise));
        }
    }
    best.filter(|&(_, rise)| rise >= settings.explain_fraction * delta)
        .map(|(s, _)| s)
}

/// *Dedupe*: inclusive and total rises explained by self-cost regressions
/// below them join those regressions' `explains`; the others name their
/// likely cause (the function below them whose self cost rose most), and
/// of several with the same cause only the deepest is kept.
fn dedupe(
    candidates: Vec<Candidate>,
    table: &CostTable,
    columns: &[Compared],
    settings: &DetectSettings,
) -> Vec<Candidate> {
    let (mut roots, rest): (Vec<Candidate>, Vec<Candidate>) =
        candidates.into_iter().partition(|c| c.metric == Metric::SelfCost);
    let (inclusive, totals): (Vec<Candidate>, Vec<Candidate>) =
        rest.into_iter().partition(|c| c.metric == Metric::Inclusive);
    let mut grouped: HashMap<usize, Vec<String>> = HashMap::new();
    let mut unexplained = Vec::new();
    for c in inclusive {
        let (Some(a), e) = (c.function, &table.endpoints[c.endpoint]) else {
            continue;
        };
        let below: Vec<usize> = roots
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                s.endpoint == c.endpoint
                    && s.function
                        .is_some_and(|f| f == a || e.ancestors[f].binary_search(&(a as u32)).is_ok())
            })
            .map(|(i, _)| i)
            .collect();
        let explained: f64 = below.iter().map(|&i| roots[i].delta).sum();
        match below.first() {
            Some(&biggest) if explained >= settings.explain_fraction * c.delta => grouped
                .entry(biggest)
                .or_default()
                .push(format!("inclusive:{}", e.functions[a].name)),
            _ => unexplained.push(c),
        }
    }
    let mut kept_totals = Vec::new();
    for c in totals {
        let in_endpoint = |x: &&Candidate| x.endpoint == c.endpoint;
        let explained: f64 = roots
            .iter()
            .chain(&unexplained)
            .filter(in_endpoint)
            .map(|x| x.delta)
            .sum();
        let biggest = roots.iter().position(|s| s.endpoint == c.endpoint);
        match biggest {
            Some(i) if explained >= settings.explain_fraction * c.delta => {
                grouped.entry(i).or_default().push("total".to_owned())
            }
            _ => kept_totals.push(c),
        }
    }
    for (i, explains) in grouped {
        roots[i].explains.extend(explains);
    }
    // Unexplained rises: name the likely cause; keep the deepest per cause.
    let mut by_cause: Vec<Candidate> = Vec::new();
    for mut c in unexplained.into_iter().chain(kept_totals) {
        let e = &table.endpoints[c.endpoint];
        c.cause = likely_cause(e, &columns[c.endpoint], c.function, c.delta, settings);
        let depth = |x: &Candidate| x.function.map_or(0, |f| e.ancestors[f].len() + 1);
        let same = by_cause
            .iter()
            .position(|k| k.endpoint == c.endpoint && k.cause.is_some() && k.cause == c.cause);
        match same {
            Some(i) => {
                let name = |x: &Candidate| match x.function {
                    Some(f) => format!("{}:{}", x.metric.as_str(), e.functions[f].name),
                    None => "total".to_owned(),
                };
                let (deeper, shallower) = if depth(&c) > depth(&by_cause[i]) {
                    (c, std::mem::replace(&mut by_cause[i], Candidate::placeholder()))
                } else {
                    (std::mem::replace(&mut by_cause[i], Candidate::placeholder()), c)
                };
                let mut deeper = deeper;
                deeper.explains.push(name(&shallower));
                deeper.explains.extend(shallower.explains);
                by_cause[i] = deeper;
            }
            None => by_cause.push(c),
        }
    }
    roots.extend(by_cause);
    roots
}

impl Candidate {
    fn placeholder() -> Candidate {
        Candidate {
            endpoint: 0,
            function: None,
            metric: Metric::Total,
            before: Vec::new(),
            after: Vec::new(),
            mean_before: 0.0,
            delta: 0.0,
            min_effect: 0.0,
            p_mann_whitney: 1.0,
            p_welch: 1.0,
            q: 1.0,
            explains: Vec::new(),
            cause: None,
        }
    }
}

/// Everything but the numbers a regression needs.
pub(crate) struct Found<'a> {
    pub service: &'a str,
    pub endpoint: &'a str,
    pub function: Option<&'a str>,
    pub metric: Metric,
    pub measure: Measure,
    pub source: Source,
    pub deploys: [&'a str; 2],
    pub samples: [i64; 2],
    pub q: f64,
    pub explains: Vec<String>,
    pub cause: Option<&'a str>,
    pub at_ms: Option<i64>,
    pub now_ms: i64,
}

impl Found<'_> {
    /// The regression record, with its estimates from the windows
    /// `before` and `after`.
    pub fn into_regression(
        self,
        table: &CostTable,
        before: &[f64],
        after: &[f64],
        [p_mann_whitney, p_welch]: [f64; 2],
        settings: &DetectSettings,
    ) -> Regression {
        let id = regression_id(
            self.service,
            self.endpoint,
            self.function,
            self.metric,
            self.deploys[1],
        );
        let seed = u64::from_str_radix(&id, 16).unwrap_or(1);
        let estimate = |xs: &[f64]| {
            let (low, high) = mean_ci(xs, settings.confidence);
            Estimate {
                mean: mean(xs),
                low,
                high,
            }
        };
        let shift = hodges_lehmann(before, after);
        let (low, high) = hodges_lehmann_ci(
            before,
            after,
            settings.confidence,
            settings.bootstrap_rounds,
            seed,
        );
        let base = mean(before);
        // Where a self-cost rise between two deploys concentrates.
        let call_path = match (self.metric, self.function) {
            (Metric::SelfCost, Some(name)) if self.deploys[0] != self.deploys[1] => {
                let deploy = |name: &str| table.deploys.iter().position(|d| &**d == name);
                let e = table.endpoints.iter().find(|e| &*e.endpoint == self.endpoint);
                e.zip(deploy(self.deploys[0]).zip(deploy(self.deploys[1])))
                    .and_then(|(e, (a, b))| e.call_path(e.function(name)?, a, b, self.measure, settings))
            }
            _ => None,
        };
        // Its price in cores, at the load of the deploy after (CPU time
        // only: an instruction count has no core to be priced in).
        let capacity = (table.unit == Unit::CpuNs && shift > 0.0)
            .then(|| {
                let after = table.deploys.iter().position(|d| &**d == self.deploys[1])?;
                let e = table.endpoints.iter().find(|e| &*e.endpoint == self.endpoint)?;
                e.capacity(after, self.measure, shift, settings)
            })
            .flatten();
        Regression {
            id,
            service: self.service.to_owned(),
            endpoint: self.endpoint.to_owned(),
            function: self.function.map(str::to_owned),
            metric: self.metric,
            measure: self.measure,
            source: self.source,
            deploy_before: self.deploys[0].to_owned(),
            deploy_after: self.deploys[1].to_owned(),
            unit: table.unit,
            before: estimate(before),
            after: estimate(after),
            change: Estimate {
                mean: shift,
                low,
                high,
            },
            relative: (base > 0.0).then(|| Estimate {
                mean: shift / base,
                low: low / base,
                high: high / base,
            }),
            p_value: p_mann_whitney.max(p_welch),
            p_mann_whitney,
            p_welch,
            q_value: self.q,
            windows: [before.len(), after.len()],
            samples: self.samples,
            explains: self.explains,
            cause: self.cause.map(str::to_owned),
            at_ms: self.at_ms,
            first_seen_ms: self.now_ms,
            last_seen_ms: self.now_ms,
            state: State::Open,
            resolved_by: None,
            links: Links::default(),
            call_path,
            mde: None,
            capacity,
            suspects: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::costs::CostTableBuilder;
    use crate::costs::Weight;
    use crate::rng::Rng;
    use flameshift_profile::wire::Unit;

    const PERIOD: f64 = 10_000.0;

    /// Two deploys of 20 windows of `requests(d, w)` requests to `GET /`;
    /// `stacks(d, w)` gives each stack's cost per request; samples are
    /// Poisson draws at a 10 µs period.
    fn table(
        seed: u64,
        requests: impl Fn(usize, usize) -> i64,
        stacks: impl Fn(usize, usize) -> Vec<(&'static str, f64)>,
    ) -> CostTable {
        builder(seed, requests, stacks).finish()
    }

    /// The builder of [`table`], to add more before it is finished.
    fn builder(
        seed: u64,
        requests: impl Fn(usize, usize) -> i64,
        stacks: impl Fn(usize, usize) -> Vec<(&'static str, f64)>,
    ) -> CostTableBuilder {
        builder_counting(seed, requests, stacks, true)
    }

    /// [`table`] as a producer that counts no requests (a Pyroscope SDK,
    /// OTLP, `record`) sends it: the same work, only the samples.
    fn uncounted(
        seed: u64,
        requests: impl Fn(usize, usize) -> i64,
        stacks: impl Fn(usize, usize) -> Vec<(&'static str, f64)>,
    ) -> CostTable {
        builder_counting(seed, requests, stacks, false).finish()
    }

    fn builder_counting(
        seed: u64,
        requests: impl Fn(usize, usize) -> i64,
        stacks: impl Fn(usize, usize) -> Vec<(&'static str, f64)>,
        counted: bool,
    ) -> CostTableBuilder {
        let deploys: Vec<Arc<str>> = vec!["v1".into(), "v2".into()];
        let mut b = CostTableBuilder::new("shop", Unit::CpuNs, &deploys);
        let mut rng = Rng::new(seed);
        let endpoint: Arc<str> = "GET /".into();
        for (d, deploy) in deploys.iter().enumerate() {
            for w in 0..20 {
                let window = ((d * 20 + w) * 60_000) as i64;
                let n = requests(d, w);
                if counted {
                    b.add_requests(window, deploy, &endpoint, n);
                }
                for (stack, cost) in stacks(d, w) {
                    let count = rng.poisson(n as f64 * cost / PERIOD);
                    let frames: Vec<Arc<str>> = stack.split(';').map(Arc::from).collect();
                    let weight = Weight {
                        weight: count * PERIOD as i64,
                        count,
                    };
                    b.add_stack(window, deploy, &endpoint, &frames, weight);
                }
            }
        }
        b
    }

    #[test]
    fn a_sampled_rise_the_exact_cost_does_not_show_is_not_a_regression() {
        let rise = |d: usize, _| match d {
            0 => base(),
            _ => with(base(), &[("main;handle;render;escape", 230_000.0)]),
        };
        // The agent measured every request: 1 ms each (± 0.5%), then
        // either the same (the samples moved, the cost did not) or 30 µs
        // more (the rise is real).
        let measured = |extra: f64| {
            let mut b = builder(7, |_, _| 1_000, rise);
            let mut rng = Rng::new(8);
            let endpoint: Arc<str> = "GET /".into();
            for (d, deploy) in ["v1", "v2"].into_iter().enumerate() {
                for w in 0..20 {
                    let per_request = 1_000_000.0 * (1.0 + 0.005 * rng.normal()) + extra * d as f64;
                    let window = ((d * 20 + w) * 60_000) as i64;
                    b.add_measured(window, deploy, &endpoint, (per_request * 1_000.0) as i64);
                }
            }
            compare(&b.finish())
        };
        let flat = measured(0.0);
        assert!(flat.regressions.is_empty(), "{:#?}", flat.regressions);
        assert!(
            flat.suppressed.iter().any(|s| s.function.as_deref() == Some("escape")
                && matches!(s.reason, Reason::ExactCostFlat { endpoint_rise } if endpoint_rise.abs() < 0.01)),
            "{:#?}",
            flat.suppressed
        );
        let real = measured(30_000.0);
        assert!(
            real.regressions
                .iter()
                .any(|r| r.function.as_deref() == Some("escape")),
            "{:#?}",
            real.suppressed
        );
        // Without exact costs, the samples alone decide (as before).
        assert_eq!(compare(&table(7, |_, _| 1_000, rise)).regressions.len(), 1);
    }

    fn base() -> Vec<(&'static str, f64)> {
        vec![
            ("main;handle;parse", 300_000.0),
            ("main;handle;render;escape", 200_000.0),
            ("main;handle;db;query", 400_000.0),
            ("main;handle", 100_000.0),
        ]
    }

    fn with(stacks: Vec<(&'static str, f64)>, changed: &[(&'static str, f64)]) -> Vec<(&'static str, f64)> {
        let mut out: Vec<(&'static str, f64)> = stacks
            .into_iter()
            .filter(|(s, _)| !changed.iter().any(|(c, _)| c == s))
            .collect();
        out.extend_from_slice(changed);
        out
    }

    fn compare(t: &CostTable) -> Comparison {
        compare_deploys(t, 0, 1, &DetectSettings::default(), 0)
    }

    #[test]
    fn finds_a_self_cost_regression_with_its_interval_and_groups_its_ancestors() {
        let t = table(
            1,
            |_, _| 1_000,
            |d, _| match d {
                0 => base(),
                _ => with(base(), &[("main;handle;render;escape", 230_000.0)]),
            },
        );
        let c = compare(&t);
        assert_eq!(c.regressions.len(), 1, "{:#?}", c.regressions);
        let r = &c.regressions[0];
        assert_eq!(
            (r.function.as_deref(), r.metric),
            (Some("escape"), Metric::SelfCost)
        );
        assert_eq!((r.deploy_before.as_str(), r.deploy_after.as_str()), ("v1", "v2"));
        let rel = r.relative.expect("cost before");
        assert!(rel.low <= 0.15 && 0.15 <= rel.high, "{rel:?}");
        assert!(rel.high - rel.low < 0.05, "{rel:?}");
        assert!(r.q_value <= 0.01 && r.p_value <= r.q_value);
        assert!(
            r.explains.contains(&"inclusive:render".to_owned()),
            "{:?}",
            r.explains
        );
        assert!(r.explains.contains(&"total".to_owned()), "{:?}", r.explains);
        assert_eq!(r.windows, [20, 20]);
        assert!(r.summary().contains("escape (self cost) +15"), "{}", r.summary());
        assert!(!r.summary().contains("suspect"), "{}", r.summary());
        // With its deploy's suspects, the webhook line names the first.
        let mut named = r.clone();
        named.suspects = crate::suspects::rank(
            &[crate::suspects::Regressed {
                function: "escape".into(),
                callers: vec![],
            }],
            &std::collections::HashMap::from([(
                "escape".to_owned(),
                crate::suspects::SourceSpan {
                    file: "/src/render.c".into(),
                    first: 10,
                    last: 20,
                },
            )]),
            &[crate::suspects::Commit {
                sha: "ab12cd".into(),
                short: "ab12cd".into(),
                title: "escape: per character".into(),
                author: "Ada <ada@example.com>".into(),
                files: vec![crate::suspects::FileChange {
                    path: "render.c".into(),
                    lines: vec![(12, 12)],
                }],
            }],
        );
        assert!(
            named
                .summary()
                .ends_with(", suspect ab12cd \"escape: per character\" (Ada <ada@example.com>)"),
            "{}",
            named.summary()
        );
    }

    #[test]
    fn a_shared_helper_that_rose_under_one_caller_names_that_caller() {
        // `mix` is called from `alpha` and `beta`; v2's `beta` calls it
        // more: `mix` self +20%, all of it under `beta`.
        let stacks = |beta_mix: f64| {
            vec![
                ("main;handle;alpha;mix", 200_000.0),
                ("main;handle;beta;mix", beta_mix),
                ("main;handle;alpha", 100_000.0),
                ("main;handle;beta", 100_000.0),
            ]
        };
        let t = table(
            3,
            |_, _| 1_000,
            |d, _| stacks(if d == 0 { 100_000.0 } else { 160_000.0 }),
        );
        let c = compare(&t);
        let mix = c
            .regressions
            .iter()
            .find(|r| r.function.as_deref() == Some("mix") && r.metric == Metric::SelfCost)
            .unwrap_or_else(|| panic!("{:#?}", c.regressions));
        let path = mix.call_path.as_ref().expect("a call path");
        assert_eq!(path.callers, ["beta", "handle", "main"]);
        assert!(path.share > 0.8, "{path:?}");
        let rise = path.caller_change().unwrap();
        assert!((rise - 0.3).abs() < 0.05, "beta inclusive 200 → 260 µs: {rise}");
        assert!(mix.summary().contains("under beta"), "{}", mix.summary());
    }

    #[test]
    fn each_cost_says_how_small_a_rise_it_could_see_and_a_rise_that_size_is_caught_about_80_percent_of_the_time(
    ) {
        // 30 requests a window: about 600 samples of escape, ±4% a window.
        let c = compare(&table(1, |_, _| 30, |_, _| base()));
        let escape = c
            .sensitivity
            .iter()
            .find(|s| s.function.as_deref() == Some("escape") && s.metric == Metric::SelfCost)
            .expect("escape compared");
        let mde = escape.mde.expect("tested");
        assert!(mde > 0.02 && mde < 0.2, "{escape:?}");
        assert_eq!(escape.observations, [20, 20]);
        assert!(escape.more_for_target.is_some_and(|k| k > 0), "{escape:?}");
        // Every endpoint total and tested function self cost has a row.
        assert!(c.sensitivity.iter().any(|s| s.function.is_none()));
        // escape raised by exactly its predicted MDE, over 40 seeds.
        let raised = 200_000.0 * (1.0 + mde);
        let caught = (100..140)
            .filter(|&seed| {
                let t = table(
                    seed,
                    |_, _| 30,
                    |d, _| match d {
                        0 => base(),
                        _ => with(base(), &[("main;handle;render;escape", raised)]),
                    },
                );
                compare(&t)
                    .regressions
                    .iter()
                    .any(|r| r.function.as_deref() == Some("escape"))
            })
            .count();
        assert!(
            (24..=38).contains(&caught),
            "{caught} of 40 caught at the predicted MDE {mde}"
        );
        // And a regression carries its own test's MDE.
        let found = compare(&table(
            2,
            |_, _| 1_000,
            |d, _| match d {
                0 => base(),
                _ => with(base(), &[("main;handle;render;escape", 240_000.0)]),
            },
        ));
        assert!(
            found.regressions[0].mde.is_some_and(|m| m >= 0.02),
            "{:?}",
            found.regressions[0]
        );
    }

    #[test]
    fn white_noise_gives_no_regression_at_the_stated_rate() {
        let alarms = (0..100)
            .filter(|&seed| {
                !compare(&table(seed, |_, _| 1_000, |_, _| base()))
                    .regressions
                    .is_empty()
            })
            .count();
        // q ≤ 0.01 per deploy family: expect about 1 in 100, allow 3.
        assert!(alarms <= 3, "{alarms} of 100 noise-only deploys alerted");
    }

    #[test]
    fn a_rename_or_a_refactor_is_a_cost_shift() {
        let renamed = table(
            2,
            |_, _| 1_000,
            |d, _| match d {
                0 => base(),
                _ => with(
                    base(),
                    &[("main;handle;parse", 0.0), ("main;handle;parse_v2", 300_000.0)],
                ),
            },
        );
        let c = compare(&renamed);
        assert!(c.regressions.is_empty(), "{:#?}", c.regressions);
        assert!(c
            .suppressed
            .iter()
            .any(|s| s.function.as_deref() == Some("parse_v2")
                && matches!(&s.reason, Reason::CostShift { from } if from == &["parse".to_owned()])));
        let refactored = table(
            3,
            |_, _| 1_000,
            |d, _| match d {
                0 => base(),
                _ => with(
                    base(),
                    &[
                        ("main;handle;db;query", 250_000.0),
                        ("main;handle;db;query;decode", 150_000.0),
                    ],
                ),
            },
        );
        let c = compare(&refactored);
        assert!(c.regressions.is_empty(), "{:#?}", c.regressions);
        assert!(c
            .suppressed
            .iter()
            .any(|s| matches!(s.reason, Reason::CostShift { .. })));
    }

    #[test]
    fn a_spike_that_goes_away_and_a_traffic_shift_are_not_regressions() {
        let spike = |seed, windows: std::ops::RangeInclusive<usize>| {
            table(
                seed,
                |_, _| 1_000,
                move |d, w| match d == 1 && windows.contains(&w) {
                    true => with(base(), &[("main;handle;parse", 600_000.0)]),
                    false => base(),
                },
            )
        };
        assert!(compare(&spike(4, 2..=7)).regressions.is_empty());
        // Long enough for both tests, gone by the second half.
        let c = compare(&spike(4, 0..=12));
        assert!(c.regressions.is_empty(), "{:#?}", c.regressions);
        assert!(
            c.suppressed.iter().any(|s| s.reason == Reason::WentAway),
            "{:#?}",
            c.suppressed
        );
        let traffic = table(5, |d, _| if d == 0 { 1_000 } else { 3_000 }, |_, _| base());
        assert!(compare(&traffic).regressions.is_empty());
    }

    #[test]
    fn too_few_windows_is_not_enough_data_and_says_so() {
        let t = table(6, |_, w| if w < 5 { 1_000 } else { 0 }, |_, _| base());
        let c = compare(&t);
        assert_eq!((c.endpoints_compared, c.tests), (0, 0));
        let why = &c.not_compared[0];
        assert_eq!(
            (why.measure, why.windows, why.needed),
            (Measure::PerRequest, [5, 5], 10)
        );
        assert!(why.reason.contains("at least 20 requests"), "{}", why.reason);
    }

    #[test]
    fn without_request_counts_a_rise_is_found_in_shares_and_sized_against_what_did_not_change() {
        // escape does 30% more work in v2, and v2 takes twice the traffic:
        // its raw share goes 20% → 24.5% (+23%); against the functions that
        // did not change it is +30%.
        let t = uncounted(
            11,
            |d, _| if d == 0 { 1_000 } else { 2_000 },
            |d, _| match d {
                0 => base(),
                _ => with(base(), &[("main;handle;render;escape", 260_000.0)]),
            },
        );
        let c = compare(&t);
        assert_eq!(c.regressions.len(), 1, "{:#?}", c.regressions);
        let r = &c.regressions[0];
        assert_eq!(
            (r.function.as_deref(), r.metric, r.measure),
            (Some("escape"), Metric::SelfCost, Measure::Share)
        );
        let rel = r.relative.expect("a share before");
        assert!(rel.low <= 0.30 && 0.30 <= rel.high, "{rel:?}");
        assert!((r.before.mean - 0.2).abs() < 0.01, "{:?}", r.before);
        assert!(r.summary().contains("in share"), "{}", r.summary());
        assert!(r.summary().contains("% of samples →"), "{}", r.summary());
        // The shares' total is 1: never tested.
        assert!(c.sensitivity.iter().all(|s| s.function.is_some()));
        assert!(c.sensitivity.iter().all(|s| s.measure == Some(Measure::Share)));
    }

    #[test]
    fn without_request_counts_a_function_that_got_cheaper_raises_no_other() {
        // query halves: every other share rises by a quarter, a mirror of
        // the fall, which the cost-shift filter names.
        let t = uncounted(
            12,
            |_, _| 1_000,
            |d, _| match d {
                0 => base(),
                _ => with(base(), &[("main;handle;db;query", 200_000.0)]),
            },
        );
        let c = compare(&t);
        assert!(c.regressions.is_empty(), "{:#?}", c.regressions);
        for name in ["parse", "escape"] {
            assert!(
                c.suppressed.iter().any(|s| s.function.as_deref() == Some(name)
                    && matches!(&s.reason, Reason::CostShift { from } if from.contains(&"query".to_owned()))),
                "{name}: {:#?}",
                c.suppressed
            );
        }
        // A rename takes a function's samples away whole: the others'
        // shares do not move, and none is a regression.
        let renamed = uncounted(
            14,
            |_, _| 1_000,
            |d, _| match d {
                0 => base(),
                _ => with(
                    base(),
                    &[("main;handle;parse", 0.0), ("main;handle;parse_v2", 300_000.0)],
                ),
            },
        );
        let c = compare(&renamed);
        assert!(c.regressions.is_empty(), "{:#?}", c.regressions);
        // And a spike that goes away is not a regression in shares either.
        let spike = uncounted(
            13,
            |_, _| 1_000,
            |d, w| match d == 1 && w <= 12 {
                true => with(base(), &[("main;handle;parse", 600_000.0)]),
                false => base(),
            },
        );
        let c = compare(&spike);
        assert!(c.regressions.is_empty(), "{:#?}", c.regressions);
        assert!(
            c.suppressed.iter().any(|s| s.reason == Reason::WentAway),
            "{:#?}",
            c.suppressed
        );
    }

    #[test]
    fn without_request_counts_white_noise_gives_no_regression_at_the_stated_rate() {
        let alarms = (0..100)
            .filter(|&seed| {
                !compare(&uncounted(seed, |_, _| 1_000, |_, _| base()))
                    .regressions
                    .is_empty()
            })
            .count();
        assert!(alarms <= 3, "{alarms} of 100 noise-only deploys alerted");
    }

    #[test]
    fn a_program_with_one_function_is_compared_per_second() {
        // Every sample in `spin`: its share is always 1, its cost per
        // second of wall time is what can rise.
        let spin = |us: f64| vec![("main;spin", us)];
        let t = uncounted(
            14,
            |_, _| 1_000,
            |d, _| spin(if d == 0 { 500_000.0 } else { 600_000.0 }),
        );
        let c = compare(&t);
        let r = c
            .regressions
            .iter()
            .find(|r| r.function.as_deref() == Some("spin") && r.metric == Metric::SelfCost)
            .unwrap_or_else(|| panic!("{:#?}", c.regressions));
        assert_eq!(r.measure, Measure::PerSecond);
        // 1,000 × 500 µs of work a 60 s window: 8.3 ms a second.
        assert!((r.before.mean / 1e6 - 8.33).abs() < 0.2, "{:?}", r.before);
        // The deploy's first and last windows may be partial: left out.
        assert_eq!(r.windows, [18, 18]);
        let rel = r.relative.expect("cost before");
        assert!(rel.low <= 0.2 && 0.2 <= rel.high, "{rel:?}");
        assert!(r.summary().contains("cores"), "{}", r.summary());
    }
}
