//! Change points inside one deploy (docs/detection.md, layer 2): a
//! cost per request that steps up while one version runs — a dependency,
//! a data change, a flag flipped — which no deploy comparison sees.
//!
//! For each endpoint, the total and the `drift_functions` most expensive
//! functions (self cost) get a series over the deploy's windows; the
//! robust method finds its change points (a spike is an outlier and a
//! slow trend a drift, not a staircase of steps; no season is looked for
//! within one deploy). A slow rise that lasts to the deploy's end (a
//! leak) is one regression where it starts. A rise is reported when it is at
//! least the minimum effect, persists (every later segment keeps at least
//! `persist_fraction` of it: a spike that goes away is not a regression),
//! and the larger of its one-sided Mann–Whitney and Welch p-values
//! between the two segments, Bonferroni-corrected for the splits and
//! series examined, is within `drift_max_q`. Each is mapped to the deploy it fell in.

use std::collections::HashSet;

use crate::changepoint::{robust, Period, Robust};
use crate::compare::Found;
use crate::costs::{ratios, CostTable};
use crate::regression::{Measure, Metric, Regression, Source};
use crate::settings::DetectSettings;
use crate::stats::{mann_whitney_greater_p, mean, welch_greater_p};

/// Fewest windows on each side of a change point.
const MIN_SEGMENT: usize = 5;

