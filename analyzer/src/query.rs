//! Answers built from a [`Store`]: profiles for flame graphs (and their
//! JSON tree), top functions with per-request costs and shares, and cost
//! per request series (of a function, or of every endpoint), and the
//! differential tree of two deploys. Functions of data; the store does
//! the scanning.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use flameshift_profile::{LabelSetId, Profile, SampleType, TopBy};
use serde::Serialize;

use crate::model::Unit;
use crate::store::{Frames, Selection, StackSeriesRow, Store};
use crate::{Error, Result};

mod capacity;
mod diff;
mod endpoints;

pub use capacity::{deploy_capacity, DeployCapacity};
pub use diff::{diff_tree, DiffNode, DiffTree};
pub use endpoints::{endpoint_series, EndpointLine, EndpointSeries};

/// A selection's samples as a profile: sample types `samples/count` and
/// the unit's (`cpu/instructions` or `cpu/nanoseconds`, the default).
pub fn profile(store: &dyn Store, sel: &Selection) -> Result<(Profile, Unit)> {
    let totals = store.stack_totals(sel)?;
    let mut profile = Profile::new(vec![
        SampleType::new("samples", "count"),
        totals.unit.sample_type(),
    ]);
    profile.default_sample_type = Some(1);
    let frames = store.stacks(&sel.service, &totals.ids())?;
    let mut ids: Vec<_> = totals.stacks.iter().collect();
    ids.sort_unstable_by_key(|(id, _)| **id);
    for (id, weight) in ids {
        let stack = profile.stack_from_names(frames[id].iter().map(|f| &**f));
        profile.push_sample(stack, LabelSetId::EMPTY, &[weight.count, weight.weight]);
    }
    profile.comments.push(format!("service={}", sel.service));
    Ok((profile, totals.unit))
}

/// Requests counted in a selection (labels other than the endpoint do
/// not apply to request statistics).
pub fn request_count(store: &dyn Store, sel: &Selection) -> Result<i64> {
    Ok(store.requests(sel, i64::MAX)?.iter().map(|r| r.count).sum())
}

/// How to rank functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TopOrder {
    /// By self cost.
    #[default]
    SelfCost,
    /// By inclusive cost.
    Inclusive,
}

/// One function's cost in a selection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionRow {
    /// The function.
    pub name: String,
    /// Cost where it is the leaf.
    pub self_value: i64,
    /// Cost where it is on the stack.
    pub inclusive_value: i64,
    /// `self_value / total`.
    pub self_share: f64,
    /// `inclusive_value / total`.
    pub inclusive_share: f64,
    /// `self_value / requests`, when requests were counted.
    pub self_per_request: Option<f64>,
    /// `inclusive_value / requests`, when requests were counted.
    pub inclusive_per_request: Option<f64>,
}

/// Top functions of a selection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopFunctions {
    /// Unit of every value.
    pub unit: Unit,
    /// Total cost of the selection.
    pub total: i64,
    /// Samples in the selection.
    pub samples: i64,
    /// Requests counted in the selection.
    pub requests: i64,
    /// The functions, ranked.
    pub functions: Vec<FunctionRow>,
}

/// The `limit` most expensive functions of a selection.
pub fn top_functions(
    store: &dyn Store,
    sel: &Selection,
    order: TopOrder,
    limit: usize,
) -> Result<TopFunctions> {
    let (profile, unit) = profile(store, sel)?;
    let requests = request_count(store, sel)?;
    let total = profile.total(1);
    let by = match order {
        TopOrder::SelfCost => TopBy::SelfCost,
        TopOrder::Inclusive => TopBy::Inclusive,
    };
    let share = |v: i64| if total > 0 { v as f64 / total as f64 } else { 0.0 };
    let per_request = |v: i64| (requests > 0).then(|| v as f64 / requests as f64);
    let functions = profile
        .top_functions(1, by)
        .into_iter()
        .take(limit)
        .map(|f| FunctionRow {
            self_share: share(f.self_value),
            inclusive_share: share(f.inclusive_value),
            self_per_request: per_request(f.self_value),
            inclusive_per_request: per_request(f.inclusive_value),
            name: f.name,
            self_value: f.self_value,
            inclusive_value: f.inclusive_value,
        })
        .collect();
    Ok(TopFunctions {
        unit,
        total,
        samples: profile.total(0),
        requests,
        functions,
    })
}

/// One node of a flame graph tree.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlameNode {
    /// Function name.
    pub name: String,
    /// Inclusive cost.
    pub value: i64,
    /// Self cost.
    #[serde(rename = "self")]
    pub self_value: i64,
    /// Callees, most expensive first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<FlameNode>,
}

/// A flame graph as JSON for the dashboard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlameTree {
    /// Unit of every value.
    pub unit: Unit,
    /// Samples in the selection.
    pub samples: i64,
    /// Requests counted in the selection.
    pub requests: i64,
    /// Nodes left out because they were below `min_value`; their cost
    /// stays in their parents' values.
    pub pruned_nodes: usize,
    /// The smallest node value kept.
    pub min_value: i64,
    /// The root (`all`).
    pub root: FlameNode,
}

#[derive(Default)]
struct Building {
    value: i64,
    self_value: i64,
    children: BTreeMap<Arc<str>, Building>,
}

fn count_nodes(node: &Building) -> usize {
    1 + node.children.values().map(count_nodes).sum::<usize>()
}

