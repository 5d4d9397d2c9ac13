//! Storage behind one trait, so that the embedded data directory
//! ([`DiskStore`]) and a ClickHouse database ([`ClickHouseStore`]) serve
//! the same queries.
//!
//! The seam: the ingest layer decodes and validates an upload
//! ([`crate::ingest::accept`]), then a store [`Store::append`]s the rows;
//! queries ask for sums (a store aggregates where its data lives); frames
//! are looked up in batches, and an unknown stack is an error, not an
//! empty stack; each backend owns its housekeeping ([`Store::maintain`]).
//! Regression state sits behind [`RegressionBook`] (`book.rs`).

mod book;
mod clickhouse;
mod days;
pub(crate) mod disk;
pub mod facts;
mod location;

use std::sync::Arc;

use serde::Serialize;

pub use book::{FileBook, Node, RegressionBook, Regressions};
pub use clickhouse::{ClickHouseBook, ClickHouseConfig, ClickHouseStore, Endpoint};
pub use disk::{DiskStore, StoreConfig};
pub use location::{Backend, StoreLocation};

use crate::ingest::Accepted;
use crate::model::{DeployEvent, Unit, Weight};
use crate::Result;

/// Which samples or requests a query is about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// The service (required).
    pub service: String,
    /// Deploys to include; all when empty.
    pub deploys: Vec<String>,
    /// Start of the time range, ms since the Unix epoch, inclusive.
    pub from_ms: Option<i64>,
    /// End of the time range, ms, exclusive.
    pub until_ms: Option<i64>,
    /// Only this endpoint (`""` selects work outside requests).
    pub endpoint: Option<String>,
    /// Only samples with all of these labels.
    pub labels: Vec<(String, String)>,
}

/// Summed weights per stack of a selection, in one unit.
#[derive(Debug, Clone, PartialEq)]
pub struct StackTotals {
    /// The unit of every weight.
    pub unit: Unit,
    /// Leaf stack node → summed weight.
    pub stacks: rustc_hash::FxHashMap<u64, Weight>,
}

impl StackTotals {
    /// The stack ids, to look up with [`Store::stacks`].
    pub fn ids(&self) -> Vec<u64> {
        self.stacks.keys().copied().collect()
    }
}

/// Summed weights per window, deploy, endpoint (when asked) and stack.
#[derive(Debug, Clone, PartialEq)]
pub struct StackSeries {
    /// The unit of every weight.
    pub unit: Unit,
    /// The rows, ordered by window, deploy, endpoint and stack.
    pub rows: Vec<StackSeriesRow>,
}

impl StackSeries {
    /// The distinct stack ids of the rows, to look up with
    /// [`Store::stacks`].
    pub fn ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.rows.iter().map(|r| r.stack_id).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// One row of a [`StackSeries`].
#[derive(Debug, Clone, PartialEq)]
pub struct StackSeriesRow {
    /// Window start, ms since the Unix epoch.
    pub window_ms: i64,
    /// The deploy.
    pub deploy: Arc<str>,
    /// The endpoint, or `""` for every endpoint when not grouped by it.
    pub endpoint: Arc<str>,
    /// Leaf node of the stack.
    pub stack_id: u64,
    /// Summed weight.
    pub weight: Weight,
}

/// Request counts and cost per window, deploy and endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestWindow {
    /// Window start, ms since the Unix epoch.
    pub window_ms: i64,
    /// The deploy.
    pub deploy: String,
    /// The endpoint.
    pub endpoint: String,
    /// Requests completed.
    pub count: i64,
    /// Their own summed CPU cost.
    pub cost: i64,
    /// Unit of `cost`.
    pub unit: Unit,
}

/// One service, for `GET /api/v1/services`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceSummary {
    /// The service.
    pub service: String,
    /// Units its data are in (one, unless hosts differ).
    pub units: Vec<Unit>,
    /// Number of deploys seen.
    pub deploys: usize,
    /// The deploy seen last.
    pub latest_deploy: Option<String>,
    /// First sample or request, ms.
    pub first_seen_ms: Option<i64>,
    /// Last sample or request, ms.
    pub last_seen_ms: Option<i64>,
    /// Samples stored.
    pub samples: i64,
    /// Requests counted.
    pub requests: i64,
}

impl DeploySummary {
    /// A deploy nothing was seen of yet: times and sums to widen and add to.
    pub fn unseen(deploy: &str) -> DeploySummary {
        DeploySummary {
            deploy: deploy.to_owned(),
            first_seen_ms: i64::MAX,
            last_seen_ms: i64::MIN,
            samples: 0,
            weight: 0,
            requests: 0,
            units: Vec::new(),
            event: None,
            commits: 0,
        }
    }
}

impl ServiceSummary {
    /// The summary of `service` from its deploys' summaries.
    pub fn from_deploys(service: String, deploys: &[DeploySummary]) -> ServiceSummary {
        let latest = deploys
            .iter()
            .max_by_key(|d| (d.last_seen_ms, d.first_seen_ms))
            .map(|d| d.deploy.clone());
        let units: std::collections::BTreeSet<Unit> =
            deploys.iter().flat_map(|d| d.units.iter().copied()).collect();
        ServiceSummary {
            units: units.into_iter().collect(),
            latest_deploy: latest,
            first_seen_ms: deploys.iter().map(|d| d.first_seen_ms).min(),
            last_seen_ms: deploys.iter().map(|d| d.last_seen_ms).max(),
            samples: deploys.iter().map(|d| d.samples).sum(),
            requests: deploys.iter().map(|d| d.requests).sum(),
            deploys: deploys.len(),
            service,
        }
    }
}

