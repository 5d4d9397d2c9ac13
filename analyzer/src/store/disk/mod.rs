//! The embedded store: a data directory with a write-ahead log, an
//! in-memory head per service, and Parquet tables (see [`super::tables`]).
//!
//! Ingest validates an upload, appends it to the log (fsynced), then adds
//! its rows to the head; only then does the server answer 2xx. `flush`
//! rotates the log, writes each service's head as Parquet files covering
//! the rotated segments, advances the checkpoint, and deletes those
//! segments; then it compacts partitions with many small files and drops
//! days past the retention. Queries read the Parquet files plus the head
//! (and a head being flushed), so nothing acknowledged is ever invisible.
//!
//! Stack nodes and deploy events are small and are also kept in memory
//! for every service.

mod format;
mod head;
mod parallel;
mod scan;
mod tables;
pub(crate) mod wal;

use std::collections::BTreeMap;

use crate::model::now_ms;
use rustc_hash::FxHashMap as HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use self::format::{SampleColumns, TimeRange};
use self::head::Head;
use self::tables::{day_of, PartFile, Table};
use self::wal::{sync_dir, Wal};
use super::{
    DeploySummary, Frames, Gauge, Receipt, RequestWindow, Selection, ServiceSummary, StackSeries,
    StackTotals, Store, StoreStats,
};
use crate::ingest::{self, Accepted, Limits, Upload};
use crate::model::{
    walk_stack, Batch, DeployEvent, DeployFact, FactKind, RequestAgg, RequestKey, SampleKey, StackNode,
    Weight,
};
use crate::store::facts::FactIndex;
use crate::{Error, Result};

/// How the embedded store behaves.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The data directory.
    pub dir: PathBuf,
    /// Days of samples and requests older than this are deleted (none: keep all).
    pub retention_ms: Option<i64>,
    /// Limits on uploads.
    pub limits: Limits,
    /// A partition with this many files or more is compacted into one.
    pub compact_at_files: usize,
}

impl StoreConfig {
    /// Defaults for a data directory: 14 days of retention, compaction at 8 files.
    pub fn new(dir: impl Into<PathBuf>) -> StoreConfig {
        StoreConfig {
            dir: dir.into(),
            retention_ms: Some(14 * 86_400_000),
            limits: Limits::default(),
            compact_at_files: 8,
        }
    }
}

/// One service's data in memory.
#[derive(Debug, Default)]
pub(super) struct ServiceState {
    pub(super) head: Head,
    pub(super) flushing: Option<Arc<Head>>,
    pub(super) files: Vec<PartFile>,
    pub(super) stacks: HashMap<u64, (u64, Arc<str>)>,
    pub(super) deploys: Vec<DeployEvent>,
    /// Facts about deploys, and which are held (to store only new ones).
    pub(super) facts: HashMap<String, Vec<DeployFact>>,
    pub(super) fact_index: FactIndex,
    /// Every deploy seen, once a query has asked (filled by one scan, then
    /// kept up to date by ingest).
    pub(super) known_deploys: Option<std::collections::HashSet<String>>,
}