/// Change points that raised a cost inside deploy `deploy` of `table`,
/// skipping `(endpoint, function, metric)` keys in `skip` (already
/// reported by the deploy comparison).
pub fn drifts(
    table: &CostTable,
    deploy: usize,
    settings: &DetectSettings,
    now_ms: i64,
    skip: &HashSet<(String, Option<String>, Metric)>,
) -> Vec<Regression> {
    struct Series<'a> {
        endpoint: usize,
        measure: Measure,
        function: Option<usize>,
        values: Vec<f64>,
        windows: Vec<i64>,
        samples: &'a [i64],
    }
    let mut series: Vec<Series> = Vec::new();
    for (ei, e) in table.endpoints.iter().enumerate() {
        // Per request only: within one deploy nothing tells a function
        // that rose from one whose share rose because another fell (no
        // "before" to find the unchanged functions in), nor a cost per
        // second that rose from more traffic.
        let measure = e.measure(&[deploy], settings);
        if measure != Measure::PerRequest {
            continue;
        }
        let cols = e.columns(deploy, measure, settings);
        if cols.len() < 2 * MIN_SEGMENT {
            continue;
        }
        let per = e.divisors(measure, settings);
        let windows: Vec<i64> = cols.iter().map(|&c| e.windows[c]).collect();
        series.push(Series {
            endpoint: ei,
            measure,
            function: None,
            values: ratios(&e.total, &per, &cols),
            windows: windows.clone(),
            samples: &e.total_samples,
        });
        let mut by_cost: Vec<(usize, f64)> = e
            .functions
            .iter()
            .enumerate()
            .filter(|(_, f)| f.self_samples[deploy] >= settings.min_samples)
            .map(|(i, f)| (i, cols.iter().map(|&c| f.self_cost[c]).sum()))
            .collect();
        by_cost.sort_by(|a, b| b.1.total_cmp(&a.1));
        for &(fi, _) in by_cost.iter().take(settings.drift_functions) {
            series.push(Series {
                endpoint: ei,
                measure,
                function: Some(fi),
                values: ratios(&e.functions[fi].self_cost, &per, &cols),
                windows: windows.clone(),
                samples: &e.functions[fi].self_samples,
            });
        }
    }
    let family = series.len().max(1) as f64;
    let settings_cp = Robust {
        max_p_value: settings.drift_max_p,
        min_segment: MIN_SEGMENT,
        min_change: settings.min_relative,
        period: Period::None,
        ..Robust::default()
    };
    let mut found = Vec::new();
    for s in &series {
        let e = &table.endpoints[s.endpoint];
        let metric = if s.function.is_some() {
            Metric::SelfCost
        } else {
            Metric::Total
        };
        let function = s.function.map(|f| &*e.functions[f].name);
        if skip.contains(&(e.endpoint.to_string(), function.map(str::to_owned), metric)) {
            continue;
        }
        let segmentation = robust(&s.values, &settings_cp);
        let points = &segmentation.change_points;
        let mut bounds: Vec<usize> = vec![0];
        bounds.extend(points.iter().map(|p| p.index));
        bounds.push(s.values.len());
        let level = mean(&s.values);
        // A rise from `before` to `after` starting at window `at`, if the
        // tests agree on it within the family's correction: Mann–Whitney
        // and Welch for a step (as in the deploy comparison: a short run of
        // high windows convinces Welch's t alone too easily), Welch and the
        // drift's slope for a drift (`slope_p`: many windows rise, which
        // ranks of a few on each side cannot show as strongly).
        let mut report = |before: &[f64], after: &[f64], at: usize, slope_p: Option<f64>| {
            let p = [
                mann_whitney_greater_p(before, after),
                welch_greater_p(before, after),
            ];
            let deciding = match slope_p {
                Some(slope_p) => p[1].max(slope_p),
                None => p[0].max(p[1]),
            };
            let q = (deciding * s.values.len() as f64 * family).min(1.0);
            if q > settings.drift_max_q {
                return;
            }
            let deploy_name = &*table.deploys[deploy];
            let record = Found {
                service: &table.service,
                endpoint: &e.endpoint,
                function,
                metric,
                measure: s.measure,
                source: Source::ChangePoint,
                deploys: [deploy_name, deploy_name],
                samples: [s.samples[deploy], s.samples[deploy]],
                q,
                explains: Vec::new(),
                cause: None,
                at_ms: Some(s.windows[at]),
                now_ms,
            };
            found.push(record.into_regression(table, before, after, p, settings));
        };
        let floor = settings.min_share * level;
        for (k, point) in points.iter().enumerate() {
            let delta = point.mean_after - point.mean_before;
            if delta <= 0.0 || delta < (settings.min_relative * point.mean_before).max(floor) {
                continue;
            }
            let persists = points[k + 1..]
                .iter()
                .all(|later| later.mean_after - point.mean_before >= settings.persist_fraction * delta);
            if persists {
                report(
                    &s.values[bounds[k]..bounds[k + 1]],
                    &s.values[bounds[k + 1]..bounds[k + 2]],
                    point.index,
                    None,
                );
            }
        }
        // A slow rise that lasts to the end of the deploy (a leak): one
        // regression where it starts, its second half against the windows
        // before it (or its own first ones when it starts the deploy).
        for d in &segmentation.drifts {
            let rise = d.level_end - d.level_start;
            let lasts = d.end + 1 == s.values.len();
            if !lasts || rise <= 0.0 || rise < (settings.min_relative * d.level_start).max(floor) {
                continue;
            }
            let before = match d.start {
                start if start >= MIN_SEGMENT => &s.values[start.saturating_sub(2 * MIN_SEGMENT)..start],
                start => &s.values[start..start + MIN_SEGMENT],
            };
            // Its second half: a few windows alone cannot convince
            // Mann–Whitney within the family's correction.
            let half = ((d.end + 1 - d.start) / 2).max(MIN_SEGMENT);
            let after = &s.values[s.values.len() - half..];
            report(before, after, d.start, Some(d.p_value));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use flameshift_profile::wire::Unit;

    use super::*;
    use crate::costs::{CostTableBuilder, Weight};
    use crate::rng::Rng;

    /// One deploy of 40 one-minute windows of `GET /feed`, whose `render`
    /// costs `render_us(window)` µs per request (±2% noise) beside a steady
    /// `parse` of 300 µs.
    fn deploy(render_us: impl Fn(usize) -> f64) -> CostTable {
        deploy_counted(render_us, true)
    }

    fn deploy_counted(render_us: impl Fn(usize) -> f64, counted: bool) -> CostTable {
        let deploys: Vec<Arc<str>> = vec!["v1".into()];
        let endpoint: Arc<str> = "GET /feed".into();
        let mut table = CostTableBuilder::new("shop", Unit::CpuNs, &deploys);
        let mut rng = Rng::new(11);
        for w in 0..40 {
            let window_ms = w as i64 * 60_000;
            let requests = 2_000;
            if counted {
                table.add_requests(window_ms, &deploys[0], &endpoint, requests);
            }
            let stacks = [
                ("main;handle;parse", 300.0),
                ("main;handle;escape", 150.0),
                ("main;handle;render", render_us(w)),
            ];
            for (stack, us) in stacks {
                let frames: Vec<Arc<str>> = stack.split(';').map(Arc::from).collect();
                let noisy = us * (1.0 + 0.02 * rng.normal());
                let ns = (noisy * 1_000.0 * requests as f64) as i64;
                table.add_stack(
                    window_ms,
                    &deploys[0],
                    &endpoint,
                    &frames,
                    Weight {
                        weight: ns,
                        count: ns / 100_000,
                    },
                );
            }
        }
        table.finish()
    }

    fn found(table: &CostTable) -> Vec<Regression> {
        drifts(table, 0, &DetectSettings::default(), 0, &HashSet::new())
    }

    #[test]
    fn a_step_inside_a_deploy_is_one_regression_at_its_window() {
        let table = deploy(|w| if w >= 22 { 240.0 } else { 200.0 });
        let render: Vec<_> = found(&table)
            .into_iter()
            .filter(|r| r.function.as_deref() == Some("render"))
            .collect();
        assert_eq!(render.len(), 1, "{render:?}");
        assert_eq!(render[0].at_ms, Some(22 * 60_000), "{:?}", render[0]);
    }

    #[test]
    fn without_request_counts_nothing_is_looked_for_inside_a_deploy() {
        // render halves at window 22: parse's and escape's shares rise,
        // which inside one deploy looks like a rise.
        let table = deploy_counted(|w| if w >= 22 { 100.0 } else { 200.0 }, false);
        assert!(found(&table).is_empty(), "{:?}", found(&table));
    }

    #[test]
    fn a_spike_is_nothing_and_a_leak_is_one_regression_where_it_starts() {
        let spike = deploy(|w| if (18..20).contains(&w) { 400.0 } else { 200.0 });
        assert!(found(&spike).is_empty(), "{:?}", found(&spike));
        // A leak, +1% a window from window 10 to the end: one regression,
        // where it starts.
        let trend = deploy(|w| 200.0 * (1.0 + 0.01 * w.saturating_sub(10) as f64));
        let render: Vec<_> = found(&trend)
            .into_iter()
            .filter(|r| r.function.as_deref() == Some("render"))
            .collect();
        assert_eq!(render.len(), 1, "{render:?}");
        let at = render[0].at_ms.unwrap() / 60_000;
        assert!(at.abs_diff(10) <= 3, "{at}");
        assert!(
            render[0].relative.as_ref().is_some_and(|r| r.mean > 0.15),
            "{:?}",
            render[0]
        );
    }
}
