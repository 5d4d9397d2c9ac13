//! Queries over the embedded store: polars scans of the Parquet files of
//! the selection's days, plus the head, filtered and aggregated lazily.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use polars::prelude::*;

use super::disk::{DiskStore, ServiceState};
use super::tables::{day_of, Table};
use super::{
    DeploySummary, Receipt, RequestWindow, Selection, ServiceSummary, StackSeries, StackSeriesRow,
    StackTotals, Store, StoreStats,
};
use crate::ingest::Upload;
use crate::model::{RequestKey, SampleKey, Unit, Weight};
use crate::{Error, Result};

fn in_range(sel: &Selection, time_ms: i64) -> bool {
    sel.from_ms.is_none_or(|f| time_ms >= f) && sel.until_ms.is_none_or(|u| time_ms < u)
}

fn day_in_range(sel: &Selection, day: Option<i64>) -> bool {
    let Some(day) = day else { return true };
    sel.from_ms.is_none_or(|f| day >= day_of(f)) && sel.until_ms.is_none_or(|u| day <= day_of(u - 1))
}

fn sample_kept(sel: &Selection, key: &SampleKey) -> bool {
    in_range(sel, key.time_ms)
        && (sel.deploys.is_empty() || sel.deploys.iter().any(|d| **d == *key.deploy))
        && sel.endpoint.as_deref().is_none_or(|e| e == &*key.endpoint)
}

fn request_kept(sel: &Selection, key: &RequestKey) -> bool {
    in_range(sel, key.time_ms)
        && (sel.deploys.is_empty() || sel.deploys.iter().any(|d| **d == *key.deploy))
        && sel.endpoint.as_deref().is_none_or(|e| e == &*key.endpoint)
}

/// The polars filter of a selection (labels are filtered afterwards).
fn predicate(sel: &Selection) -> Option<Expr> {
    let mut parts = Vec::new();
    if let Some(deploys) = sel
        .deploys
        .iter()
        .map(|d| col("deploy").eq(lit(d.as_str())))
        .reduce(|a, b| a.or(b))
    {
        parts.push(deploys);
    }
    if let Some(from) = sel.from_ms {
        parts.push(col("time_ms").gt_eq(lit(from)));
    }
    if let Some(until) = sel.until_ms {
        parts.push(col("time_ms").lt(lit(until)));
    }
    if let Some(endpoint) = &sel.endpoint {
        parts.push(col("endpoint").eq(lit(endpoint.as_str())));
    }
    parts.into_iter().reduce(|a, b| a.and(b))
}

fn window_expr(window_ms: i64) -> Expr {
    (col("time_ms") - col("time_ms") % lit(window_ms)).alias("window_ms")
}

/// Whether a row's labels (canonical JSON) hold every selected label.
struct LabelFilter<'a> {
    wanted: &'a [(String, String)],
    cache: HashMap<String, bool>,
}

impl<'a> LabelFilter<'a> {
    fn new(wanted: &'a [(String, String)]) -> Self {
        LabelFilter {
            wanted,
            cache: HashMap::new(),
        }
    }

    fn keeps(&mut self, labels: Option<&str>) -> bool {
        if self.wanted.is_empty() {
            return true;
        }
        let labels = labels.unwrap_or("{}");
        if let Some(&keep) = self.cache.get(labels) {
            return keep;
        }
        let parsed: BTreeMap<String, String> = serde_json::from_str(labels).unwrap_or_default();
        let keep = self.wanted.iter().all(|(k, v)| parsed.get(k) == Some(v));
        self.cache.insert(labels.to_owned(), keep);
        keep
    }
}

fn one_unit(units: &BTreeSet<Unit>) -> Result<Option<Unit>> {
    match units.len() {
        0 => Ok(None),
        1 => Ok(units.iter().next().copied()),
        _ => Err(Error::MixedUnits(
            units.iter().map(|u| u.as_str()).collect::<Vec<_>>().join(" and "),
        )),
    }
}

fn strs<'a>(frame: &'a DataFrame, name: &str) -> Result<&'a StringChunked> {
    Ok(frame.column(name)?.str()?)
}

fn i64s<'a>(frame: &'a DataFrame, name: &str) -> Result<&'a Int64Chunked> {
    Ok(frame.column(name)?.i64()?)
}

