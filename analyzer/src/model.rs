//! The rows the analyzer stores, in long format (docs/architecture.md, Storage):
//! samples, stack nodes, request statistics and deploy events, each owned
//! by one service.
//!
//! Stacks are stored as a tree of nodes, each `(id, parent, function)`:
//! a stack's id is the id of its leaf node, and a node's id is a hash of
//! its parent's id and its function name, so the same stack gets the same
//! id in every upload, on every host, forever — stacks deduplicate by id
//! and shared prefixes are stored once.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The wall clock, ms since the Unix epoch (0 before it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Width of a sample time bucket: samples are summed per 10 s window.
pub const SAMPLE_BUCKET_MS: i64 = 10_000;

pub use flameshift_profile::wire::Unit;

/// The id of the stack node for `function` under `parent` (0 is the root).
pub fn stack_node_id(parent: u64, function: &str) -> u64 {
    match xxhash_rust::xxh3::xxh3_64_with_seed(function.as_bytes(), parent) {
        0 => 1, // 0 is the root
        id => id,
    }
}

/// The frames of the stack ending at node `leaf`, root first, following
/// `node(id) -> (parent, function)` up to the root; `None` when a node is
/// unknown or the walk does not end (a cycle, from a hash collision).
pub fn walk_stack<'a>(leaf: u64, node: impl Fn(u64) -> Option<(u64, &'a Arc<str>)>) -> Option<Vec<Arc<str>>> {
    const DEEPEST: usize = 100_000;
    let mut frames = Vec::new();
    let mut at = leaf;
    while at != 0 {
        let (parent, function) = node(at)?;
        frames.push(function.clone());
        at = parent;
        if frames.len() > DEEPEST {
            return None;
        }
    }
    frames.reverse();
    Some(frames)
}

/// One node of the stack tree.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StackNode {
    /// [`stack_node_id`] of `parent` and `function`.
    pub id: u64,
    /// The caller's node, 0 for a root frame.
    pub parent: u64,
    /// The function name.
    pub function: Arc<str>,
}

/// What identifies a sample row; rows with equal keys are summed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SampleKey {
    /// Start of the 10 s bucket, ms since the Unix epoch.
    pub time_ms: i64,
    /// Deploy (version) of the service.
    pub deploy: Arc<str>,
    /// Host that sent the sample.
    pub host: Arc<str>,
    /// Endpoint (route template), `""` outside requests.
    pub endpoint: Arc<str>,
    /// Other labels as canonical JSON (`{}` when none).
    pub labels: Arc<str>,
    /// Leaf node of the stack.
    pub stack_id: u64,
    /// Unit of the weight.
    pub unit: Unit,
}

pub use flameshift_detect::costs::Weight;

/// What identifies a request-statistics row.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestKey {
    /// Start of the reporting window, ms since the Unix epoch, bucketed
    /// like samples.
    pub time_ms: i64,
    /// Deploy of the service.
    pub deploy: Arc<str>,
    /// Host.
    pub host: Arc<str>,
    /// Endpoint.
    pub endpoint: Arc<str>,
    /// Unit of the costs.
    pub unit: Unit,
}

/// Requests served and their own CPU cost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestAgg {
    /// Requests completed.
    pub count: i64,
    /// Sum of their cost.
    pub cost: i64,
    /// Log-linear histogram of per-request cost: bucket → requests
    /// (the agent's scheme, 8 buckets per power of two).
    pub histogram: BTreeMap<u32, u64>,
}

impl RequestAgg {
    /// Adds another window's statistics.
    pub fn add(&mut self, other: &RequestAgg) {
        self.count = self.count.saturating_add(other.count);
        self.cost = self.cost.saturating_add(other.cost);
        for (&bucket, &n) in &other.histogram {
            *self.histogram.entry(bucket).or_default() += n;
        }
    }
}

/// A deploy event: a service started running a new version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployEvent {
    /// The deploy (version string, e.g. a git SHA).
    pub deploy: String,
    /// When it happened, ms since the Unix epoch.
    pub time_ms: i64,
    /// Commit, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Author, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Message, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Everything one accepted upload adds to one service.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// The service it belongs to.
    pub service: String,
    /// Sample rows, summed per key.
    pub samples: Vec<(SampleKey, Weight)>,
    /// Every stack node the samples use (the store keeps new ones).
    pub stack_nodes: Vec<StackNode>,
    /// Request statistics rows.
    pub requests: Vec<(RequestKey, RequestAgg)>,
    /// Deploy events.
    pub deploys: Vec<DeployEvent>,
    /// Facts about deploys: the commits they brought, where functions'
    /// code is.
    pub facts: Vec<DeployFact>,
}

/// What a [`DeployFact`] says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactKind {
    /// A commit the deploy brought (`key`: its SHA; `value`: the
    /// [`crate::detect::suspects::Commit`] as JSON).
    Commit,
    /// Where a function's code is in the deploy (`key`: the function;
    /// `value`: the [`crate::detect::suspects::SourceSpan`] as JSON).
    Source,
}

impl FactKind {
    /// The name the stores keep.
    pub fn as_str(self) -> &'static str {
        match self {
            FactKind::Commit => "commit",
            FactKind::Source => "source",
        }
    }

    /// The kind a stored name stands for.
    pub fn parse(text: &str) -> Option<FactKind> {
        [FactKind::Commit, FactKind::Source]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

/// A fact about a deploy that detection uses beside its rows: small,
/// keyed, kept as JSON text in both stores.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeployFact {
    /// The deploy.
    pub deploy: String,
    /// What it says.
    pub kind: FactKind,
    /// What it is about (a SHA, a function).
    pub key: String,
    /// The fact, JSON.
    pub value: String,
    /// When it arrived, ms since the Unix epoch.
    pub time_ms: i64,
}

impl Batch {
    /// Number of samples (not rows) the batch holds.
    pub fn sample_count(&self) -> i64 {
        self.samples.iter().map(|(_, w)| w.count).sum()
    }
}

/// Start of the bucket holding `time_ms`.
pub fn bucket(time_ms: i64, width_ms: i64) -> i64 {
    time_ms.div_euclid(width_ms) * width_ms
}
