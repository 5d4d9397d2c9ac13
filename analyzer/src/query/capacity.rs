//! What a deploy costs in cores: from an endpoint's (or the whole
//! service's) windows, the cores its CPU kept busy in the busiest window
//! (cost per request × requests per second there: the sampled CPU of
//! the window over its length) and the core-hours a day at its mean.
//! CPU time only: instructions are not time.

use std::collections::BTreeMap;

use serde::Serialize;

use super::SeriesPoint;
use crate::model::Unit;

/// One deploy's cost in cores.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeployCapacity {
    /// The deploy.
    pub deploy: String,
    /// Cores busy in the deploy's busiest window.
    pub cores_at_peak: f64,
    /// Core-hours a day at the deploy's mean over its full windows.
    pub core_hours_per_day: f64,
    /// Requests a second in that busiest window (0 where none were
    /// counted).
    pub peak_rps: f64,
    /// Windows it spans.
    pub windows: usize,
}

/// Each deploy's cores of `points` (windows of `window_ms`, several
/// endpoints' points of one window are summed); empty unless `unit` is
/// CPU time. The first and last window of a deploy are usually partial
/// (it started or stopped inside them): the mean leaves them out when
/// there are three windows or more; the peak takes every window.
pub fn deploy_capacity<'a>(
    points: impl IntoIterator<Item = &'a SeriesPoint>,
    window_ms: i64,
    unit: Unit,
) -> Vec<DeployCapacity> {
    if unit != Unit::CpuNs || window_ms <= 0 {
        return Vec::new();
    }
    let mut windows: BTreeMap<&str, BTreeMap<i64, (i64, i64)>> = BTreeMap::new();
    for p in points {
        let slot = windows
            .entry(&p.deploy)
            .or_default()
            .entry(p.window_ms)
            .or_default();
        slot.0 += p.cost;
        slot.1 += p.requests;
    }
    let seconds = window_ms as f64 / 1000.0;
    let mut out: Vec<DeployCapacity> = windows
        .into_iter()
        .map(|(deploy, by_window)| {
            let cores: Vec<(f64, f64)> = by_window
                .values()
                .map(|&(cost, requests)| (cost as f64 / 1e9 / seconds, requests as f64 / seconds))
                .collect();
            let (peak_cores, peak_rps) =
                cores
                    .iter()
                    .copied()
                    .fold((0.0, 0.0), |best, w| if w.0 > best.0 { w } else { best });
            let full = if cores.len() >= 3 {
                &cores[1..cores.len() - 1]
            } else {
                &cores[..]
            };
            let mean = full.iter().map(|w| w.0).sum::<f64>() / full.len().max(1) as f64;
            DeployCapacity {
                deploy: deploy.to_owned(),
                cores_at_peak: peak_cores,
                core_hours_per_day: mean * 24.0,
                peak_rps,
                windows: cores.len(),
            }
        })
        .collect();
    out.sort_by(|a, b| a.deploy.cmp(&b.deploy));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(window_ms: i64, deploy: &str, cost: i64, requests: i64) -> SeriesPoint {
        SeriesPoint {
            cost,
            requests,
            ..SeriesPoint::empty(window_ms, deploy)
        }
    }

    #[test]
    fn the_busiest_window_gives_the_peak_and_full_windows_the_mean() {
        // 10-s windows. v1: a partial first window, then 0.5, 2 and 0.5
        // cores, a partial last one; v2 in two endpoints of one window.
        let points = [
            point(0, "v1", 1_000_000_000, 10),
            point(10_000, "v1", 5_000_000_000, 100),
            point(20_000, "v1", 20_000_000_000, 400),
            point(30_000, "v1", 5_000_000_000, 100),
            point(40_000, "v1", 100_000_000, 1),
            point(50_000, "v2", 3_000_000_000, 30),
            point(50_000, "v2", 7_000_000_000, 70),
        ];
        let found = deploy_capacity(&points, 10_000, Unit::CpuNs);
        assert_eq!(found.len(), 2);
        let v1 = &found[0];
        assert_eq!(v1.deploy, "v1");
        assert!((v1.cores_at_peak - 2.0).abs() < 1e-9, "{v1:?}");
        assert!((v1.peak_rps - 40.0).abs() < 1e-9, "{v1:?}");
        // (0.5 + 2 + 0.5) / 3 cores × 24 h.
        assert!((v1.core_hours_per_day - 24.0).abs() < 1e-9, "{v1:?}");
        assert_eq!(v1.windows, 5);
        let v2 = &found[1];
        assert!((v2.cores_at_peak - 1.0).abs() < 1e-9, "{v2:?}");
        assert!((v2.peak_rps - 10.0).abs() < 1e-9, "{v2:?}");
        assert!((v2.core_hours_per_day - 24.0).abs() < 1e-9, "{v2:?}");
    }

    #[test]
    fn instructions_are_not_cores() {
        let points = [point(0, "v1", 1_000_000_000, 10)];
        assert!(deploy_capacity(&points, 10_000, Unit::Instructions).is_empty());
    }
}
