//! The ClickHouse store: every node is stateless, the rows live in one
//! ClickHouse database (or a cluster behind it), and queries are
//! aggregations ClickHouse runs (sums per stack, per window, per deploy);
//! only the sums travel to the node. Frames are looked up in batches and
//! cached per node (a stack id always means the same frames).
//!
//! An upload is acknowledged once ClickHouse accepted its rows: the
//! uploads a node receives within [`ClickHouseConfig::insert_interval`]
//! go together, stacks first, then samples (one `INSERT` each, atomic
//! below ClickHouse's `max_insert_block_size`), so no stored sample lacks
//! its stack. When ClickHouse cannot be reached or is overloaded the
//! upload is refused with [`Error::Unavailable`] (503 and `Retry-After`),
//! and the agent keeps it and sends it again; its `Idempotency-Key`
//! makes sure it is kept once (see `writer.rs`).
//!
//! Talks to the HTTP interface with `ureq`: the [`Store`] seam is
//! synchronous (queries run on blocking threads and in plain tests), and
//! a synchronous client needs no runtime of its own (reqwest's blocking
//! client starts one, which panics when made or dropped inside tokio).

mod book;
mod client;
mod rows;
mod schema;
mod writer;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustc_hash::{FxHashMap, FxHashSet};
use serde::Deserialize;

pub use book::ClickHouseBook;
pub use client::Endpoint;
use client::{quote, Client};

use super::days::{day_name, day_of};
use super::{
    DeploySummary, Frames, Gauge, Receipt, RequestWindow, Selection, ServiceSummary, StackSeries,
    StackSeriesRow, StackTotals, Store,
};
use crate::ingest::Accepted;
use crate::model::{DeployEvent, DeployFact, FactKind, Unit, Weight};
use crate::store::facts::FactIndex;
use crate::{Error, Result};

/// Stack ids per lookup statement (ClickHouse's `max_query_size` is 256 KiB).
const IDS_PER_LOOKUP: usize = 5_000;
/// Frames cached per node before the cache starts over.
const MAX_CACHED_STACKS: usize = 1 << 20;

pub(super) use crate::model::now_ms;

/// How to reach ClickHouse and what to keep.
#[derive(Debug, Clone)]
pub struct ClickHouseConfig {
    /// Server, database and credentials.
    pub endpoint: Endpoint,
    /// Days of samples and requests older than this are dropped (none: keep all).
    pub retention_ms: Option<i64>,
    /// Deadline of each statement.
    pub timeout: Duration,
    /// Uploads arriving within this time of the start of an inserting
    /// thread's last insert wait and are inserted together (ClickHouse
    /// wants few inserts a second per client; a node has two threads).
    pub insert_interval: Duration,
    /// Appends every statement sent to this file (for checking the SQL on
    /// other ClickHouse versions).
    pub sql_log: Option<PathBuf>,
}

impl ClickHouseConfig {
    /// Defaults: 14 days of retention, 30 s per statement, an insert a
    /// second.
    pub fn new(endpoint: Endpoint) -> ClickHouseConfig {
        ClickHouseConfig {
            endpoint,
            retention_ms: Some(14 * 86_400_000),
            timeout: Duration::from_secs(30),
            insert_interval: Duration::from_secs(1),
            sql_log: None,
        }
    }
}

/// Stacks this node has inserted or read, per service.
#[derive(Debug, Default)]
struct StackCache {
    frames: FxHashMap<String, FxHashMap<u64, Vec<Arc<str>>>>,
    inserted: FxHashMap<String, FxHashSet<u64>>,
    size: usize,
}

impl StackCache {
    fn make_room(&mut self, more: usize) {
        if self.size + more > MAX_CACHED_STACKS {
            *self = StackCache::default();
        }
        self.size += more;
    }
}

/// Facts a node remembers having inserted, per service.
const MAX_REMEMBERED_FACTS: usize = 200_000;