impl DiskStore {
    /// The lazy union of a table's files (days of the selection) and the
    /// head rows of the selection, filtered.
    fn table_frame(&self, table: Table, sel: &Selection) -> Result<LazyFrame> {
        let (paths, heads) = {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            let svc: &ServiceState = state.services.get(&sel.service).ok_or_else(|| Error::NotFound {
                what: "service",
                name: sel.service.clone(),
            })?;
            let paths: Vec<_> = svc
                .files
                .iter()
                .filter(|f| f.table == table && day_in_range(sel, f.day))
                .map(|f| f.path.clone())
                .collect();
            let mut heads = Vec::new();
            for head in std::iter::once(&svc.head).chain(svc.flushing.as_deref()) {
                heads.push(match table {
                    Table::Samples => head.samples_frame(|k| sample_kept(sel, k))?,
                    _ => head.requests_frame(|k| request_kept(sel, k))?,
                });
            }
            (paths, heads)
        };
        let mut frames: Vec<LazyFrame> = heads.into_iter().map(IntoLazy::lazy).collect();
        for path in paths {
            let path = PlRefPath::try_from_path(&path)?;
            frames.push(LazyFrame::scan_parquet(path, ScanArgsParquet::default())?);
        }
        let all = concat(frames, UnionArgs::default())?;
        Ok(match predicate(sel) {
            Some(p) => all.filter(p),
            None => all,
        })
    }

    /// Samples grouped by `keys` (plus unit and, when filtering by labels,
    /// labels), with summed weight and count, labels already filtered.
    fn grouped_samples(&self, sel: &Selection, mut keys: Vec<Expr>) -> Result<DataFrame> {
        if !sel.labels.is_empty() {
            keys.push(col("labels"));
        }
        // The unit is not a grouping key (hashing strings is what costs);
        // its smallest and largest value per group tell mixed units apart.
        let frame = self
            .table_frame(Table::Samples, sel)?
            .group_by(keys)
            .agg([
                col("weight").sum(),
                col("count").sum(),
                col("unit").min().alias("unit"),
                col("unit").max().alias("unit_max"),
            ])
            .collect()?;
        if sel.labels.is_empty() {
            return Ok(frame);
        }
        let mut filter = LabelFilter::new(&sel.labels);
        let labels = strs(&frame, "labels")?;
        let mask: BooleanChunked = (0..frame.height()).map(|i| filter.keeps(labels.get(i))).collect();
        Ok(frame.filter(&mask)?)
    }

    fn units_of(frame: &DataFrame) -> Result<BTreeSet<Unit>> {
        let (low, high) = (strs(frame, "unit")?, strs(frame, "unit_max")?);
        Ok((0..frame.height())
            .flat_map(|i| [low.get(i), high.get(i)])
            .filter_map(|u| u.and_then(Unit::parse))
            .collect())
    }
}

impl Store for DiskStore {
    fn ingest(&self, upload: Upload) -> Result<Receipt> {
        self.ingest_upload(upload)
    }

    fn services(&self) -> Result<Vec<ServiceSummary>> {
        let names: Vec<String> = {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            state.services.keys().cloned().collect()
        };
        let mut out = Vec::new();
        for service in names {
            let deploys = self.deploys(&service)?;
            let latest = deploys
                .iter()
                .max_by_key(|d| (d.last_seen_ms, d.first_seen_ms))
                .map(|d| d.deploy.clone());
            let units: BTreeSet<Unit> = deploys.iter().flat_map(|d| d.units.iter().copied()).collect();
            out.push(ServiceSummary {
                units: units.into_iter().collect(),
                latest_deploy: latest,
                first_seen_ms: deploys.iter().map(|d| d.first_seen_ms).min(),
                last_seen_ms: deploys.iter().map(|d| d.last_seen_ms).max(),
                samples: deploys.iter().map(|d| d.samples).sum(),
                requests: deploys.iter().map(|d| d.requests).sum(),
                deploys: deploys.len(),
                service,
            });
        }
        Ok(out)
    }

