//! The differential flame graph as a tree for the dashboard: both
//! deploys' costs on every node, the baseline scaled to the candidate's
//! volume (per request when both counted requests, else by total), and
//! pruning that never hides a change worth seeing.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::request_count;
use crate::model::Unit;
use crate::store::{Selection, Store};
use crate::{Error, Result};

/// One node of a differential flame graph.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffNode {
    /// Function name.
    pub name: String,
    /// Inclusive cost in the baseline, unscaled.
    pub base: i64,
    /// Inclusive cost in the candidate.
    pub candidate: i64,
    /// Self cost in the baseline, unscaled.
    pub base_self: i64,
    /// Self cost in the candidate.
    pub candidate_self: i64,
    /// Callees, largest (in either deploy) first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<DiffNode>,
}

/// A differential flame graph between two deploys.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffTree {
    /// Unit of every value.
    pub unit: Unit,
    /// The baseline deploy.
    pub base: String,
    /// The candidate deploy.
    pub candidate: String,
    /// Requests counted in the baseline.
    pub base_requests: i64,
    /// Requests counted in the candidate.
    pub candidate_requests: i64,
    /// What baseline values are multiplied by to compare with the
    /// candidate's: the ratio of requests when both counted them (so a
    /// change is a change of cost per request), else of totals.
    pub scale: f64,
    /// Whether `scale` is the ratio of requests.
    pub per_request: bool,
    /// Nodes left out; each was below `min_value` in both deploys (the
    /// baseline scaled), so its change was smaller than that too.
    pub pruned_nodes: usize,
    /// The pruning threshold, in candidate units.
    pub min_value: i64,
    /// The root (`all`).
    pub root: DiffNode,
}

#[derive(Default)]
struct Building {
    base: i64,
    candidate: i64,
    base_self: i64,
    candidate_self: i64,
    children: BTreeMap<Arc<str>, Building>,
}

impl Building {
    fn add(&mut self, store: &dyn Store, sel: &Selection, candidate: bool) -> Result<Unit> {
        let totals = store.stack_totals(sel)?;
        let mut frames_of = store.stacks(&sel.service, &totals.ids())?;
        for (id, weight) in &totals.stacks {
            let frames = frames_of.remove(id).unwrap_or_default();
            let mut node = &mut *self;
            node.bump(weight.weight, candidate);
            for frame in frames {
                node = node.children.entry(frame).or_default();
                node.bump(weight.weight, candidate);
            }
            if candidate {
                node.candidate_self += weight.weight;
            } else {
                node.base_self += weight.weight;
            }
        }
        Ok(totals.unit)
    }

    fn bump(&mut self, weight: i64, candidate: bool) {
        if candidate {
            self.candidate += weight;
        } else {
            self.base += weight;
        }
    }

    fn count(&self) -> usize {
        1 + self.children.values().map(Building::count).sum::<usize>()
    }

    fn finish(self, name: &str, scale: f64, min_value: f64, pruned: &mut usize) -> DiffNode {
        let mut children = Vec::new();
        for (child_name, child) in self.children {
            let size = (child.base as f64 * scale).max(child.candidate as f64);
            if size < min_value {
                *pruned += child.count();
                continue;
            }
            children.push(child.finish(&child_name, scale, min_value, pruned));
        }
        let size = |n: &DiffNode| (n.base as f64 * scale).max(n.candidate as f64);
        children.sort_by(|a, b| size(b).total_cmp(&size(a)).then_with(|| a.name.cmp(&b.name)));
        DiffNode {
            name: name.to_owned(),
            base: self.base,
            candidate: self.candidate,
            base_self: self.base_self,
            candidate_self: self.candidate_self,
            children,
        }
    }
}

/// The differential tree of `sel` between deploys `base` and `candidate`
/// (`sel.deploys` is ignored), keeping about `max_nodes` nodes at most
/// (0: all). A node is pruned only when it is below `1 / max_nodes` of
/// the larger (scaled) total in both deploys, so no change larger than
/// that is ever hidden: far below the 0.1% of cost the detector and the
/// gate look at.
pub fn diff_tree(
    store: &dyn Store,
    sel: &Selection,
    base: &str,
    candidate: &str,
    max_nodes: usize,
) -> Result<DiffTree> {
    let mut root = Building::default();
    let mut side = sel.clone();
    side.deploys = vec![base.to_owned()];
    let base_unit = root.add(store, &side, false)?;
    let base_requests = request_count(store, &side)?;
    side.deploys = vec![candidate.to_owned()];
    let candidate_unit = root.add(store, &side, true)?;
    let candidate_requests = request_count(store, &side)?;
    if base_unit != candidate_unit && root.base > 0 && root.candidate > 0 {
        return Err(Error::MixedUnits(format!(
            "{base} is in {}, {candidate} in {}",
            base_unit.as_str(),
            candidate_unit.as_str()
        )));
    }
    let per_request = base_requests > 0 && candidate_requests > 0;
    let scale = if per_request {
        candidate_requests as f64 / base_requests as f64
    } else if root.base > 0 {
        root.candidate as f64 / root.base as f64
    } else {
        1.0
    };
    let larger = (root.base as f64 * scale).max(root.candidate as f64);
    let min_value = if max_nodes == 0 {
        0.0
    } else {
        larger / max_nodes as f64
    };
    let mut pruned = 0;
    let root = root.finish("all", scale, min_value.max(f64::MIN_POSITIVE), &mut pruned);
    Ok(DiffTree {
        unit: candidate_unit,
        base: base.to_owned(),
        candidate: candidate.to_owned(),
        base_requests,
        candidate_requests,
        scale,
        per_request,
        pruned_nodes: pruned,
        min_value: min_value.ceil() as i64,
        root,
    })
}