/// The ClickHouse store. See the module documentation.
#[derive(Debug)]
pub struct ClickHouseStore {
    client: Arc<Client>,
    /// A client for each shard's server (the first is `client`): the
    /// schema and retention act on each.
    shards: Vec<Arc<Client>>,
    writer: writer::Writer,
    config: ClickHouseConfig,
    cache: Mutex<StackCache>,
    /// The facts this node inserted, per service, up to
    /// [`MAX_REMEMBERED_FACTS`] a service (so that each is
    /// inserted once).
    facts: Mutex<FxHashMap<String, FactIndex>>,
}

#[derive(Deserialize)]
struct StackLookup {
    stack_id: u64,
    #[serde(rename = "stack_frames")]
    frames: Vec<String>,
}

// Aliases never repeat a column's name: ClickHouse puts aliases in
// place of columns everywhere in a statement, `WHERE` included.

#[derive(Deserialize)]
struct StackSum {
    unit: Unit,
    stack_id: u64,
    #[serde(rename = "total_count")]
    count: i64,
    #[serde(rename = "total_weight")]
    weight: i64,
}

#[derive(Deserialize)]
struct SeriesSum {
    #[serde(rename = "window_start")]
    window_ms: i64,
    deploy: String,
    #[serde(rename = "endpoint_key")]
    endpoint: String,
    unit: Unit,
    stack_id: u64,
    #[serde(rename = "total_count")]
    count: i64,
    #[serde(rename = "total_weight")]
    weight: i64,
}

#[derive(Deserialize)]
struct RequestSum {
    #[serde(rename = "window_start")]
    window_ms: i64,
    deploy: String,
    endpoint: String,
    unit: Unit,
    #[serde(rename = "total_count")]
    count: i64,
    #[serde(rename = "total_cost")]
    cost: i64,
}

#[derive(Deserialize)]
struct DeploySeen {
    service: String,
    deploy: String,
    first_ms: i64,
    last_ms: i64,
    #[serde(rename = "total_count")]
    count: i64,
    #[serde(rename = "total_weight")]
    weight: i64,
    units: Vec<Unit>,
}

#[derive(Deserialize)]
struct EventRow {
    service: String,
    deploy: String,
    time_ms: i64,
    commit: String,
    author: String,
    message: String,
}

#[derive(Deserialize)]
struct DeployFound {
    this_deploy: u64,
    any_deploy: u64,
}

#[derive(Deserialize)]
struct Partition {
    table: String,
    partition: String,
}

fn one_unit(units: &BTreeSet<Unit>) -> Result<Unit> {
    match units.len() {
        0 | 1 => Ok(units.iter().next().copied().unwrap_or(Unit::CpuNs)),
        _ => Err(Error::MixedUnits(
            units.iter().map(|u| u.as_str()).collect::<Vec<_>>().join(" and "),
        )),
    }
}

fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

/// The `WHERE` clause of a selection (labels only for samples).
fn condition(sel: &Selection, with_labels: bool) -> String {
    let mut sql = format!("service = {}", quote(&sel.service));
    if !sel.deploys.is_empty() {
        let list: Vec<String> = sel.deploys.iter().map(|d| quote(d)).collect();
        let _ = write!(sql, " AND deploy IN ({})", list.join(", "));
    }
    if let Some(from) = sel.from_ms {
        let _ = write!(
            sql,
            " AND day >= toDate({}) AND time_ms >= {from}",
            quote(&day_name(day_of(from)))
        );
    }
    if let Some(until) = sel.until_ms {
        let _ = write!(
            sql,
            " AND day <= toDate({}) AND time_ms < {until}",
            quote(&day_name(day_of(until - 1)))
        );
    }
    if let Some(endpoint) = &sel.endpoint {
        let _ = write!(sql, " AND endpoint = {}", quote(endpoint));
    }
    if with_labels {
        for (key, value) in &sel.labels {
            // Labels are canonical JSON objects: a pair is present when
            // `"key":"value"` stands between `{`/`,` and `,`/`}`.
            let pair = format!(
                "{}:{}",
                serde_json::Value::from(key.as_str()),
                serde_json::Value::from(value.as_str())
            );
            let alternatives: Vec<String> = [("{", ","), ("{", "}"), (",", ","), (",", "}")]
                .iter()
                .map(|(before, after)| {
                    format!(
                        "position(labels, {}) > 0",
                        quote(&format!("{before}{pair}{after}"))
                    )
                })
                .collect();
            let _ = write!(sql, " AND ({})", alternatives.join(" OR "));
        }
    }
    sql
}

