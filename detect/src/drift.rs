//! Change points inside one deploy (docs/detection.md, layer 2): a
//! cost per request that steps up while one version runs — a dependency,
//! a data change, a flag flipped — which no deploy comparison sees.
//!
//! For each endpoint, the total and the `drift_functions` most expensive
//! functions (self cost) get a series over the deploy's windows;
//! E-Divisive finds its change points. A rise is reported when it is at
//! least the minimum effect, persists (every later segment keeps at least
//! `persist_fraction` of it: a spike that goes away is not a regression),
//! and the larger of its one-sided Mann–Whitney and Welch p-values
//! between the two segments, Bonferroni-corrected for the splits and
//! series examined, is within `drift_max_q`. Each is mapped to the deploy it fell in.

use std::collections::HashSet;

use crate::changepoint::{e_divisive, EDivisive};
use crate::compare::Found;
use crate::costs::CostTable;
use crate::regression::{Metric, Regression, Source};
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
        function: Option<usize>,
        values: Vec<f64>,
        windows: Vec<i64>,
        samples: &'a [i64],
    }
    let mut series: Vec<Series> = Vec::new();
    for (ei, e) in table.endpoints.iter().enumerate() {
        let cols = e.usable_columns(deploy, settings.min_requests);
        if cols.len() < 2 * MIN_SEGMENT {
            continue;
        }
        let windows: Vec<i64> = cols.iter().map(|&c| e.windows[c]).collect();
        series.push(Series {
            endpoint: ei,
            function: None,
            values: e.per_request(&e.total, &cols),
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
                function: Some(fi),
                values: e.per_request(&e.functions[fi].self_cost, &cols),
                windows: windows.clone(),
                samples: &e.functions[fi].self_samples,
            });
        }
    }
    let family = series.len().max(1) as f64;
    let settings_ed = EDivisive {
        max_p_value: settings.drift_max_p,
        min_segment: MIN_SEGMENT,
        min_change: settings.min_relative,
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
        let points = e_divisive(&s.values, &settings_ed);
        let mut bounds: Vec<usize> = vec![0];
        bounds.extend(points.iter().map(|p| p.index));
        bounds.push(s.values.len());
        let level = mean(&s.values);
        for (k, point) in points.iter().enumerate() {
            let delta = point.mean_after - point.mean_before;
            let floor = settings.min_share * level;
            if delta <= 0.0 || delta < (settings.min_relative * point.mean_before).max(floor) {
                continue;
            }
            let persists = points[k + 1..]
                .iter()
                .all(|later| later.mean_after - point.mean_before >= settings.persist_fraction * delta);
            let before = &s.values[bounds[k]..bounds[k + 1]];
            let after = &s.values[bounds[k + 1]..bounds[k + 2]];
            // Both tests must agree, as in the deploy comparison; a short
            // run of high windows convinces Welch's t alone too easily.
            let p = [
                mann_whitney_greater_p(before, after),
                welch_greater_p(before, after),
            ];
            let q = (p[0].max(p[1]) * s.values.len() as f64 * family).min(1.0);
            if !persists || q > settings.drift_max_q {
                continue;
            }
            let deploy_name = &*table.deploys[deploy];
            let record = Found {
                service: &table.service,
                endpoint: &e.endpoint,
                function,
                metric,
                source: Source::ChangePoint,
                deploys: [deploy_name, deploy_name],
                samples: [s.samples[deploy], s.samples[deploy]],
                q,
                explains: Vec::new(),
                cause: None,
                at_ms: Some(s.windows[point.index]),
                now_ms,
            };
            found.push(record.into_regression(table, before, after, p, settings));
        }
    }
    found
}