fn finish(name: &str, node: Building, min_value: i64, pruned: &mut usize) -> FlameNode {
    let mut children = Vec::new();
    for (child_name, child) in node.children {
        if child.value < min_value {
            *pruned += count_nodes(&child);
            continue;
        }
        children.push(finish(&child_name, child, min_value, pruned));
    }
    children.sort_by(|a, b| b.value.cmp(&a.value).then_with(|| a.name.cmp(&b.name)));
    FlameNode {
        name: name.to_owned(),
        value: node.value,
        self_value: node.self_value,
        children,
    }
}

/// The flame graph of a selection as a tree, keeping at most about
/// `max_nodes` nodes: nodes below `total / max_nodes` are pruned (and
/// counted), their cost staying in their parents.
pub fn flame_tree(store: &dyn Store, sel: &Selection, max_nodes: usize) -> Result<FlameTree> {
    let totals = store.stack_totals(sel)?;
    let requests = request_count(store, sel)?;
    let mut root = Building::default();
    let mut samples = 0;
    let mut frames_of = store.stacks(&sel.service, &totals.ids())?;
    for (id, weight) in &totals.stacks {
        let frames = frames_of.remove(id).unwrap_or_default();
        samples += weight.count;
        root.value += weight.weight;
        let mut node = &mut root;
        for frame in frames {
            node = node.children.entry(frame).or_default();
            node.value += weight.weight;
        }
        node.self_value += weight.weight;
    }
    let min_value = if max_nodes == 0 {
        0
    } else {
        root.value / max_nodes as i64
    };
    let mut pruned = 0;
    let root = finish("all", root, min_value.max(1), &mut pruned);
    Ok(FlameTree {
        unit: totals.unit,
        samples,
        requests,
        pruned_nodes: pruned,
        min_value,
        root,
    })
}

/// One window of a series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesPoint {
    /// Window start, ms since the Unix epoch.
    pub window_ms: i64,
    /// The deploy that ran.
    pub deploy: String,
    /// Requests counted.
    pub requests: i64,
    /// Sampled cost (of the function, inclusive, or of everything).
    pub cost: i64,
    /// Samples behind `cost`.
    pub samples: i64,
    /// `cost / requests`.
    pub cost_per_request: Option<f64>,
    /// Measured cost of the requests themselves (the agent's counter
    /// around each poll), per request.
    pub measured_per_request: Option<f64>,
}

impl SeriesPoint {
    /// A window of `deploy` with nothing counted yet.
    pub fn empty(window_ms: i64, deploy: &str) -> SeriesPoint {
        SeriesPoint {
            window_ms,
            deploy: deploy.to_owned(),
            requests: 0,
            cost: 0,
            samples: 0,
            cost_per_request: None,
            measured_per_request: None,
        }
    }
}

/// A cost-per-request series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    /// Unit of every cost.
    pub unit: Unit,
    /// The function, when the series is one function's.
    pub function: Option<String>,
    /// Whether the function's self (not inclusive) cost was counted.
    pub self_only: bool,
    /// The windows, in time order.
    pub points: Vec<SeriesPoint>,
}

/// Cost per request per window and deploy: of the whole selection, or of
/// one function (inclusive, or self with `self_only`).
pub fn series(
    store: &dyn Store,
    sel: &Selection,
    window_ms: i64,
    function: Option<&str>,
    self_only: bool,
) -> Result<Series> {
    if window_ms <= 0 {
        return Err(Error::bad("window must be positive"));
    }
    let stacks = store.stack_series(sel, window_ms, false)?;
    let frames_of = match function {
        Some(_) => store.stacks(&sel.service, &stacks.ids())?,
        None => Frames::default(),
    };
    let mut matches: HashMap<u64, bool> = HashMap::new();
    let mut points: BTreeMap<(i64, String), SeriesPoint> = BTreeMap::new();
    let blank = SeriesPoint::empty;
    for StackSeriesRow {
        window_ms: window,
        deploy,
        stack_id: id,
        weight,
        ..
    } in &stacks.rows
    {
        let counted = match function {
            None => true,
            Some(f) => *matches.entry(*id).or_insert_with(|| {
                let frames = frames_of.get(id).map(Vec::as_slice).unwrap_or_default();
                if self_only {
                    frames.last().is_some_and(|leaf| &**leaf == f)
                } else {
                    frames.iter().any(|frame| &**frame == f)
                }
            }),
        };
        let point = points
            .entry((*window, deploy.to_string()))
            .or_insert_with(|| blank(*window, deploy));
        if counted {
            point.cost += weight.weight;
            point.samples += weight.count;
        }
    }
    let mut measured: HashMap<(i64, String), i64> = HashMap::new();
    for r in store.requests(sel, window_ms)? {
        let point = points
            .entry((r.window_ms, r.deploy.clone()))
            .or_insert_with(|| blank(r.window_ms, &r.deploy));
        point.requests += r.count;
        if r.unit == stacks.unit {
            *measured.entry((r.window_ms, r.deploy)).or_default() += r.cost;
        }
    }
    for (key, point) in points.iter_mut() {
        if point.requests > 0 {
            point.cost_per_request = Some(point.cost as f64 / point.requests as f64);
            point.measured_per_request = measured.get(key).map(|&c| c as f64 / point.requests as f64);
        }
    }
    Ok(Series {
        unit: stacks.unit,
        function: function.map(str::to_owned),
        self_only,
        points: points.into_values().collect(),
    })
}