/// One deploy of a service, for `GET /api/v1/services/{service}/deploys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeploySummary {
    /// The deploy.
    pub deploy: String,
    /// First sample, request or event, ms.
    pub first_seen_ms: i64,
    /// Last sample or request, ms.
    pub last_seen_ms: i64,
    /// Samples stored.
    pub samples: i64,
    /// Total weight of those samples.
    pub weight: i64,
    /// Requests counted.
    pub requests: i64,
    /// Units of its data.
    pub units: Vec<Unit>,
    /// The deploy event, if one was posted.
    pub event: Option<DeployEvent>,
    /// The commits its deploy events listed (`flameshift deploy
    /// --commits`): what its regressions' suspects are drawn from.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub commits: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Counters the embedded store reports for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Bytes in the write-ahead log.
    pub wal_bytes: u64,
    /// Parquet files.
    pub parquet_files: u64,
    /// Bytes in Parquet files.
    pub parquet_bytes: u64,
    /// Sample rows not yet in Parquet.
    pub head_rows: u64,
    /// Corrupt files and log tails found on start.
    pub corrupt_on_start: u64,
}

/// What an accepted upload added.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Receipt {
    /// The service.
    pub service: String,
    /// Samples stored.
    pub samples: i64,
    /// Distinct stacks in the upload.
    pub stacks: usize,
    /// Request-statistics rows stored.
    pub request_rows: usize,
    /// Deploy events stored.
    pub deploys: usize,
}

impl Receipt {
    /// What storing `batch` stores.
    pub fn of(batch: &crate::model::Batch) -> Receipt {
        let stacks: rustc_hash::FxHashSet<u64> = batch.samples.iter().map(|(k, _)| k.stack_id).collect();
        Receipt {
            service: batch.service.clone(),
            samples: batch.sample_count(),
            stacks: stacks.len(),
            request_rows: batch.requests.len(),
            deploys: batch.deploys.len(),
        }
    }
}

/// One value a store reports for `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gauge {
    /// Metric name, `flameshift_` first.
    pub name: &'static str,
    /// Its `# HELP` text.
    pub help: &'static str,
    /// The value now.
    pub value: u64,
}

/// Frames (root first) per stack id.
pub type Frames = rustc_hash::FxHashMap<u64, Vec<Arc<str>>>;

/// The storage the analyzer serves from.
pub trait Store: Send + Sync {
    /// Makes an accepted upload durable and queryable; an error means
    /// nothing of it was stored.
    fn append(&self, accepted: Accepted) -> Result<Receipt>;
    /// Every service.
    fn services(&self) -> Result<Vec<ServiceSummary>>;
    /// The deploys of `service`, oldest first.
    fn deploys(&self, service: &str) -> Result<Vec<DeploySummary>>;
    /// Whether `service` has data or an event for `deploy` (an unknown
    /// service is [`crate::Error::NotFound`]).
    fn has_deploy(&self, service: &str, deploy: &str) -> Result<bool>;
    /// Summed weight per stack of the selection.
    fn stack_totals(&self, selection: &Selection) -> Result<StackTotals>;
    /// Summed weight per window, deploy and stack, and per endpoint too
    /// when `by_endpoint`.
    fn stack_series(&self, selection: &Selection, window_ms: i64, by_endpoint: bool) -> Result<StackSeries>;
    /// Requests per window, deploy and endpoint.
    fn requests(&self, selection: &Selection, window_ms: i64) -> Result<Vec<RequestWindow>>;
    /// The frames of the stacks in `ids` of `service` that the store
    /// holds, root first (those it does not hold are left out).
    fn stack_frames(&self, service: &str, ids: &[u64]) -> Result<Frames>;

    /// The facts stored about `deploy` of `service` (its commits, its
    /// functions' source spans), as [`facts::DeployChanges`] reads them.
    fn deploy_facts(&self, service: &str, deploy: &str) -> Result<Vec<crate::model::DeployFact>>;

    /// What `deploy` of `service` brought: its commits and its
    /// functions' source spans.
    fn deploy_changes(&self, service: &str, deploy: &str) -> Result<facts::DeployChanges> {
        Ok(facts::DeployChanges::of(&self.deploy_facts(service, deploy)?))
    }
    /// The frames of every stack in `ids` of `service`, root first; a
    /// stack the store does not hold is [`crate::Error::MissingStack`].
    fn stacks(&self, service: &str, ids: &[u64]) -> Result<Frames> {
        let frames = self.stack_frames(service, ids)?;
        match ids.iter().find(|id| !frames.contains_key(id)) {
            Some(&id) => Err(crate::Error::MissingStack {
                service: service.to_owned(),
                id,
            }),
            None => Ok(frames),
        }
    }
    /// The backend's housekeeping, run periodically and once at shutdown
    /// (the embedded store flushes its log to Parquet, compacts and
    /// applies retention; ClickHouse drops expired partitions).
    fn maintain(&self) -> Result<()>;
    /// Values for `/metrics`.
    fn gauges(&self) -> Vec<Gauge>;
}