    fn deploys(&self, service: &str) -> Result<Vec<DeploySummary>> {
        let _scan = self.scan_guard();
        let sel = Selection {
            service: service.to_owned(),
            ..Selection::default()
        };
        let samples = self
            .table_frame(Table::Samples, &sel)?
            .group_by([col("deploy"), col("unit")])
            .agg([
                col("time_ms").min().alias("first"),
                col("time_ms").max().alias("last"),
                col("count").sum(),
                col("weight").sum(),
            ])
            .collect()?;
        let requests = self
            .table_frame(Table::Requests, &sel)?
            .group_by([col("deploy"), col("unit")])
            .agg([
                col("time_ms").min().alias("first"),
                col("time_ms").max().alias("last"),
                col("count").sum(),
            ])
            .collect()?;
        let mut by_deploy: BTreeMap<String, DeploySummary> = BTreeMap::new();
        let blank = |deploy: &str| DeploySummary {
            deploy: deploy.to_owned(),
            first_seen_ms: i64::MAX,
            last_seen_ms: i64::MIN,
            samples: 0,
            weight: 0,
            requests: 0,
            units: Vec::new(),
            event: None,
        };
        for (frame, is_samples) in [(&samples, true), (&requests, false)] {
            let deploys = strs(frame, "deploy")?;
            let units = strs(frame, "unit")?;
            let (first, last, count) = (i64s(frame, "first")?, i64s(frame, "last")?, i64s(frame, "count")?);
            for i in 0..frame.height() {
                let Some(deploy) = deploys.get(i) else { continue };
                let d = by_deploy
                    .entry(deploy.to_owned())
                    .or_insert_with(|| blank(deploy));
                d.first_seen_ms = d.first_seen_ms.min(first.get(i).unwrap_or(i64::MAX));
                d.last_seen_ms = d.last_seen_ms.max(last.get(i).unwrap_or(i64::MIN));
                if let Some(unit) = units.get(i).and_then(Unit::parse) {
                    if !d.units.contains(&unit) {
                        d.units.push(unit);
                    }
                }
                if is_samples {
                    d.samples += count.get(i).unwrap_or(0);
                    d.weight += i64s(frame, "weight")?.get(i).unwrap_or(0);
                } else {
                    d.requests += count.get(i).unwrap_or(0);
                }
            }
        }
        let events = {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            state
                .services
                .get(service)
                .map(|s| s.deploys.clone())
                .unwrap_or_default()
        };
        for event in events {
            let d = by_deploy
                .entry(event.deploy.clone())
                .or_insert_with(|| blank(&event.deploy));
            d.first_seen_ms = d.first_seen_ms.min(event.time_ms);
            d.last_seen_ms = d.last_seen_ms.max(event.time_ms);
            d.event = Some(event);
        }
        let mut out: Vec<DeploySummary> = by_deploy.into_values().collect();
        out.sort_by(|a, b| (a.first_seen_ms, &a.deploy).cmp(&(b.first_seen_ms, &b.deploy)));
        Ok(out)
    }

    fn has_deploy(&self, service: &str, deploy: &str) -> Result<bool> {
        {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            let svc = state.services.get(service).ok_or_else(|| Error::NotFound {
                what: "service",
                name: service.to_owned(),
            })?;
            if let Some(known) = &svc.known_deploys {
                return Ok(known.contains(deploy));
            }
        }
        // First ask: one scan of the distinct deploys, then kept by ingest.
        // No flush runs meanwhile, so rows ingested during the scan are
        // still in the head for the re-check below.
        let _no_flush = self.flush_lock.lock().unwrap_or_else(|e| e.into_inner());
        let scanned: std::collections::HashSet<String> =
            self.deploys(service)?.into_iter().map(|d| d.deploy).collect();
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        let Some(svc) = state.services.get_mut(service) else {
            return Ok(false);
        };
        let known = svc.known_deploys.get_or_insert(scanned);
        for (key, _) in svc.head.samples.iter() {
            if !known.contains(&*key.deploy) {
                known.insert(key.deploy.to_string());
            }
        }
        for key in svc.head.requests.keys() {
            if !known.contains(&*key.deploy) {
                known.insert(key.deploy.to_string());
            }
        }
        for event in &svc.deploys {
            known.insert(event.deploy.clone());
        }
        Ok(known.contains(deploy))
    }

    fn stack_totals(&self, sel: &Selection) -> Result<StackTotals> {
        let _scan = self.scan_guard();
        let frame = self.grouped_samples(sel, vec![col("stack_id")])?;
        let unit = one_unit(&Self::units_of(&frame)?)?.unwrap_or(Unit::CpuNs);
        let ids = frame.column("stack_id")?.u64()?;
        let (weights, counts) = (i64s(&frame, "weight")?, i64s(&frame, "count")?);
        let mut stacks: HashMap<u64, Weight> = HashMap::with_capacity(frame.height());
        for i in 0..frame.height() {
            if let Some(id) = ids.get(i) {
                stacks.entry(id).or_default().add(Weight {
                    weight: weights.get(i).unwrap_or(0),
                    count: counts.get(i).unwrap_or(0),
                });
            }
        }
        Ok(StackTotals { unit, stacks })
    }

