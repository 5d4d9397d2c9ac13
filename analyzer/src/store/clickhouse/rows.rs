//! A [`Batch`] as rows of each table in ClickHouse's `RowBinary` format
//! (little-endian numbers, strings and arrays prefixed by their LEB128
//! length: the cheapest format for the node to write and for ClickHouse
//! to read, and the same on 18.16 and today), plus each table's first
//! row as JSON for the SQL log.

use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;

use crate::model::{walk_stack, Batch, DeployFact, StackNode};
use crate::store::days::{day_name, day_of};
use crate::{Error, Result};

/// The columns each table's rows hold, in order.
pub const SAMPLE_COLUMNS: &str =
    "service, day, time_ms, deploy, host, endpoint, labels, stack_id, unit, count, weight, upload";
/// See [`SAMPLE_COLUMNS`].
pub const STACK_COLUMNS: &str = "service, stack_id, frames";
/// See [`SAMPLE_COLUMNS`].
pub const REQUEST_COLUMNS: &str = "service, day, time_ms, deploy, host, endpoint, unit, count, cost, \
                                   histogramMap.bucket, histogramMap.requests, upload";
/// See [`SAMPLE_COLUMNS`].
pub const DEPLOY_COLUMNS: &str = "service, deploy, time_ms, commit, author, message";
/// The columns of `facts` rows, in the order written.
pub const FACT_COLUMNS: &str = "service, deploy, kind, key, value, time_ms";

/// Rows of one table, encoded.
#[derive(Debug, Default)]
pub struct Rows {
    /// `RowBinary` rows, in the table's column order.
    pub data: Vec<u8>,
    /// The first row as a JSON object (what the SQL log shows).
    pub first: Option<String>,
    /// How many rows.
    pub count: usize,
}

impl Rows {
    /// No rows.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Appends `other`'s rows.
    pub fn extend(&mut self, other: &Rows) {
        self.data.extend_from_slice(&other.data);
        self.count += other.count;
        if self.first.is_none() {
            self.first.clone_from(&other.first);
        }
    }

    fn note_first(&mut self, row: &impl Serialize) -> Result<()> {
        if self.first.is_none() {
            let json = serde_json::to_string(row)
                .map_err(|e| Error::Backend(format!("encode a row for ClickHouse: {e}")))?;
            self.first = Some(json);
        }
        Ok(())
    }
}

/// The rows of each table one batch adds.
#[derive(Debug, Default)]
pub struct Lines {
    /// `samples` rows.
    pub samples: Rows,
    /// `stacks` rows of stacks not in `known`.
    pub stacks: Rows,
    /// Their ids.
    pub new_stacks: Vec<u64>,
    /// `requests` rows.
    pub requests: Rows,
    /// `deploys` rows.
    pub deploys: Rows,
    /// `facts` rows.
    pub facts: Rows,
}

impl Lines {
    /// Bytes of rows.
    pub fn bytes(&self) -> usize {
        self.samples.data.len()
            + self.stacks.data.len()
            + self.requests.data.len()
            + self.deploys.data.len()
            + self.facts.data.len()
    }

    /// Rows of the table with the most.
    pub fn rows(&self) -> usize {
        [
            &self.samples,
            &self.stacks,
            &self.requests,
            &self.deploys,
            &self.facts,
        ]
        .iter()
        .map(|r| r.count)
        .max()
        .unwrap_or(0)
    }
}

/// `RowBinary` writing.
trait Put {
    fn leb128(&mut self, n: u64);
    fn text(&mut self, s: &str);
    fn int(&mut self, n: i64);
    fn uint(&mut self, n: u64);
    fn date(&mut self, time_ms: i64);
}

impl Put for Vec<u8> {
    fn leb128(&mut self, mut n: u64) {
        while n >= 0x80 {
            self.push((n as u8) | 0x80);
            n >>= 7;
        }
        self.push(n as u8);
    }

    fn text(&mut self, s: &str) {
        self.leb128(s.len() as u64);
        self.extend_from_slice(s.as_bytes());
    }

    fn int(&mut self, n: i64) {
        self.extend_from_slice(&n.to_le_bytes());
    }

    fn uint(&mut self, n: u64) {
        self.extend_from_slice(&n.to_le_bytes());
    }

    /// A `Date`: days since 1970 as a `UInt16` (its range, 1970–2149).
    fn date(&mut self, time_ms: i64) {
        let day = day_of(time_ms).clamp(0, i64::from(u16::MAX)) as u16;
        self.extend_from_slice(&day.to_le_bytes());
    }
}

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

impl SampleRow<'_> {
    fn put(&self, out: &mut Vec<u8>) {
        out.text(self.service);
        out.date(self.time_ms);
        out.int(self.time_ms);
        out.text(self.deploy);
        out.text(self.host);
        out.text(self.endpoint);
        out.text(self.labels);
        out.uint(self.stack_id);
        out.text(self.unit);
        out.int(self.count);
        out.int(self.weight);
        out.uint(self.upload);
    }
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

/// Where an upload's rows lie in the tables' sort order: enough for
/// ClickHouse to find them again by its primary index alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// The deploys of its rows.
    pub deploys: Vec<String>,
    /// Its first and last row time, ms.
    pub from_ms: i64,
    /// See `from_ms`.
    pub until_ms: i64,
}