impl ClickHouseStore {
    /// Connects, checks the database and migrates its schema. Unreachable
    /// servers, refused credentials, a missing database and a schema newer
    /// than this binary are errors naming the problem.
    pub fn open(config: ClickHouseConfig) -> Result<ClickHouseStore> {
        client::identifier(&config.endpoint.database)?;
        if let Some(cluster) = &config.endpoint.cluster {
            client::identifier(cluster)?;
        }
        let client = Client::new(config.endpoint.clone(), config.timeout, config.sql_log.clone())?;
        let mut shards = Vec::new();
        for address in config
            .endpoint
            .shards
            .iter()
            .filter(|a| **a != config.endpoint.address)
        {
            let endpoint = Endpoint {
                address: address.clone(),
                ..config.endpoint.clone()
            };
            shards.push(Arc::new(Client::new(
                endpoint,
                config.timeout,
                config.sql_log.clone(),
            )?));
        }
        let client = Arc::new(client);
        shards.insert(0, client.clone());
        let cluster = config.endpoint.cluster.as_deref();
        let mut version = 0;
        for shard in &shards {
            version = schema::migrate(shard, cluster)?;
        }
        tracing::info!(
            address = %config.endpoint.address,
            database = %config.endpoint.database,
            schema = version,
            "ClickHouse store opened"
        );
        Ok(ClickHouseStore {
            shards,
            writer: writer::Writer::start(client.clone(), config.insert_interval)?,
            client,
            config,
            cache: Mutex::new(StackCache::default()),
            facts: Mutex::new(FxHashMap::default()),
        })
    }

