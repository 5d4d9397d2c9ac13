//! Per-window cost series of a service: for each endpoint, the requests
//! of each window, the endpoint's total sampled cost, and every function's
//! self and inclusive cost — the observations the deploy comparison and
//! the change-point layer work on.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;

use flameshift_profile::wire::Unit;

use crate::callpath::{self, ByCallers, CallPath, DEPTH};
use crate::regression::Metric;

/// Summed weight and sample count of a stack in a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Weight {
    /// Total cost in the unit of the table.
    pub weight: i64,
    /// Number of samples.
    pub count: i64,
}

impl Weight {
    /// Adds another weight, saturating.
    pub fn add(&mut self, other: Weight) {
        self.weight = self.weight.saturating_add(other.weight);
        self.count = self.count.saturating_add(other.count);
    }
}

/// Cost series of one service over a few deploys.
#[derive(Debug, Clone, PartialEq)]
pub struct CostTable {
    /// The service.
    pub service: String,
    /// Unit of every cost.
    pub unit: Unit,
    /// The deploys, oldest first.
    pub deploys: Vec<Arc<str>>,
    /// One entry per endpoint with data.
    pub endpoints: Vec<EndpointCosts>,
}

/// The series of one endpoint. Columns are windows, grouped by deploy in
/// deploy order and in time order within a deploy.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointCosts {
    /// The endpoint.
    pub endpoint: Arc<str>,
    /// Start of each column's window, ms since the Unix epoch.
    pub windows: Vec<i64>,
    /// The columns of each deploy (indexed like [`CostTable::deploys`]).
    pub deploy_columns: Vec<Range<usize>>,
    /// Requests per column.
    pub requests: Vec<f64>,
    /// The requests' own exact cost per column, as the agent's counters
    /// measured it (0 where none was reported), in the table's unit.
    pub measured: Vec<f64>,
    /// Sampled cost of the whole endpoint per column.
    pub total: Vec<f64>,
    /// Samples behind `total`, per deploy.
    pub total_samples: Vec<i64>,
    /// Every function seen in the endpoint.
    pub functions: Vec<FunctionCosts>,
    /// Direct callers of each function (indexes into `functions`).
    pub callers: Vec<Vec<u32>>,
    /// Every function above each function in some stack.
    pub ancestors: Vec<Vec<u32>>,
    /// Each function's self cost by the chain of callers above it
    /// (nearest first, up to [`DEPTH`], `u32::MAX` past the root), per
    /// deploy: where a rise is ([`crate::callpath`]).
    pub self_by_callers: Vec<Vec<([u32; DEPTH], Vec<f64>)>>,
}

/// Cost series of one function within one endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionCosts {
    /// The function.
    pub name: Arc<str>,
    /// Cost of samples whose leaf it is, per column.
    pub self_cost: Vec<f64>,
    /// Cost of samples it is anywhere in (recursion counted once), per column.
    pub inclusive: Vec<f64>,
    /// Samples behind `self_cost`, per deploy.
    pub self_samples: Vec<i64>,
    /// Samples behind `inclusive`, per deploy.
    pub inclusive_samples: Vec<i64>,
}

impl EndpointCosts {
    /// The columns of `deploy` with at least `min_requests` requests.
    pub fn usable_columns(&self, deploy: usize, min_requests: i64) -> Vec<usize> {
        self.deploy_columns
            .get(deploy)
            .cloned()
            .unwrap_or(0..0)
            .filter(|&c| self.requests[c] >= min_requests as f64 && self.requests[c] > 0.0)
            .collect()
    }

    /// `costs / requests` at `columns`.
    pub fn per_request(&self, costs: &[f64], columns: &[usize]) -> Vec<f64> {
        columns.iter().map(|&c| costs[c] / self.requests[c]).collect()
    }

    /// Mean cost per request of `metric` of `function` (none: the total)
    /// over the usable windows of `deploy`, if it has any.
    pub fn level(
        &self,
        function: Option<usize>,
        metric: Metric,
        deploy: usize,
        min_requests: i64,
    ) -> Option<f64> {
        let columns = self.usable_columns(deploy, min_requests);
        if columns.is_empty() {
            return None;
        }
        let costs = match (function, metric) {
            (None, _) | (_, Metric::Total) => &self.total,
            (Some(f), Metric::SelfCost) => &self.functions.get(f)?.self_cost,
            (Some(f), Metric::Inclusive) => &self.functions.get(f)?.inclusive,
        };
        Some(self.per_request(costs, &columns).iter().sum::<f64>() / columns.len() as f64)
    }

