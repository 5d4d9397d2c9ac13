//! A [`Batch`] as `JSONEachRow` lines for each table.

use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;

use crate::model::{Batch, StackNode};
use crate::store::tables::{day_name, day_of};
use crate::{Error, Result};

#[derive(Serialize)]
struct SampleRow<'a> {
    service: &'a str,
    day: String,
    time_ms: i64,
    deploy: &'a str,
    host: &'a str,
    endpoint: &'a str,
    labels: &'a str,
    stack_id: u64,
    unit: &'static str,
    count: i64,
    weight: i64,
    upload: u64,
}

#[derive(Serialize)]
struct StackRow<'a> {
    service: &'a str,
    stack_id: u64,
    frames: Vec<&'a str>,
}

#[derive(Serialize)]
struct RequestRow<'a> {
    service: &'a str,
    day: String,
    time_ms: i64,
    deploy: &'a str,
    host: &'a str,
    endpoint: &'a str,
    unit: &'static str,
    count: i64,
    cost: i64,
    #[serde(rename = "histogramMap.bucket")]
    buckets: Vec<u32>,
    #[serde(rename = "histogramMap.requests")]
    requests: Vec<u64>,
    upload: u64,
}

#[derive(Serialize)]
struct DeployRow<'a> {
    service: &'a str,
    deploy: &'a str,
    time_ms: i64,
    commit: &'a str,
    author: &'a str,
    message: &'a str,
}

/// The lines of each table one batch adds.
#[derive(Debug, Default)]
pub struct Lines {
    /// `samples` rows.
    pub samples: Vec<u8>,
    /// `stacks` rows of stacks not in `known`.
    pub stacks: Vec<u8>,
    /// Their ids.
    pub new_stacks: Vec<u64>,
    /// `requests` rows.
    pub requests: Vec<u8>,
    /// `deploys` rows.
    pub deploys: Vec<u8>,
}

fn line(out: &mut Vec<u8>, row: &impl Serialize) -> Result<()> {
    serde_json::to_writer(&mut *out, row)
        .map_err(|e| Error::Backend(format!("encode a row for ClickHouse: {e}")))?;
    out.push(b'\n');
    Ok(())
}

/// The first and last day `batch`'s samples and requests fall on.
pub fn days(batch: &Batch) -> Option<(String, String)> {
    let times = batch
        .samples
        .iter()
        .map(|(k, _)| k.time_ms)
        .chain(batch.requests.iter().map(|(k, _)| k.time_ms));
    let (first, last) = times.fold(None, |span: Option<(i64, i64)>, t| {
        Some(span.map_or((t, t), |(a, b)| (a.min(t), b.max(t))))
    })?;
    Some((day_name(day_of(first)), day_name(day_of(last))))
}

/// The frames of `leaf`, root first, from the batch's nodes.
fn frames_of(nodes: &FxHashMap<u64, &StackNode>, leaf: u64) -> Option<Vec<Arc<str>>> {
    let mut frames = Vec::new();
    let mut at = leaf;
    while at != 0 {
        let node = nodes.get(&at)?;
        frames.push(node.function.clone());
        at = node.parent;
        if frames.len() > 100_000 {
            return None;
        }
    }
    frames.reverse();
    Some(frames)
}

/// The rows of `batch`, marked as coming from upload `upload` (the hash
/// of its `Idempotency-Key`, 0 for none); stacks whose ids are in
/// `known` (already inserted by this node) are left out.
pub fn lines(batch: &Batch, known: &FxHashSet<u64>, upload: u64) -> Result<Lines> {
    let service = batch.service.as_str();
    let mut out = Lines::default();
    let nodes: FxHashMap<u64, &StackNode> = batch.stack_nodes.iter().map(|n| (n.id, n)).collect();
    let mut seen: FxHashSet<u64> = FxHashSet::default();
    for (key, weight) in &batch.samples {
        if !known.contains(&key.stack_id) && seen.insert(key.stack_id) {
            let frames = frames_of(&nodes, key.stack_id).ok_or_else(|| {
                Error::bad(format!(
                    "stack {:016x} is used by a sample but not described by the upload",
                    key.stack_id
                ))
            })?;
            let row = StackRow {
                service,
                stack_id: key.stack_id,
                frames: frames.iter().map(|f| &**f).collect(),
            };
            line(&mut out.stacks, &row)?;
            out.new_stacks.push(key.stack_id);
        }
        let row = SampleRow {
            service,
            day: day_name(day_of(key.time_ms)),
            time_ms: key.time_ms,
            deploy: &key.deploy,
            host: &key.host,
            endpoint: &key.endpoint,
            labels: &key.labels,
            stack_id: key.stack_id,
            unit: key.unit.as_str(),
            count: weight.count,
            weight: weight.weight,
            upload,
        };
        line(&mut out.samples, &row)?;
    }
    for (key, agg) in &batch.requests {
        let row = RequestRow {
            service,
            day: day_name(day_of(key.time_ms)),
            time_ms: key.time_ms,
            deploy: &key.deploy,
            host: &key.host,
            endpoint: &key.endpoint,
            unit: key.unit.as_str(),
            count: agg.count,
            cost: agg.cost,
            buckets: agg.histogram.keys().copied().collect(),
            requests: agg.histogram.values().copied().collect(),
            upload,
        };
        line(&mut out.requests, &row)?;
    }
    for event in &batch.deploys {
        let row = DeployRow {
            service,
            deploy: &event.deploy,
            time_ms: event.time_ms,
            commit: event.commit.as_deref().unwrap_or(""),
            author: event.author.as_deref().unwrap_or(""),
            message: event.message.as_deref().unwrap_or(""),
        };
        line(&mut out.deploys, &row)?;
    }
    Ok(out)
}