/// The span of `batch`'s samples and requests (none when it has neither).
pub fn span(batch: &Batch) -> Option<Span> {
    let rows = batch
        .samples
        .iter()
        .map(|(k, _)| (k.time_ms, &k.deploy))
        .chain(batch.requests.iter().map(|(k, _)| (k.time_ms, &k.deploy)));
    let mut deploys: Vec<String> = Vec::new();
    let mut times: Option<(i64, i64)> = None;
    for (time_ms, deploy) in rows {
        times = Some(times.map_or((time_ms, time_ms), |(a, b)| (a.min(time_ms), b.max(time_ms))));
        if !deploys.iter().any(|d| **d == **deploy) {
            deploys.push(deploy.to_string());
        }
    }
    let (from_ms, until_ms) = times?;
    Some(Span {
        deploys,
        from_ms,
        until_ms,
    })
}

/// The rows of `batch`, marked as coming from upload `upload` (the hash
/// of its `Idempotency-Key`, 0 for none); stacks whose ids are in
/// `known` (already inserted by this node) are left out, and of its
/// facts only `facts` (those this node has not inserted) are written.
pub fn lines(batch: &Batch, known: &FxHashSet<u64>, upload: u64, facts: &[DeployFact]) -> Result<Lines> {
    let service = batch.service.as_str();
    let mut out = Lines::default();
    let nodes: FxHashMap<u64, &StackNode> = batch.stack_nodes.iter().map(|n| (n.id, n)).collect();
    let mut seen: FxHashSet<u64> = FxHashSet::default();
    for (key, weight) in &batch.samples {
        if !known.contains(&key.stack_id) && seen.insert(key.stack_id) {
            let frames = walk_stack(key.stack_id, |at| nodes.get(&at).map(|n| (n.parent, &n.function)))
                .ok_or_else(|| {
                    Error::bad(format!(
                        "stack {:016x} is used by a sample but not described by the upload",
                        key.stack_id
                    ))
                })?;
            let rows = &mut out.stacks;
            rows.data.text(service);
            rows.data.uint(key.stack_id);
            rows.data.leb128(frames.len() as u64);
            for frame in &frames {
                rows.data.text(frame);
            }
            rows.note_first(&StackRow {
                service,
                stack_id: key.stack_id,
                frames: frames.iter().map(|f| &**f).collect(),
            })?;
            out.new_stacks.push(key.stack_id);
            out.stacks.count += 1;
        }
        let row = SampleRow {
            service,
            day: String::new(),
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
        row.put(&mut out.samples.data);
        out.samples.count += 1;
        if out.samples.first.is_none() {
            out.samples.note_first(&SampleRow {
                day: day_name(day_of(key.time_ms)),
                ..row
            })?;
        }
    }
    for (key, agg) in &batch.requests {
        let rows = &mut out.requests;
        rows.count += 1;
        let d = &mut rows.data;
        d.text(service);
        d.date(key.time_ms);
        d.int(key.time_ms);
        d.text(&key.deploy);
        d.text(&key.host);
        d.text(&key.endpoint);
        d.text(key.unit.as_str());
        d.int(agg.count);
        d.int(agg.cost);
        d.leb128(agg.histogram.len() as u64);
        for bucket in agg.histogram.keys() {
            d.extend_from_slice(&bucket.to_le_bytes());
        }
        d.leb128(agg.histogram.len() as u64);
        for requests in agg.histogram.values() {
            d.uint(*requests);
        }
        d.uint(upload);
        if rows.first.is_some() {
            continue;
        }
        rows.note_first(&RequestRow {
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
        })?;
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
        let d = &mut out.deploys.data;
        d.text(row.service);
        d.text(row.deploy);
        d.int(row.time_ms);
        d.text(row.commit);
        d.text(row.author);
        d.text(row.message);
        out.deploys.count += 1;
        out.deploys.note_first(&row)?;
    }
    for fact in facts {
        let row = FactRow {
            service,
            deploy: &fact.deploy,
            kind: fact.kind.as_str(),
            key: &fact.key,
            value: &fact.value,
            time_ms: fact.time_ms,
        };
        let d = &mut out.facts.data;
        d.text(row.service);
        d.text(row.deploy);
        d.text(row.kind);
        d.text(row.key);
        d.text(row.value);
        d.int(row.time_ms);
        out.facts.count += 1;
        out.facts.note_first(&row)?;
    }
    Ok(out)
}

#[derive(Serialize)]
struct FactRow<'a> {
    service: &'a str,
    deploy: &'a str,
    kind: &'a str,
    key: &'a str,
    value: &'a str,
    time_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_binary_lengths_are_leb128_and_numbers_little_endian() {
        let mut out = Vec::new();
        out.leb128(300);
        assert_eq!(out, [0xac, 0x02]);
        out.clear();
        out.text("hé");
        assert_eq!(out, [3, b'h', 0xc3, 0xa9]);
        out.clear();
        out.int(-2);
        assert_eq!(out, [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        out.clear();
        out.date(86_400_000 * 2 + 5);
        assert_eq!(out, [2, 0]);
        out.clear();
        out.date(-1);
        assert_eq!(out, [0, 0], "before 1970 is clamped to Date's range");
    }
}
