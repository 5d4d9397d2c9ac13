//! The head: rows acknowledged since the last flush, summed per key in
//! memory (their durable copy is the write-ahead log), and their
//! conversion to DataFrames with the Parquet tables' schemas.

use rustc_hash::FxHashMap as HashMap;

use polars::prelude::*;

use crate::model::{Batch, DeployEvent, RequestAgg, RequestKey, SampleKey, StackNode, Weight};
use crate::Result;

/// Rows of one service not yet in Parquet.
#[derive(Debug, Default, Clone)]
pub struct Head {
    /// Sample rows.
    pub samples: HashMap<SampleKey, Weight>,
    /// Request rows.
    pub requests: HashMap<RequestKey, RequestAgg>,
    /// Stack nodes first seen since the last flush.
    pub stacks: Vec<StackNode>,
    /// Deploy events.
    pub deploys: Vec<DeployEvent>,
}

impl Head {
    /// Adds a batch; `new_stacks` are the batch's nodes the service did
    /// not know yet.
    pub fn apply(&mut self, batch: Batch, new_stacks: Vec<StackNode>) {
        for (key, weight) in batch.samples {
            self.samples.entry(key).or_default().add(weight);
        }
        for (key, agg) in batch.requests {
            self.requests.entry(key).or_default().add(&agg);
        }
        self.stacks.extend(new_stacks);
        self.deploys.extend(batch.deploys);
    }

    /// Adds another head (a flush that failed goes back in).
    pub fn absorb(&mut self, other: Head) {
        for (key, weight) in other.samples {
            self.samples.entry(key).or_default().add(weight);
        }
        for (key, agg) in other.requests {
            self.requests.entry(key).or_default().add(&agg);
        }
        self.stacks.extend(other.stacks);
        self.deploys.extend(other.deploys);
    }

    /// Whether nothing is in it.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
            && self.requests.is_empty()
            && self.stacks.is_empty()
            && self.deploys.is_empty()
    }

    /// Sample rows (keys may be filtered with `keep`) as a DataFrame.
    pub fn samples_frame(&self, keep: impl Fn(&SampleKey) -> bool) -> Result<DataFrame> {
        samples_frame(self.samples.iter().filter(|(k, _)| keep(k)).map(|(k, w)| (k, *w)))
    }

    /// Request rows as a DataFrame.
    pub fn requests_frame(&self, keep: impl Fn(&RequestKey) -> bool) -> Result<DataFrame> {
        requests_frame(self.requests.iter().filter(|(k, _)| keep(k)))
    }
}

/// Builds a samples DataFrame (the `samples` table's schema).
pub fn samples_frame<'a>(rows: impl Iterator<Item = (&'a SampleKey, Weight)>) -> Result<DataFrame> {
    let (mut time, mut deploy, mut host, mut endpoint, mut labels) = (vec![], vec![], vec![], vec![], vec![]);
    let (mut stack, mut unit, mut weight, mut count) = (vec![], vec![], vec![], vec![]);
    for (k, w) in rows {
        time.push(k.time_ms);
        deploy.push(&*k.deploy);
        host.push(&*k.host);
        endpoint.push(&*k.endpoint);
        labels.push(&*k.labels);
        stack.push(k.stack_id);
        unit.push(k.unit.as_str());
        weight.push(w.weight);
        count.push(w.count);
    }
    let height = time.len();
    Ok(DataFrame::new(
        height,
        vec![
            Column::new("time_ms".into(), time),
            Column::new("deploy".into(), deploy),
            Column::new("host".into(), host),
            Column::new("endpoint".into(), endpoint),
            Column::new("labels".into(), labels),
            Column::new("stack_id".into(), stack),
            Column::new("unit".into(), unit),
            Column::new("weight".into(), weight),
            Column::new("count".into(), count),
        ],
    )?)
}

/// Builds a requests DataFrame (the `requests` table's schema).
pub fn requests_frame<'a>(rows: impl Iterator<Item = (&'a RequestKey, &'a RequestAgg)>) -> Result<DataFrame> {
    let (mut time, mut deploy, mut host, mut endpoint, mut unit) = (vec![], vec![], vec![], vec![], vec![]);
    let (mut count, mut cost, mut histogram) = (vec![], vec![], vec![]);
    for (k, r) in rows {
        time.push(k.time_ms);
        deploy.push(&*k.deploy);
        host.push(&*k.host);
        endpoint.push(&*k.endpoint);
        unit.push(k.unit.as_str());
        count.push(r.count);
        cost.push(r.cost);
        let pairs: Vec<(u32, u64)> = r.histogram.iter().map(|(&b, &n)| (b, n)).collect();
        histogram.push(serde_json::to_string(&pairs).unwrap_or_default());
    }
    let height = time.len();
    Ok(DataFrame::new(
        height,
        vec![
            Column::new("time_ms".into(), time),
            Column::new("deploy".into(), deploy),
            Column::new("host".into(), host),
            Column::new("endpoint".into(), endpoint),
            Column::new("unit".into(), unit),
            Column::new("count".into(), count),
            Column::new("cost".into(), cost),
            Column::new("histogram".into(), histogram),
        ],
    )?)
}

/// Builds a stacks DataFrame.
pub fn stacks_frame(nodes: &[StackNode]) -> Result<DataFrame> {
    let ids: Vec<u64> = nodes.iter().map(|n| n.id).collect();
    let parents: Vec<u64> = nodes.iter().map(|n| n.parent).collect();
    let functions: Vec<&str> = nodes.iter().map(|n| &*n.function).collect();
    Ok(DataFrame::new(
        nodes.len(),
        vec![
            Column::new("id".into(), ids),
            Column::new("parent".into(), parents),
            Column::new("function".into(), functions),
        ],
    )?)
}

/// Builds a deploys DataFrame.
pub fn deploys_frame(events: &[DeployEvent]) -> Result<DataFrame> {
    let text = |f: fn(&DeployEvent) -> Option<&str>| events.iter().map(f).collect::<Vec<Option<&str>>>();
    Ok(DataFrame::new(
        events.len(),
        vec![
            Column::new(
                "deploy".into(),
                events.iter().map(|e| e.deploy.as_str()).collect::<Vec<_>>(),
            ),
            Column::new(
                "time_ms".into(),
                events.iter().map(|e| e.time_ms).collect::<Vec<_>>(),
            ),
            Column::new("commit".into(), text(|e| e.commit.as_deref())),
            Column::new("author".into(), text(|e| e.author.as_deref())),
            Column::new("message".into(), text(|e| e.message.as_deref())),
        ],
    )?)
}