    /// Index of the function called `name`.
    pub fn function(&self, name: &str) -> Option<usize> {
        self.functions.iter().position(|f| &*f.name == name)
    }

    /// Where the rise of function `f`'s self cost per request from deploy
    /// `before` to deploy `after` concentrates, with the nearest caller's
    /// inclusive cost per request on both sides.
    pub fn call_path(&self, f: usize, before: usize, after: usize, min_requests: i64) -> Option<CallPath> {
        let requests = |d: usize| -> f64 {
            let columns = self.deploy_columns.get(d).cloned().unwrap_or_default();
            self.requests[columns].iter().sum()
        };
        let side = |d: usize| -> ByCallers {
            let per = requests(d).max(1.0);
            let mut costs = ByCallers::new();
            for (chain, by_deploy) in self.self_by_callers.get(f).into_iter().flatten() {
                let names: Vec<String> = chain
                    .iter()
                    .take_while(|&&c| c != u32::MAX)
                    .map(|&c| self.functions[c as usize].name.to_string())
                    .collect();
                *costs.entry(names).or_default() += by_deploy.get(d).copied().unwrap_or(0.0) / per;
            }
            costs
        };
        let mut path = callpath::concentrate(&side(before), &side(after))?;
        let caller = self.function(&path.callers[0]);
        path.caller_before = self.level(caller, Metric::Inclusive, before, min_requests);
        path.caller_after = self.level(caller, Metric::Inclusive, after, min_requests);
        Some(path)
    }
}

#[derive(Default)]
struct EndpointBuilder {
    requests: HashMap<(usize, i64), f64>,
    measured: HashMap<(usize, i64), f64>,
    total: HashMap<(usize, i64), f64>,
    total_samples: HashMap<usize, i64>,
    index: HashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
    self_cells: HashMap<(u32, usize, i64), f64>,
    inclusive_cells: HashMap<(u32, usize, i64), f64>,
    self_samples: HashMap<(u32, usize), i64>,
    inclusive_samples: HashMap<(u32, usize), i64>,
    callers: Vec<HashSet<u32>>,
    ancestors: Vec<HashSet<u32>>,
    self_by_callers: Vec<HashMap<[u32; DEPTH], Vec<f64>>>,
}

impl EndpointBuilder {
    fn function(&mut self, name: &Arc<str>) -> u32 {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(name.clone());
        self.index.insert(name.clone(), i);
        self.callers.push(HashSet::new());
        self.ancestors.push(HashSet::new());
        self.self_by_callers.push(HashMap::new());
        i
    }
}

/// Builds a [`CostTable`] from stack rows and request counts.
pub struct CostTableBuilder {
    service: String,
    unit: Unit,
    deploys: Vec<Arc<str>>,
    deploy_index: HashMap<Arc<str>, usize>,
    endpoints: BTreeMap<Arc<str>, EndpointBuilder>,
    path: Vec<u32>,
}

impl CostTableBuilder {
    /// A builder for `deploys` (oldest first) of `service`; rows of other
    /// deploys are ignored.
    pub fn new(service: &str, unit: Unit, deploys: &[Arc<str>]) -> Self {
        CostTableBuilder {
            service: service.to_owned(),
            unit,
            deploys: deploys.to_vec(),
            deploy_index: deploys.iter().enumerate().map(|(i, d)| (d.clone(), i)).collect(),
            endpoints: BTreeMap::new(),
            path: Vec::new(),
        }
    }

