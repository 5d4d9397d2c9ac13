//! Cost per request per endpoint over time: the service page's chart;
//! and each deploy's cores, per endpoint and for the whole service.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::{deploy_capacity, DeployCapacity, SeriesPoint};
use crate::model::Unit;
use crate::store::{Selection, Store};
use crate::{Error, Result};

type Key = (String, i64, String);

/// One endpoint's windows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointLine {
    /// The endpoint (`""` for work outside requests).
    pub endpoint: String,
    /// Requests over every window.
    pub requests: i64,
    /// Sampled cost over every window.
    pub cost: i64,
    /// The windows, in time order.
    pub points: Vec<SeriesPoint>,
    /// Each deploy's cores at peak and core-hours a day (CPU time only).
    pub capacity: Vec<DeployCapacity>,
}

/// Cost per request of every endpoint of a selection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EndpointSeries {
    /// Unit of every cost.
    pub unit: Unit,
    /// Window length, ms.
    pub window_ms: i64,
    /// The endpoints, busiest first.
    pub endpoints: Vec<EndpointLine>,
    /// The whole service's cores per deploy (every endpoint, and work
    /// outside requests, summed per window; CPU time only).
    pub capacity: Vec<DeployCapacity>,
}

/// Sampled cost and requests per endpoint, window and deploy.
pub fn endpoint_series(store: &dyn Store, sel: &Selection, window_ms: i64) -> Result<EndpointSeries> {
    if window_ms <= 0 {
        return Err(Error::bad("window must be positive"));
    }
    let stacks = store.stack_series(sel, window_ms, true)?;
    let mut points: BTreeMap<Key, SeriesPoint> = BTreeMap::new();
    fn point<'a>(
        points: &'a mut BTreeMap<Key, SeriesPoint>,
        endpoint: &str,
        window_ms: i64,
        deploy: &str,
    ) -> &'a mut SeriesPoint {
        points
            .entry((endpoint.to_owned(), window_ms, deploy.to_owned()))
            .or_insert_with(|| SeriesPoint::empty(window_ms, deploy))
    }
    for row in &stacks.rows {
        let p = point(&mut points, &row.endpoint, row.window_ms, &row.deploy);
        p.cost += row.weight.weight;
        p.samples += row.weight.count;
    }
    let mut measured: HashMap<Key, i64> = HashMap::new();
    for r in store.requests(sel, window_ms)? {
        point(&mut points, &r.endpoint, r.window_ms, &r.deploy).requests += r.count;
        if r.unit == stacks.unit {
            *measured
                .entry((r.endpoint.clone(), r.window_ms, r.deploy.clone()))
                .or_default() += r.cost;
        }
    }
    let mut lines: BTreeMap<String, EndpointLine> = BTreeMap::new();
    for (key, mut p) in points {
        if p.requests > 0 {
            p.cost_per_request = Some(p.cost as f64 / p.requests as f64);
            p.measured_per_request = measured.get(&key).map(|&c| c as f64 / p.requests as f64);
        }
        let line = lines.entry(key.0.clone()).or_insert_with(|| EndpointLine {
            endpoint: key.0,
            requests: 0,
            cost: 0,
            points: Vec::new(),
            capacity: Vec::new(),
        });
        line.requests += p.requests;
        line.cost += p.cost;
        line.points.push(p);
    }
    let mut endpoints: Vec<EndpointLine> = lines.into_values().collect();
    for line in &mut endpoints {
        line.capacity = deploy_capacity(&line.points, window_ms, stacks.unit);
    }
    let capacity = deploy_capacity(endpoints.iter().flat_map(|e| &e.points), window_ms, stacks.unit);
    endpoints.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| b.cost.cmp(&a.cost)));
    Ok(EndpointSeries {
        unit: stacks.unit,
        window_ms,
        endpoints,
        capacity,
    })
}