    /// The regression book in the same database, shared by every node.
    pub fn regression_book(&self) -> ClickHouseBook {
        ClickHouseBook::new(self.client.clone())
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, StackCache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Per (service, deploy) sums of samples and requests, and the deploy
    /// events, of one service or all.
    fn deploys_of(&self, service: Option<&str>) -> Result<BTreeMap<String, Vec<DeploySummary>>> {
        let filter = service.map_or_else(String::new, |s| format!("WHERE service = {}", quote(s)));
        let summed = |table: &str, weight: &str| {
            self.client.rows::<DeploySeen>(&format!(
                "SELECT service, deploy, min(time_ms) AS first_ms, max(time_ms) AS last_ms, \
                 sum(count) AS total_count, {weight} AS total_weight, groupUniqArray(unit) AS units \
                 FROM {table} {filter} GROUP BY service, deploy"
            ))
        };
        let samples = summed("samples", "sum(weight)")?;
        let requests = summed("requests", "toInt64(0)")?;
        let events = self.client.rows::<EventRow>(&format!(
            "SELECT service, deploy, time_ms, commit, author, message FROM deploys {filter} \
             ORDER BY service, time_ms, deploy"
        ))?;
        let mut by: BTreeMap<(String, String), DeploySummary> = BTreeMap::new();
        for (rows, are_requests) in [(samples, false), (requests, true)] {
            for row in rows {
                let d = by
                    .entry((row.service.clone(), row.deploy.clone()))
                    .or_insert_with(|| DeploySummary::unseen(&row.deploy));
                d.first_seen_ms = d.first_seen_ms.min(row.first_ms);
                d.last_seen_ms = d.last_seen_ms.max(row.last_ms);
                if are_requests {
                    d.requests += row.count;
                } else {
                    d.samples += row.count;
                    d.weight += row.weight;
                }
                let units: BTreeSet<Unit> = d.units.iter().copied().chain(row.units).collect();
                d.units = units.into_iter().collect();
            }
        }
        for row in events {
            let d = by
                .entry((row.service.clone(), row.deploy.clone()))
                .or_insert_with(|| DeploySummary::unseen(&row.deploy));
            d.first_seen_ms = d.first_seen_ms.min(row.time_ms);
            d.last_seen_ms = d.last_seen_ms.max(row.time_ms);
            d.event = Some(DeployEvent {
                deploy: row.deploy,
                time_ms: row.time_ms,
                commit: non_empty(row.commit),
                author: non_empty(row.author),
                message: non_empty(row.message),
            });
        }
        #[derive(Deserialize)]
        struct Commits {
            service: String,
            deploy: String,
            commits: u64,
        }
        let commits = self.client.rows::<Commits>(&format!(
            "SELECT service, deploy, uniqExact(key) AS commits FROM facts WHERE kind = 'commit'{} \
             GROUP BY service, deploy",
            service.map_or_else(String::new, |s| format!(" AND service = {}", quote(s)))
        ))?;
        for row in commits {
            by.entry((row.service, row.deploy.clone()))
                .or_insert_with(|| DeploySummary::unseen(&row.deploy))
                .commits = usize::try_from(row.commits).unwrap_or(usize::MAX);
        }
        let mut out: BTreeMap<String, Vec<DeploySummary>> = BTreeMap::new();
        for ((service, _), summary) in by {
            out.entry(service).or_default().push(summary);
        }
        for deploys in out.values_mut() {
            deploys.sort_by(|a, b| (a.first_seen_ms, &a.deploy).cmp(&(b.first_seen_ms, &b.deploy)));
        }
        Ok(out)
    }

    fn drop_expired(&self) -> Result<()> {
        let Some(retention) = self.config.retention_ms else {
            return Ok(());
        };
        let oldest_kept = day_name(day_of(now_ms() - retention));
        // On a cluster the days are partitions of each shard's own tables.
        let suffix = if self.config.endpoint.cluster.is_some() {
            schema::SHARD_SUFFIX
        } else {
            ""
        };
        for shard in &self.shards {
            let parts = shard.rows::<Partition>(&format!(
                "SELECT DISTINCT table, partition FROM system.parts WHERE database = {} \
                 AND table IN ('samples{suffix}', 'requests{suffix}') AND active",
                quote(shard.database())
            ))?;
            for part in parts {
                let day = part.partition.trim_matches('\'');
                if day < oldest_kept.as_str() && day.len() == 10 {
                    shard.execute(&format!(
                        "ALTER TABLE {} DROP PARTITION {}",
                        part.table,
                        quote(day)
                    ))?;
                    tracing::info!(shard = %shard.endpoint().address, table = %part.table, day, "partition dropped by retention");
                }
            }
        }
        Ok(())
    }
}

impl Store for ClickHouseStore {
    fn append(&self, accepted: Accepted) -> Result<Receipt> {
        let batch = &accepted.batch;
        let known = self
            .cache()
            .inserted
            .get(&batch.service)
            .cloned()
            .unwrap_or_default();
        let upload = accepted.upload.key.as_deref().map_or(0, |key| {
            match xxhash_rust::xxh3::xxh3_64(key.as_bytes()) {
                0 => 1, // 0 is "no key"
                hash => hash,
            }
        });
        let facts: Vec<DeployFact> = {
            let indexes = self.facts.lock().unwrap_or_else(|e| e.into_inner());
            match indexes.get(&batch.service) {
                Some(index) => batch
                    .facts
                    .iter()
                    .filter_map(|f| index.fresh(f.clone()))
                    .collect(),
                None => batch.facts.clone(),
            }
        };
        let mut lines = rows::lines(batch, &known, upload, &facts)?;
        let new_stacks = std::mem::take(&mut lines.new_stacks);
        let outcome = self.writer.write(writer::Job {
            service: batch.service.clone(),
            upload,
            span: rows::span(batch),
            lines,
        })?;
        if !facts.is_empty() {
            let mut indexes = self.facts.lock().unwrap_or_else(|e| e.into_inner());
            let index = indexes.entry(batch.service.clone()).or_default();
            // Bounded: forgetting costs only rows written again (and
            // merged away).
            if index.len() > MAX_REMEMBERED_FACTS {
                *index = FactIndex::default();
            }
            for fact in &facts {
                index.remember(fact);
            }
        }
        if outcome == writer::Outcome::Duplicate {
            tracing::info!(service = %batch.service, key = ?accepted.upload.key, "upload already stored; kept once");
        }
        {
            let mut cache = self.cache();
            cache.make_room(new_stacks.len());
            cache
                .inserted
                .entry(batch.service.clone())
                .or_default()
                .extend(new_stacks);
        }
        Ok(Receipt::of(batch))
    }