    /// Adds the cost of one stack (`frames` root first) in one window.
    pub fn add_stack(
        &mut self,
        window_ms: i64,
        deploy: &str,
        endpoint: &Arc<str>,
        frames: &[Arc<str>],
        weight: Weight,
    ) {
        let Some(&d) = self.deploy_index.get(deploy) else {
            return;
        };
        let e = self.endpoints.entry(endpoint.clone()).or_default();
        let cost = weight.weight as f64;
        *e.total.entry((d, window_ms)).or_default() += cost;
        *e.total_samples.entry(d).or_default() += weight.count;
        self.path.clear();
        for frame in frames {
            let f = e.function(frame);
            self.path.push(f);
        }
        let Some(&leaf) = self.path.last() else {
            return;
        };
        *e.self_cells.entry((leaf, d, window_ms)).or_default() += cost;
        *e.self_samples.entry((leaf, d)).or_default() += weight.count;
        let mut chain = [u32::MAX; DEPTH];
        for (slot, &caller) in chain.iter_mut().zip(self.path.iter().rev().skip(1)) {
            *slot = caller;
        }
        let by_deploy = e.self_by_callers[leaf as usize]
            .entry(chain)
            .or_insert_with(|| vec![0.0; self.deploys.len()]);
        by_deploy[d] += cost;
        for (depth, &f) in self.path.iter().enumerate() {
            let above = &self.path[..depth];
            if above.contains(&f) {
                continue; // recursion: counted once, at its outermost frame
            }
            *e.inclusive_cells.entry((f, d, window_ms)).or_default() += cost;
            *e.inclusive_samples.entry((f, d)).or_default() += weight.count;
            if let Some(&caller) = above.last() {
                if caller != f {
                    e.callers[f as usize].insert(caller);
                }
            }
            e.ancestors[f as usize].extend(above.iter().copied().filter(|&a| a != f));
        }
    }

    /// Adds `count` requests of `endpoint` in one window.
    pub fn add_requests(&mut self, window_ms: i64, deploy: &str, endpoint: &Arc<str>, count: i64) {
        let Some(&d) = self.deploy_index.get(deploy) else {
            return;
        };
        let e = self.endpoints.entry(endpoint.clone()).or_default();
        *e.requests.entry((d, window_ms)).or_default() += count as f64;
    }

    /// Adds the exact cost of requests of `endpoint` in one window (in the
    /// table's unit), as the agent's counters measured it.
    pub fn add_measured(&mut self, window_ms: i64, deploy: &str, endpoint: &Arc<str>, cost: i64) {
        let Some(&d) = self.deploy_index.get(deploy) else {
            return;
        };
        let e = self.endpoints.entry(endpoint.clone()).or_default();
        *e.measured.entry((d, window_ms)).or_default() += cost as f64;
    }