    fn stack_series(&self, sel: &Selection, window_ms: i64, by_endpoint: bool) -> Result<StackSeries> {
        let _scan = self.scan_guard();
        let window_ms = window_ms.max(1);
        let mut keys = vec![window_expr(window_ms), col("deploy"), col("stack_id")];
        if by_endpoint {
            keys.push(col("endpoint"));
        }
        let frame = self.grouped_samples(sel, keys)?;
        let unit = one_unit(&Self::units_of(&frame)?)?.unwrap_or(Unit::CpuNs);
        let windows = i64s(&frame, "window_ms")?;
        let deploys = strs(&frame, "deploy")?;
        let endpoints = if by_endpoint {
            Some(strs(&frame, "endpoint")?)
        } else {
            None
        };
        let ids = frame.column("stack_id")?.u64()?;
        let (weights, counts) = (i64s(&frame, "weight")?, i64s(&frame, "count")?);
        let mut names: HashMap<&str, Arc<str>> = HashMap::new();
        let mut summed: BTreeMap<(i64, Arc<str>, Arc<str>, u64), Weight> = BTreeMap::new();
        for i in 0..frame.height() {
            let (Some(window), Some(deploy), Some(id)) = (windows.get(i), deploys.get(i), ids.get(i)) else {
                continue;
            };
            let endpoint = endpoints.as_ref().and_then(|e| e.get(i)).unwrap_or("");
            let deploy = names.entry(deploy).or_insert_with(|| deploy.into()).clone();
            let endpoint = names.entry(endpoint).or_insert_with(|| endpoint.into()).clone();
            summed
                .entry((window, deploy, endpoint, id))
                .or_default()
                .add(Weight {
                    weight: weights.get(i).unwrap_or(0),
                    count: counts.get(i).unwrap_or(0),
                });
        }
        Ok(StackSeries {
            unit,
            rows: summed
                .into_iter()
                .map(
                    |((window_ms, deploy, endpoint, stack_id), weight)| StackSeriesRow {
                        window_ms,
                        deploy,
                        endpoint,
                        stack_id,
                        weight,
                    },
                )
                .collect(),
        })
    }

    fn requests(&self, sel: &Selection, window_ms: i64) -> Result<Vec<RequestWindow>> {
        let _scan = self.scan_guard();
        let window_ms = window_ms.max(1);
        let frame = self
            .table_frame(Table::Requests, sel)?
            .group_by([
                window_expr(window_ms),
                col("deploy"),
                col("endpoint"),
                col("unit"),
            ])
            .agg([col("count").sum(), col("cost").sum()])
            .sort(
                ["window_ms", "deploy", "endpoint"],
                SortMultipleOptions::default(),
            )
            .collect()?;
        let (windows, deploys, endpoints, units) = (
            i64s(&frame, "window_ms")?,
            strs(&frame, "deploy")?,
            strs(&frame, "endpoint")?,
            strs(&frame, "unit")?,
        );
        let (counts, costs) = (i64s(&frame, "count")?, i64s(&frame, "cost")?);
        let mut out = Vec::with_capacity(frame.height());
        for i in 0..frame.height() {
            let (Some(window_ms), Some(deploy), Some(endpoint), Some(unit)) = (
                windows.get(i),
                deploys.get(i),
                endpoints.get(i),
                units.get(i).and_then(Unit::parse),
            ) else {
                continue;
            };
            out.push(RequestWindow {
                window_ms,
                deploy: deploy.to_owned(),
                endpoint: endpoint.to_owned(),
                count: counts.get(i).unwrap_or(0),
                cost: costs.get(i).unwrap_or(0),
                unit,
            });
        }
        Ok(out)
    }

    fn stack_frames(&self, service: &str, id: u64) -> Option<Vec<Arc<str>>> {
        self.frames_of(service, id)
    }

    fn flush(&self) -> Result<()> {
        self.flush_all()
    }

    fn stats(&self) -> StoreStats {
        self.store_stats()
    }
}
