//! Per-window cost series of a service: for each endpoint, the requests
//! of each window, the endpoint's total sampled cost, and every function's
//! self and inclusive cost — the observations the deploy comparison and
//! the change-point layer work on.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;

use flameshift_profile::wire::Unit;
use serde::Serialize;

use crate::callpath::{self, ByCallers, CallPath, DEPTH};
use crate::regression::{Capacity, Measure, Metric};
use crate::settings::DetectSettings;

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

/// What one endpoint's comparison divides by, and over which windows: the
/// measure the data supports, the usable columns of each side, and the
/// divisor of every column.
#[derive(Debug, Clone, PartialEq)]
pub struct Basis {
    /// Per request, share, or per second.
    pub measure: Measure,
    /// The usable columns of the deploy before and of the deploy after.
    pub columns: [Vec<usize>; 2],
    /// What each column's costs are divided by (indexed like the columns
    /// of [`EndpointCosts`]).
    pub per: Vec<f64>,
    /// Share only: how much the summed share of the functions that did
    /// not change moved after the deploy (the median over the after
    /// windows of each window's factor; 1 when nothing moved). Each
    /// window's shares are divided by that window's factor, so that a
    /// fall of one function does not raise all the others.
    pub mirror: f64,
}

/// Why the deploys of an endpoint could not be compared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NotCompared {
    /// The endpoint.
    pub endpoint: String,
    /// The measure its data would be compared on.
    pub measure: Measure,
    /// Usable windows before and after.
    pub windows: [usize; 2],
    /// Usable windows a side the comparison needs.
    pub needed: usize,
    /// In words.
    pub reason: String,
}