impl ServiceState {
    /// How many commits each deploy's events listed.
    pub(super) fn commit_counts(&self) -> Vec<(String, usize)> {
        self.facts
            .iter()
            .map(|(deploy, facts)| {
                let commits = facts.iter().filter(|f| f.kind == FactKind::Commit).count();
                (deploy.clone(), commits)
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) services: BTreeMap<String, ServiceState>,
}

/// The embedded store. See the module documentation.
#[derive(Debug)]
pub struct DiskStore {
    config: StoreConfig,
    tables: PathBuf,
    wal: Wal,
    /// Held shared by ingest (log append + head update), exclusively by
    /// the flush while it rotates the log and takes the heads.
    gate: RwLock<()>,
    pub(super) state: RwLock<State>,
    /// Serialises flushes (and the first scan of known deploys, so that
    /// no row moves from the head to Parquet in the middle of it).
    pub(super) flush_lock: Mutex<()>,
    /// Held shared by every running scan, exclusively while compaction or
    /// retention deletes files, so no scan loses a file it was given.
    scans: RwLock<()>,
    checkpoint: Mutex<u64>,
    corrupt_on_start: u64,
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

fn read_checkpoint(path: &Path) -> Result<u64> {
    match fs::read_to_string(path) {
        Ok(text) => text.trim().parse().map_err(|_| {
            Error::io(
                "read the checkpoint",
                std::io::Error::other(format!("{text:?} is not a number")),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(Error::io(format!("read {}", path.display()), e)),
    }
}

fn write_checkpoint(dir: &Path, seq: u64) -> Result<()> {
    let tmp = dir.join("checkpoint.tmp");
    let path = dir.join("checkpoint");
    fs::write(&tmp, seq.to_string())
        .and_then(|_| fs::File::open(&tmp)?.sync_all())
        .and_then(|_| fs::rename(&tmp, &path))
        .map_err(|e| Error::io("write the checkpoint", e))?;
    sync_dir(dir)
}

impl DiskStore {
    /// Opens (or creates) the data directory, loads the Parquet tables and
    /// replays the write-ahead log. Corrupt files and log tails are
    /// reported and skipped.
    pub fn open(config: StoreConfig) -> Result<DiskStore> {
        let dir = &config.dir;
        fs::create_dir_all(dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        let checkpoint = read_checkpoint(&dir.join("checkpoint"))?;
        let tables_root = dir.join("tables");
        let (files, corrupt_files) = tables::load(&tables_root, checkpoint, &dir.join("quarantine"))?;
        let mut state = State::default();
        for (service, files) in files {
            let mut svc = ServiceState::default();
            for file in &files {
                match file.table {
                    Table::Stacks => load_stacks(&file.path, &mut svc.stacks)?,
                    Table::Deploys => svc.deploys.extend(format::read_deploys(&file.path)?),
                    Table::Facts => {
                        for fact in format::read_facts(&file.path)? {
                            svc.fact_index.remember(&fact);
                            svc.facts.entry(fact.deploy.clone()).or_default().push(fact);
                        }
                    }
                    Table::Samples | Table::Requests => {}
                }
            }
            svc.files = files;
            state.services.insert(service, svc);
        }
        let (wal, replay, report) = Wal::open(&dir.join("wal"), checkpoint)?;
        let mut replayed = 0;
        for (seq, upload) in replay {
            match ingest::decode(&upload, &config.limits) {
                Ok(batch) => {
                    apply(&mut state, batch);
                    replayed += 1;
                }
                Err(e) => {
                    tracing::warn!(segment = seq, error = %e, "skipping a logged upload that no longer decodes")
                }
            }
        }
        tracing::info!(
            dir = %dir.display(),
            checkpoint,
            replayed,
            services = state.services.len(),
            "store opened"
        );
        Ok(DiskStore {
            tables: tables_root,
            wal,
            gate: RwLock::new(()),
            state: RwLock::new(state),
            flush_lock: Mutex::new(()),
            scans: RwLock::new(()),
            checkpoint: Mutex::new(checkpoint),
            corrupt_on_start: (corrupt_files.len() + report.corrupt.len()) as u64,
            config,
        })
    }

    /// Keeps the files a scan was given until it finishes.
    pub(super) fn scan_guard(&self) -> RwLockReadGuard<'_, ()> {
        read(&self.scans)
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    pub(super) fn append_accepted(&self, accepted: Accepted) -> Result<Receipt> {
        let _gate = read(&self.gate);
        self.wal.append(&accepted.upload)?;
        Ok(apply(&mut write(&self.state), accepted.batch))
    }

    /// Validates and appends an upload: [`ingest::accept`] with this
    /// store's limits, then [`super::Store::append`].
    pub fn ingest(&self, upload: Upload) -> Result<Receipt> {
        self.append_accepted(ingest::accept(upload, &self.config.limits)?)
    }

    /// Moves what is only in the write-ahead log into Parquet, compacts
    /// and applies retention ([`super::Store::maintain`]).
    pub fn flush(&self) -> Result<()> {
        self.flush_all()
    }

    pub(super) fn flush_all(&self) -> Result<()> {
        let _flush = self.flush_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.flush_heads()?;
        self.compact()?;
        self.apply_retention()
    }

    fn flush_heads(&self) -> Result<()> {
        let (seq, work) = {
            let _gate = write(&self.gate);
            let mut state = write(&self.state);
            if state
                .services
                .values()
                .all(|s| s.head.is_empty() && s.flushing.is_none())
            {
                return Ok(());
            }
            let seq = self.wal.rotate()?;
            let mut work = Vec::new();
            for (service, svc) in state.services.iter_mut() {
                if svc.head.is_empty() && svc.flushing.is_none() {
                    continue;
                }
                let mut head = std::mem::take(&mut svc.head);
                if let Some(failed) = svc.flushing.take() {
                    head.absorb(Arc::try_unwrap(failed).unwrap_or_else(|arc| (*arc).clone()));
                }
                let head = Arc::new(head);
                svc.flushing = Some(head.clone());
                work.push((service.clone(), head));
            }
            (seq, work)
        };
        let from = *self.checkpoint.lock().unwrap_or_else(|e| e.into_inner()) + 1;
        let mut written: Vec<(String, PartFile)> = Vec::new();
        let result = (|| {
            for (service, head) in &work {
                for file in self.write_head(service, head, (from, seq))? {
                    written.push((service.clone(), file));
                }
            }
            write_checkpoint(&self.config.dir, seq)
        })();
        if let Err(e) = result {
            for (_, file) in &written {
                let _ = fs::remove_file(&file.path);
            }
            tracing::error!(error = %e, "flush to Parquet failed; the data stay in the log and memory");
            return Err(e);
        }
        *self.checkpoint.lock().unwrap_or_else(|e| e.into_inner()) = seq;
        {
            let mut state = write(&self.state);
            for (service, file) in written {
                if let Some(svc) = state.services.get_mut(&service) {
                    svc.files.push(file);
                }
            }
            for (service, _) in &work {
                if let Some(svc) = state.services.get_mut(service) {
                    svc.flushing = None;
                }
            }
        }
        self.wal.remove_through(seq)?;
        tracing::debug!(through_segment = seq, services = work.len(), "flushed to Parquet");
        Ok(())
    }

    fn write_head(&self, service: &str, head: &Head, range: (u64, u64)) -> Result<Vec<PartFile>> {
        let mut files = Vec::new();
        let mut sample_days: BTreeMap<i64, Vec<_>> = BTreeMap::new();
        for (key, weight) in &head.samples {
            sample_days
                .entry(day_of(key.time_ms))
                .or_default()
                .push((key, *weight));
        }
        for (day, mut rows) in sample_days {
            files.push(tables::write(
                &self.tables,
                Table::Samples,
                service,
                Some(day),
                range,
                |file, path| format::write_samples(file, path, &mut rows),
            )?);
        }
        let mut request_days: BTreeMap<i64, Vec<_>> = BTreeMap::new();
        for row in &head.requests {
            request_days.entry(day_of(row.0.time_ms)).or_default().push(row);
        }
        for (day, mut rows) in request_days {
            files.push(tables::write(
                &self.tables,
                Table::Requests,
                service,
                Some(day),
                range,
                |file, path| format::write_requests(file, path, &mut rows),
            )?);
        }
        if !head.stacks.is_empty() {
            files.push(tables::write(
                &self.tables,
                Table::Stacks,
                service,
                None,
                range,
                |file, path| format::write_stacks(file, path, &head.stacks),
            )?);
        }
        if !head.deploys.is_empty() {
            files.push(tables::write(
                &self.tables,
                Table::Deploys,
                service,
                None,
                range,
                |file, path| format::write_deploys(file, path, &head.deploys),
            )?);
        }
        if !head.facts.is_empty() {
            files.push(tables::write(
                &self.tables,
                Table::Facts,
                service,
                None,
                range,
                |file, path| format::write_facts(file, path, &head.facts),
            )?);
        }
        Ok(files)
    }

    /// Merges every partition that has `compact_at_files` files or more
    /// into one file (sample rows with equal keys summed, stack nodes
    /// deduplicated).
    fn compact(&self) -> Result<()> {
        let groups: Vec<(String, Vec<PartFile>)> = {
            let state = read(&self.state);
            let mut groups = Vec::new();
            for (service, svc) in &state.services {
                let mut partitions: BTreeMap<(Table, Option<i64>), Vec<PartFile>> = BTreeMap::new();
                for file in &svc.files {
                    partitions
                        .entry((file.table, file.day))
                        .or_default()
                        .push(file.clone());
                }
                for (_, files) in partitions {
                    if files.len() >= self.config.compact_at_files.max(2) {
                        groups.push((service.clone(), files));
                    }
                }
            }
            groups
        };
        for (service, inputs) in groups {
            let range = (
                inputs.iter().map(|f| f.from).min().unwrap_or(0),
                inputs.iter().map(|f| f.to).max().unwrap_or(0),
            );
            let output = merge(&self.tables, &service, &inputs, range)?;
            {
                let mut state = write(&self.state);
                if let Some(svc) = state.services.get_mut(&service) {
                    svc.files.retain(|f| !inputs.contains(f));
                    svc.files.push(output);
                }
            }
            let _no_scans = write(&self.scans);
            for file in &inputs {
                fs::remove_file(&file.path)
                    .map_err(|e| Error::io(format!("remove {}", file.path.display()), e))?;
            }
            tracing::debug!(service, files = inputs.len(), "compacted");
        }
        Ok(())
    }

    fn apply_retention(&self) -> Result<()> {
        let Some(retention) = self.config.retention_ms else {
            return Ok(());
        };
        let oldest_kept = day_of(now_ms() - retention);
        let expired: Vec<PartFile> = {
            let mut state = write(&self.state);
            let mut expired = Vec::new();
            for svc in state.services.values_mut() {
                svc.files.retain(|f| {
                    let old = f.day.is_some_and(|d| d < oldest_kept);
                    if old {
                        expired.push(f.clone());
                    }
                    !old
                });
            }
            expired
        };
        let _no_scans = write(&self.scans);
        for file in expired {
            fs::remove_file(&file.path)
                .map_err(|e| Error::io(format!("remove {}", file.path.display()), e))?;
            if let Some(dir) = file.path.parent() {
                tables::remove_if_empty(dir);
            }
            tracing::info!(file = %file.path.display(), "removed by retention");
        }
        Ok(())
    }

    /// Counters for `/metrics`.
    pub fn stats(&self) -> StoreStats {
        let state = read(&self.state);
        let files = state.services.values().flat_map(|s| s.files.iter());
        let (count, bytes) = files.fold((0, 0), |(n, b), f| (n + 1, b + f.bytes));
        StoreStats {
            wal_bytes: self.wal.size_bytes(),
            parquet_files: count,
            parquet_bytes: bytes,
            head_rows: state.services.values().map(|s| s.head.samples.len() as u64).sum(),
            corrupt_on_start: self.corrupt_on_start,
        }
    }

    /// The frames of the stacks in `ids` that the service holds.
    fn frames_of(&self, service: &str, ids: &[u64]) -> super::Frames {
        let state = read(&self.state);
        let Some(svc) = state.services.get(service) else {
            return super::Frames::default();
        };
        ids.iter()
            .filter_map(|&id| {
                let frames = walk_stack(id, |at| svc.stacks.get(&at).map(|(parent, f)| (*parent, f)))?;
                Some((id, frames))
            })
            .collect()
    }
}

impl Store for DiskStore {
    fn append(&self, accepted: Accepted) -> Result<Receipt> {
        self.append_accepted(accepted)
    }

    fn services(&self) -> Result<Vec<ServiceSummary>> {
        self.scan_services()
    }

    fn deploys(&self, service: &str) -> Result<Vec<DeploySummary>> {
        self.scan_deploys(service)
    }

    fn deploy_facts(&self, service: &str, deploy: &str) -> Result<Vec<DeployFact>> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        Ok(state
            .services
            .get(service)
            .and_then(|svc| svc.facts.get(deploy).cloned())
            .unwrap_or_default())
    }

    fn has_deploy(&self, service: &str, deploy: &str) -> Result<bool> {
        self.scan_has_deploy(service, deploy)
    }

    fn stack_totals(&self, selection: &Selection) -> Result<StackTotals> {
        self.scan_stack_totals(selection)
    }

    fn stack_series(&self, selection: &Selection, window_ms: i64, by_endpoint: bool) -> Result<StackSeries> {
        self.scan_stack_series(selection, window_ms, by_endpoint)
    }

    fn requests(&self, selection: &Selection, window_ms: i64) -> Result<Vec<RequestWindow>> {
        self.scan_requests(selection, window_ms)
    }

    fn stack_frames(&self, service: &str, ids: &[u64]) -> Result<Frames> {
        Ok(self.frames_of(service, ids))
    }

    fn maintain(&self) -> Result<()> {
        self.flush_all()
    }

    fn gauges(&self) -> Vec<Gauge> {
        let stats = self.stats();
        vec![
            Gauge {
                name: "flameshift_wal_bytes",
                help: "Bytes in the write-ahead log.",
                value: stats.wal_bytes,
            },
            Gauge {
                name: "flameshift_parquet_files",
                help: "Parquet files.",
                value: stats.parquet_files,
            },
            Gauge {
                name: "flameshift_parquet_bytes",
                help: "Bytes in Parquet files.",
                value: stats.parquet_bytes,
            },
            Gauge {
                name: "flameshift_head_rows",
                help: "Sample rows not yet in Parquet.",
                value: stats.head_rows,
            },
            Gauge {
                name: "flameshift_corrupt_on_start",
                help: "Corrupt files and log tails skipped on start.",
                value: stats.corrupt_on_start,
            },
        ]
    }
}

/// Adds a batch to the state: new stack nodes are remembered, rows go to
/// the service's head.
fn apply(state: &mut State, batch: Batch) -> Receipt {
    let svc = state.services.entry(batch.service.clone()).or_default();
    let mut new_stacks: Vec<StackNode> = Vec::new();
    for node in &batch.stack_nodes {
        if let std::collections::hash_map::Entry::Vacant(slot) = svc.stacks.entry(node.id) {
            slot.insert((node.parent, node.function.clone()));
            new_stacks.push(node.clone());
        }
    }
    svc.deploys.extend(batch.deploys.iter().cloned());
    let mut new_facts = Vec::new();
    for fact in &batch.facts {
        if let Some(fact) = svc.fact_index.admit(fact.clone()) {
            svc.facts
                .entry(fact.deploy.clone())
                .or_default()
                .push(fact.clone());
            new_facts.push(fact);
        }
    }
    if let Some(known) = &mut svc.known_deploys {
        let seen = batch.samples.iter().map(|(k, _)| &*k.deploy);
        let seen = seen.chain(batch.requests.iter().map(|(k, _)| &*k.deploy));
        for deploy in seen.chain(batch.deploys.iter().map(|e| e.deploy.as_str())) {
            if !known.contains(deploy) {
                known.insert(deploy.to_owned());
            }
        }
    }
    let receipt = Receipt::of(&batch);
    svc.head.apply(batch, new_stacks, new_facts);
    receipt
}

fn load_stacks(path: &Path, into: &mut HashMap<u64, (u64, Arc<str>)>) -> Result<()> {
    for node in format::read_stacks(path)? {
        into.insert(node.id, (node.parent, node.function));
    }
    Ok(())
}

/// Writes the rows of `inputs` (files of one partition) as one file:
/// sample and request rows with equal keys summed, stack nodes
/// deduplicated, deploy events kept.
fn merge(root: &Path, service: &str, inputs: &[PartFile], range: (u64, u64)) -> Result<PartFile> {
    let (table, day) = (inputs[0].table, inputs[0].day);
    match table {
        Table::Samples => {
            let mut rows: HashMap<SampleKey, Weight> = HashMap::default();
            for input in inputs {
                format::read_samples(&input.path, TimeRange::default(), SampleColumns::ALL, |group| {
                    for row in 0..group.len() {
                        if let Some(key) = group.key(row) {
                            rows.entry(key).or_default().add(group.weight(row));
                        }
                    }
                })?;
            }
            let mut rows: Vec<(&SampleKey, Weight)> = rows.iter().map(|(k, w)| (k, *w)).collect();
            tables::write(root, table, service, day, range, |file, path| {
                format::write_samples(file, path, &mut rows)
            })
        }
        Table::Requests => {
            let mut rows: HashMap<RequestKey, RequestAgg> = HashMap::default();
            for input in inputs {
                format::read_requests(&input.path, TimeRange::default(), true, |key, agg| {
                    rows.entry(key).or_default().add(&agg)
                })?;
            }
            let mut rows: Vec<(&RequestKey, &RequestAgg)> = rows.iter().collect();
            tables::write(root, table, service, day, range, |file, path| {
                format::write_requests(file, path, &mut rows)
            })
        }
        Table::Stacks => {
            let mut seen = std::collections::HashSet::new();
            let mut nodes = Vec::new();
            for input in inputs {
                nodes.extend(
                    format::read_stacks(&input.path)?
                        .into_iter()
                        .filter(|n| seen.insert(n.id)),
                );
            }
            tables::write(root, table, service, day, range, |file, path| {
                format::write_stacks(file, path, &nodes)
            })
        }
        Table::Deploys => {
            let mut events = Vec::new();
            for input in inputs {
                events.extend(format::read_deploys(&input.path)?);
            }
            tables::write(root, table, service, day, range, |file, path| {
                format::write_deploys(file, path, &events)
            })
        }
        Table::Facts => {
            let mut seen = std::collections::HashSet::new();
            let mut facts = Vec::new();
            for input in inputs {
                facts.extend(
                    format::read_facts(&input.path)?
                        .into_iter()
                        .filter(|f| seen.insert(f.clone())),
                );
            }
            tables::write(root, table, service, day, range, |file, path| {
                format::write_facts(file, path, &facts)
            })
        }
    }
}