    fn services(&self) -> Result<Vec<ServiceSummary>> {
        Ok(self
            .deploys_of(None)?
            .into_iter()
            .map(|(service, deploys)| ServiceSummary::from_deploys(service, &deploys))
            .collect())
    }

    fn deploys(&self, service: &str) -> Result<Vec<DeploySummary>> {
        self.deploys_of(Some(service))?
            .remove(service)
            .ok_or_else(|| Error::NotFound {
                what: "service",
                name: service.to_owned(),
            })
    }

    fn deploy_facts(&self, service: &str, deploy: &str) -> Result<Vec<DeployFact>> {
        #[derive(Deserialize)]
        struct FactRow {
            kind: String,
            key: String,
            value: String,
            time_ms: i64,
        }
        let rows = self.client.rows::<FactRow>(&format!(
            "SELECT DISTINCT kind, key, value, time_ms FROM facts WHERE service = {} AND deploy = {} \
             ORDER BY time_ms",
            quote(service),
            quote(deploy)
        ))?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                Some(DeployFact {
                    deploy: deploy.to_owned(),
                    kind: FactKind::parse(&row.kind)?,
                    key: row.key,
                    value: row.value,
                    time_ms: row.time_ms,
                })
            })
            .collect())
    }

    fn has_deploy(&self, service: &str, deploy: &str) -> Result<bool> {
        let service_is = format!("service = {}", quote(service));
        let found = self.client.rows::<DeployFound>(&format!(
            "SELECT countIf(deploy = {}) AS this_deploy, count() AS any_deploy FROM (\
             SELECT DISTINCT deploy FROM samples WHERE {service_is} \
             UNION ALL SELECT DISTINCT deploy FROM requests WHERE {service_is} \
             UNION ALL SELECT DISTINCT deploy FROM deploys WHERE {service_is})",
            quote(deploy)
        ))?;
        match found.first() {
            Some(f) if f.any_deploy > 0 => Ok(f.this_deploy > 0),
            _ => Err(Error::NotFound {
                what: "service",
                name: service.to_owned(),
            }),
        }
    }

    fn stack_totals(&self, sel: &Selection) -> Result<StackTotals> {
        let rows = self.client.rows::<StackSum>(&format!(
            "SELECT unit, stack_id, sum(count) AS total_count, sum(weight) AS total_weight FROM samples \
             WHERE {} GROUP BY unit, stack_id",
            condition(sel, true)
        ))?;
        let units: BTreeSet<Unit> = rows.iter().map(|r| r.unit).collect();
        let unit = one_unit(&units)?;
        let mut stacks: FxHashMap<u64, Weight> = FxHashMap::default();
        for row in rows {
            stacks.entry(row.stack_id).or_default().add(Weight {
                weight: row.weight,
                count: row.count,
            });
        }
        Ok(StackTotals { unit, stacks })
    }

    fn stack_series(&self, sel: &Selection, window_ms: i64, by_endpoint: bool) -> Result<StackSeries> {
        let window_ms = window_ms.max(1);
        let endpoint = if by_endpoint { "endpoint" } else { "''" };
        let rows = self.client.rows::<SeriesSum>(&format!(
            "SELECT intDiv(time_ms, {window_ms}) * {window_ms} AS window_start, deploy, {endpoint} AS endpoint_key, \
             unit, stack_id, sum(count) AS total_count, sum(weight) AS total_weight FROM samples WHERE {} \
             GROUP BY window_start, deploy, endpoint_key, unit, stack_id \
             ORDER BY window_start, deploy, endpoint_key, stack_id",
            condition(sel, true)
        ))?;
        let units: BTreeSet<Unit> = rows.iter().map(|r| r.unit).collect();
        let unit = one_unit(&units)?;
        let mut names: FxHashMap<String, Arc<str>> = FxHashMap::default();
        let mut name = |text: String| {
            names
                .entry(text)
                .or_insert_with_key(|t| Arc::from(t.as_str()))
                .clone()
        };
        let rows = rows
            .into_iter()
            .map(|r| StackSeriesRow {
                window_ms: r.window_ms,
                deploy: name(r.deploy),
                endpoint: name(r.endpoint),
                stack_id: r.stack_id,
                weight: Weight {
                    weight: r.weight,
                    count: r.count,
                },
            })
            .collect();
        Ok(StackSeries { unit, rows })
    }

    fn requests(&self, sel: &Selection, window_ms: i64) -> Result<Vec<RequestWindow>> {
        let window_ms = window_ms.max(1);
        let rows = self.client.rows::<RequestSum>(&format!(
            "SELECT intDiv(time_ms, {window_ms}) * {window_ms} AS window_start, deploy, endpoint, unit, \
             sum(count) AS total_count, sum(cost) AS total_cost FROM requests WHERE {} \
             GROUP BY window_start, deploy, endpoint, unit ORDER BY window_start, deploy, endpoint, unit",
            condition(sel, false)
        ))?;
        Ok(rows
            .into_iter()
            .map(|r| RequestWindow {
                window_ms: r.window_ms,
                deploy: r.deploy,
                endpoint: r.endpoint,
                count: r.count,
                cost: r.cost,
                unit: r.unit,
            })
            .collect())
    }

    fn stack_frames(&self, service: &str, ids: &[u64]) -> Result<Frames> {
        let mut out = Frames::default();
        let mut wanted = Vec::new();
        {
            let cache = self.cache();
            let known = cache.frames.get(service);
            for &id in ids {
                match known.and_then(|k| k.get(&id)) {
                    Some(frames) => {
                        out.insert(id, frames.clone());
                    }
                    None => wanted.push(id),
                }
            }
        }
        wanted.sort_unstable();
        wanted.dedup();
        for chunk in wanted.chunks(IDS_PER_LOOKUP) {
            let list: Vec<String> = chunk.iter().map(u64::to_string).collect();
            let rows = self.client.rows::<StackLookup>(&format!(
                "SELECT stack_id, any(frames) AS stack_frames FROM stacks WHERE service = {} AND stack_id IN ({}) \
                 GROUP BY stack_id",
                quote(service),
                list.join(",")
            ))?;
            let mut cache = self.cache();
            cache.make_room(rows.len());
            let known = cache.frames.entry(service.to_owned()).or_default();
            for row in rows {
                let frames: Vec<Arc<str>> = row.frames.into_iter().map(Arc::from).collect();
                known.insert(row.stack_id, frames.clone());
                out.insert(row.stack_id, frames);
            }
        }
        Ok(out)
    }

    fn maintain(&self) -> Result<()> {
        self.drop_expired()
    }

    fn gauges(&self) -> Vec<Gauge> {
        let cache = self.cache();
        vec![Gauge {
            name: "flameshift_cached_stacks",
            help: "Stacks whose frames this node holds in memory.",
            value: cache.size as u64,
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selection_becomes_one_where_clause() {
        let sel = Selection {
            service: "shop".into(),
            deploys: vec!["v1".into(), "it's".into()],
            from_ms: Some(86_400_000),
            until_ms: Some(2 * 86_400_000),
            endpoint: Some("GET /cart".into()),
            labels: vec![("region".into(), "eu".into())],
        };
        let sql = condition(&sel, true);
        assert!(
            sql.starts_with("service = 'shop' AND deploy IN ('v1', 'it\\'s')"),
            "{sql}"
        );
        assert!(
            sql.contains("day >= toDate('1970-01-02') AND time_ms >= 86400000"),
            "{sql}"
        );
        assert!(
            sql.contains("day <= toDate('1970-01-02') AND time_ms < 172800000"),
            "{sql}"
        );
        assert!(
            sql.contains("position(labels, '{\"region\":\"eu\"}') > 0"),
            "{sql}"
        );
        assert!(!condition(&sel, false).contains("labels"));
    }
}