/// Fewest functions with enough samples for shares to be compared: the
/// mirror factor is their median ratio, which needs a majority that did
/// not change.
pub const MIN_SHARE_FUNCTIONS: usize = 3;

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

    /// Whether any request of the endpoint was counted in `deploys`: then
    /// its costs are per request or not compared at all (never a mix).
    pub fn counts_requests(&self, deploys: &[usize]) -> bool {
        deploys.iter().any(|&d| {
            let columns = self.deploy_columns.get(d).cloned().unwrap_or(0..0);
            self.requests[columns].iter().any(|&r| r > 0.0)
        })
    }

    /// The usable columns of `deploy` for `measure`: windows with enough
    /// requests (per request), with samples (share), or with samples and
    /// not the deploy's first or last (per second: those are partial).
    pub fn columns(&self, deploy: usize, measure: Measure, settings: &DetectSettings) -> Vec<usize> {
        let range = self.deploy_columns.get(deploy).cloned().unwrap_or(0..0);
        match measure {
            Measure::PerRequest => self.usable_columns(deploy, settings.min_requests),
            Measure::Share => range.filter(|&c| self.total[c] > 0.0).collect(),
            Measure::PerSecond => {
                let sampled: Vec<usize> = range.filter(|&c| self.total[c] > 0.0).collect();
                match sampled.len() {
                    0..=2 => Vec::new(),
                    n => sampled[1..n - 1].to_vec(),
                }
            }
        }
    }

    /// What each column's costs are divided by for `measure`.
    pub fn divisors(&self, measure: Measure, settings: &DetectSettings) -> Vec<f64> {
        match measure {
            Measure::PerRequest => self.requests.clone(),
            Measure::Share => self.total.clone(),
            Measure::PerSecond => vec![settings.window_ms.max(1) as f64 / 1000.0; self.total.len()],
        }
    }

    /// The functions with at least `min_samples` self samples over `deploys`.
    fn sampled_functions(&self, deploys: &[usize], min_samples: i64) -> impl Iterator<Item = usize> + '_ {
        let deploys = deploys.to_vec();
        self.functions.iter().enumerate().filter_map(move |(i, f)| {
            let samples: i64 = deploys.iter().map(|&d| f.self_samples[d]).sum();
            (samples >= min_samples).then_some(i)
        })
    }

    /// The measure the data of `deploys` supports, best first: per request
    /// where requests were counted; else the share of the endpoint's
    /// samples, where at least [`MIN_SHARE_FUNCTIONS`] functions have
    /// enough samples to tell; else cost per second.
    pub fn measure(&self, deploys: &[usize], settings: &DetectSettings) -> Measure {
        if self.counts_requests(deploys) {
            Measure::PerRequest
        } else if self.sampled_functions(deploys, settings.min_samples).count() >= MIN_SHARE_FUNCTIONS {
            Measure::Share
        } else {
            Measure::PerSecond
        }
    }

    /// The basis of comparing deploy `after` with deploy `before`, or why
    /// they cannot be compared (too few usable windows on a side).
    pub fn basis(
        &self,
        before: usize,
        after: usize,
        settings: &DetectSettings,
    ) -> Result<Basis, NotCompared> {
        let measure = self.measure(&[before, after], settings);
        let columns = [
            self.columns(before, measure, settings),
            self.columns(after, measure, settings),
        ];
        let needed = settings.min_windows.max(2);
        let windows = [columns[0].len(), columns[1].len()];
        if windows[0] < needed || windows[1] < needed {
            let what = match measure {
                Measure::PerRequest => format!("windows with at least {} requests", settings.min_requests),
                Measure::Share => "windows with samples".to_owned(),
                Measure::PerSecond => "whole windows with samples".to_owned(),
            };
            return Err(NotCompared {
                endpoint: self.endpoint.to_string(),
                measure,
                windows,
                needed,
                reason: format!(
                    "{} and {} {what} before and after; {needed} a side are needed",
                    windows[0], windows[1]
                ),
            });
        }
        let mut per = self.divisors(measure, settings);
        let mut mirror = 1.0;
        if measure == Measure::Share {
            let (factors, typical) = self.mirror([before, after], &columns, settings);
            for (c, k) in factors {
                per[c] *= k;
            }
            mirror = typical;
        }
        Ok(Basis {
            measure,
            columns,
            per,
            mirror,
        })
    }

    /// Per column of both sides, how much the share of the functions that
    /// did not change moved from before: when one function's cost
    /// changes, every other function's share moves by the same factor the
    /// other way. The functions that did not change are those with enough
    /// samples whose share over the whole deploy moved by the median
    /// factor, within 5% and three standard errors of their sample count
    /// (a majority must not have changed); each window's factor is their
    /// summed share in that window over their summed share before, so a
    /// spike that goes away leaves no trace in the windows after it.
    /// Returns the factors and their median over the after side.
    fn mirror(
        &self,
        deploys: [usize; 2],
        [before, after]: &[Vec<usize>; 2],
        settings: &DetectSettings,
    ) -> (Vec<(usize, f64)>, f64) {
        let sum = |values: &[f64], columns: &[usize]| columns.iter().map(|&c| values[c]).sum::<f64>();
        let (total_a, total_b) = (sum(&self.total, before), sum(&self.total, after));
        let functions: Vec<(usize, f64, f64)> = self
            .sampled_functions(&deploys, settings.min_samples)
            .map(|f| {
                let cost = &self.functions[f].self_cost;
                let share = sum(cost, before) / total_a;
                let ratio = sum(cost, after) / total_b / share;
                (f, share, ratio)
            })
            .filter(|(_, share, ratio)| *share > 0.0 && ratio.is_finite())
            .collect();
        let mut ratios: Vec<f64> = functions.iter().map(|f| f.2).collect();
        let m = median(&mut ratios).unwrap_or(1.0);
        let unchanged: Vec<(usize, f64)> = functions
            .iter()
            .filter(|&&(f, _, ratio)| {
                // The standard error of a ratio of two counts of about
                // half the function's samples each (not of the counts
                // seen: a function gone after has none).
                let samples = &self.functions[f].self_samples;
                let n = (samples[deploys[0]] + samples[deploys[1]]).max(1) as f64;
                let tolerance = m * (0.05 + 3.0 * (4.0 / n).sqrt());
                (ratio - m).abs() <= tolerance
            })
            .map(|&(f, share, _)| (f, share))
            .collect();
        let reference: f64 = unchanged.iter().map(|u| u.1).sum();
        let factors: Vec<(usize, f64)> = before
            .iter()
            .chain(after)
            .map(|&c| {
                let now: f64 = unchanged
                    .iter()
                    .map(|&(f, _)| self.functions[f].self_cost[c])
                    .sum::<f64>()
                    / self.total[c];
                let k = now / reference;
                (c, if k.is_finite() && k > 0.0 { k } else { 1.0 })
            })
            .collect();
        let mut after_factors: Vec<f64> = factors[before.len()..].iter().map(|f| f.1).collect();
        let typical = median(&mut after_factors).unwrap_or(1.0);
        (factors, typical)
    }

    /// `costs / requests` at `columns`.
    pub fn per_request(&self, costs: &[f64], columns: &[usize]) -> Vec<f64> {
        ratios(costs, &self.requests, columns)
    }

    /// Mean cost of `metric` of `function` (none: the total) in `measure`
    /// over the usable windows of `deploy`, if it has any.
    pub fn level(
        &self,
        function: Option<usize>,
        metric: Metric,
        deploy: usize,
        measure: Measure,
        settings: &DetectSettings,
    ) -> Option<f64> {
        let columns = self.columns(deploy, measure, settings);
        if columns.is_empty() {
            return None;
        }
        let costs = match (function, metric) {
            (None, _) | (_, Metric::Total) => &self.total,
            (Some(f), Metric::SelfCost) => &self.functions.get(f)?.self_cost,
            (Some(f), Metric::Inclusive) => &self.functions.get(f)?.inclusive,
        };
        let per = self.divisors(measure, settings);
        Some(ratios(costs, &per, &columns).iter().sum::<f64>() / columns.len() as f64)
    }

    /// What a shift of `shift` (in `measure`, CPU ns) costs at the load
    /// of deploy `after`: extra cores at its busiest usable window and
    /// core-hours a day at its mean load. `None` without usable windows.
    pub fn capacity(
        &self,
        after: usize,
        measure: Measure,
        shift: f64,
        settings: &DetectSettings,
    ) -> Option<Capacity> {
        let columns = self.columns(after, measure, settings);
        if columns.is_empty() {
            return None;
        }
        let seconds = settings.window_ms.max(1) as f64 / 1000.0;
        // What one unit of the measure stands for each second, per window.
        let load: Vec<f64> = columns
            .iter()
            .map(|&c| match measure {
                Measure::PerRequest => self.requests[c] / seconds,
                Measure::Share => self.total[c] / seconds,
                Measure::PerSecond => 1.0,
            })
            .collect();
        let peak = load.iter().copied().fold(0.0, f64::max);
        let mean = load.iter().sum::<f64>() / load.len() as f64;
        Some(Capacity {
            cores_at_peak: shift * peak / 1e9,
            core_hours_per_day: shift * mean / 1e9 * 24.0,
            peak_rps: (measure == Measure::PerRequest).then_some(peak),
        })
    }

    /// Index of the function called `name`.
    pub fn function(&self, name: &str) -> Option<usize> {
        self.functions.iter().position(|f| &*f.name == name)
    }

    /// Where the rise of function `f`'s self cost (in `measure`) from
    /// deploy `before` to deploy `after` concentrates, with the nearest
    /// caller's inclusive cost on both sides.
    pub fn call_path(
        &self,
        f: usize,
        before: usize,
        after: usize,
        measure: Measure,
        settings: &DetectSettings,
    ) -> Option<CallPath> {
        let divisors = self.divisors(measure, settings);
        let divisor = |d: usize| -> f64 {
            self.columns(d, measure, settings)
                .iter()
                .map(|&c| divisors[c])
                .sum()
        };
        let side = |d: usize| -> ByCallers {
            let per = divisor(d).max(f64::MIN_POSITIVE);
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
        let existed = |name: &str| {
            let level = |d: usize| self.level(self.function(name), Metric::Inclusive, d, measure, settings);
            callpath::ran_before(level(before).unwrap_or(0.0), level(after).unwrap_or(0.0))
        };
        // Cost tables hold names only: no source lines to walk to.
        let mut path = callpath::concentrate(&side(before), &side(after), &existed, None)?;
        let caller = self.function(&path.callers[0]);
        path.caller_before = self.level(caller, Metric::Inclusive, before, measure, settings);
        path.caller_after = self.level(caller, Metric::Inclusive, after, measure, settings);
        Some(path)
    }
}

/// The median of `values` (reordered), if any.
fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

/// `costs[c] / per[c]` at `columns`.
pub fn ratios(costs: &[f64], per: &[f64], columns: &[usize]) -> Vec<f64> {
    columns.iter().map(|&c| costs[c] / per[c]).collect()
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
        let min = |min_requests| DetectSettings {
            min_requests,
            ..DetectSettings::default()
        };
        let pr = Measure::PerRequest;
        assert_eq!(e.level(Some(b_), Metric::SelfCost, 1, pr, &min(4)), Some(5.0));
        assert_eq!(e.level(None, Metric::Total, 0, pr, &min(1)), Some(1.5));
        assert_eq!(e.level(None, Metric::Total, 1, pr, &min(100)), None);
    }
}