    /// The table.
    pub fn finish(self) -> CostTable {
        let deploy_count = self.deploys.len();
        let endpoints = self
            .endpoints
            .into_iter()
            .map(|(endpoint, b)| {
                let mut cells: Vec<(usize, i64)> = b.requests.keys().chain(b.total.keys()).copied().collect();
                cells.sort_unstable();
                cells.dedup();
                let column: HashMap<(usize, i64), usize> =
                    cells.iter().enumerate().map(|(i, &k)| (k, i)).collect();
                let deploy_columns = (0..deploy_count)
                    .map(|d| {
                        let start = cells.partition_point(|&(cd, _)| cd < d);
                        let end = cells.partition_point(|&(cd, _)| cd <= d);
                        start..end
                    })
                    .collect();
                let dense = |values: &HashMap<(usize, i64), f64>| {
                    let mut out = vec![0.0; cells.len()];
                    for (key, &v) in values {
                        out[column[key]] = v;
                    }
                    out
                };
                let per_deploy = |f: u32, samples: &HashMap<(u32, usize), i64>| {
                    (0..deploy_count)
                        .map(|d| samples.get(&(f, d)).copied().unwrap_or(0))
                        .collect::<Vec<_>>()
                };
                let mut self_cost = vec![vec![0.0; cells.len()]; b.names.len()];
                for (&(f, d, w), &v) in &b.self_cells {
                    self_cost[f as usize][column[&(d, w)]] = v;
                }
                let mut inclusive = vec![vec![0.0; cells.len()]; b.names.len()];
                for (&(f, d, w), &v) in &b.inclusive_cells {
                    inclusive[f as usize][column[&(d, w)]] = v;
                }
                let functions = b
                    .names
                    .iter()
                    .enumerate()
                    .zip(self_cost.into_iter().zip(inclusive))
                    .map(|((i, name), (self_cost, inclusive))| FunctionCosts {
                        name: name.clone(),
                        self_cost,
                        inclusive,
                        self_samples: per_deploy(i as u32, &b.self_samples),
                        inclusive_samples: per_deploy(i as u32, &b.inclusive_samples),
                    })
                    .collect();
                let sorted = |sets: Vec<HashSet<u32>>| {
                    sets.into_iter()
                        .map(|s| {
                            let mut v: Vec<u32> = s.into_iter().collect();
                            v.sort_unstable();
                            v
                        })
                        .collect()
                };
                EndpointCosts {
                    endpoint,
                    windows: cells.iter().map(|&(_, w)| w).collect(),
                    deploy_columns,
                    requests: dense(&b.requests),
                    measured: dense(&b.measured),
                    total: dense(&b.total),
                    total_samples: (0..deploy_count)
                        .map(|d| b.total_samples.get(&d).copied().unwrap_or(0))
                        .collect(),
                    functions,
                    callers: sorted(b.callers),
                    ancestors: sorted(b.ancestors),
                    self_by_callers: b
                        .self_by_callers
                        .into_iter()
                        .map(|chains| {
                            let mut chains: Vec<([u32; DEPTH], Vec<f64>)> = chains.into_iter().collect();
                            chains.sort_unstable_by_key(|c| c.0);
                            chains
                        })
                        .collect(),
                }
            })
            .collect();
        CostTable {
            service: self.service,
            unit: self.unit,
            deploys: self.deploys,
            endpoints,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(frames: &str) -> Vec<Arc<str>> {
        frames.split(';').map(Arc::from).collect()
    }

    #[test]
    fn builds_self_inclusive_callers_and_ancestors() {
        let deploys: Vec<Arc<str>> = vec!["v1".into(), "v2".into()];
        let mut b = CostTableBuilder::new("shop", Unit::CpuNs, &deploys);
        let ep: Arc<str> = "GET /".into();
        let w = |weight| Weight { weight, count: 1 };
        b.add_stack(0, "v1", &ep, &names("main;a;b"), w(10));
        b.add_stack(0, "v1", &ep, &names("main;a;a;c"), w(5));
        b.add_stack(60_000, "v2", &ep, &names("main;a;b"), w(20));
        b.add_stack(60_000, "v9", &ep, &names("main;zzz"), w(99));
        b.add_requests(0, "v1", &ep, 10);
        b.add_requests(60_000, "v2", &ep, 4);
        b.add_requests(120_000, "v2", &ep, 3);
        let table = b.finish();
        let e = &table.endpoints[0];
        assert_eq!(e.windows, vec![0, 60_000, 120_000]);
        assert_eq!(e.deploy_columns, vec![0..1, 1..3]);
        assert_eq!(e.requests, vec![10.0, 4.0, 3.0]);
        assert_eq!(e.total, vec![15.0, 20.0, 0.0]);
        assert!(e.function("zzz").is_none(), "rows of other deploys are ignored");
        let a = &e.functions[e.function("a").unwrap()];
        assert_eq!(a.inclusive, vec![15.0, 20.0, 0.0], "recursion counted once");
        assert_eq!(a.self_cost, vec![0.0, 0.0, 0.0]);
        let b_ = e.function("b").unwrap();
        assert_eq!(e.functions[b_].self_cost, vec![10.0, 20.0, 0.0]);
        assert_eq!(e.functions[b_].self_samples, vec![1, 1]);
        let c = e.function("c").unwrap();
        let (main, a_) = (
            e.function("main").unwrap() as u32,
            e.function("a").unwrap() as u32,
        );
        assert_eq!(e.callers[c], vec![a_]);
        assert_eq!(
            e.callers[a_ as usize],
            vec![main],
            "self-recursion is not a caller"
        );
        assert_eq!(e.ancestors[c], vec![main, a_]);
        assert_eq!(e.per_request(&e.total, &e.usable_columns(1, 1)), vec![5.0, 0.0]);
        assert_eq!(e.usable_columns(1, 4), vec![1]);
        assert_eq!(e.level(Some(b_), Metric::SelfCost, 1, 4), Some(5.0));
        assert_eq!(e.level(None, Metric::Total, 0, 1), Some(1.5));
        assert_eq!(e.level(None, Metric::Total, 1, 100), None);
    }
}
