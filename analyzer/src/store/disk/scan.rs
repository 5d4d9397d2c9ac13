//! Queries over the embedded store: every row of the selection, from the
//! Parquet files of its days ([`super::format`] skips row groups outside
//! its time range) and from the head, folded into sums per key.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;

use super::format::{self, SampleColumns, SampleGroup, TimeRange};
use super::parallel;
use super::tables::{day_of, Table};
use super::{DiskStore, ServiceState};
use crate::model::{RequestAgg, RequestKey, SampleKey, Unit, Weight};
use crate::store::{
    DeploySummary, RequestWindow, Selection, ServiceSummary, StackSeries, StackSeriesRow, StackTotals,
};
use crate::{Error, Result};

fn time_range(sel: &Selection) -> TimeRange {
    TimeRange {
        from_ms: sel.from_ms,
        until_ms: sel.until_ms,
    }
}

fn day_in_range(sel: &Selection, day: Option<i64>) -> bool {
    let Some(day) = day else { return true };
    sel.from_ms.is_none_or(|f| day >= day_of(f)) && sel.until_ms.is_none_or(|u| day <= day_of(u - 1))
}

fn deploy_selected(sel: &Selection, deploy: &str) -> bool {
    sel.deploys.is_empty() || sel.deploys.iter().any(|d| d == deploy)
}

fn endpoint_selected(sel: &Selection, endpoint: &str) -> bool {
    sel.endpoint.as_deref().is_none_or(|e| e == endpoint)
}

/// Whether a row of `deploy` and `endpoint` at `time_ms` is selected
/// (labels aside).
fn selected(sel: &Selection, time_ms: i64, deploy: &str, endpoint: &str) -> bool {
    time_range(sel).contains(time_ms) && deploy_selected(sel, deploy) && endpoint_selected(sel, endpoint)
}

/// Whether a row's labels (canonical JSON) hold every selected label.
struct LabelFilter<'a> {
    wanted: &'a [(String, String)],
    cache: HashMap<Arc<str>, bool>,
}

impl<'a> LabelFilter<'a> {
    fn new(wanted: &'a [(String, String)]) -> Self {
        LabelFilter {
            wanted,
            cache: HashMap::default(),
        }
    }

    fn keeps(&mut self, labels: &Arc<str>) -> bool {
        if self.wanted.is_empty() {
            return true;
        }
        if let Some(&keep) = self.cache.get(labels) {
            return keep;
        }
        let parsed: BTreeMap<String, String> = serde_json::from_str(labels).unwrap_or_default();
        let keep = self.wanted.iter().all(|(k, v)| parsed.get(k) == Some(v));
        self.cache.insert(labels.clone(), keep);
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

/// The files of one table that a selection reads.
fn files_of(svc: &ServiceState, table: Table, sel: &Selection) -> Vec<std::path::PathBuf> {
    svc.files
        .iter()
        .filter(|f| f.table == table && day_in_range(sel, f.day))
        .map(|f| f.path.clone())
        .collect()
}

impl DiskStore {
    fn service<'a>(state: &'a super::State, service: &str) -> Result<&'a ServiceState> {
        state.services.get(service).ok_or_else(|| Error::NotFound {
            what: "service",
            name: service.to_owned(),
        })
    }

    /// Calls `visit` with every sample row of the selection, labels
    /// filtered: the head's (and a flushing head's) rows and the files'
    /// rows, read under one look at the state so that no row counts twice.
    fn each_sample(&self, sel: &Selection, mut visit: impl FnMut(SampleRef<'_>, Weight)) -> Result<()> {
        let mut labels = LabelFilter::new(&sel.labels);
        let paths = {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            let svc = Self::service(&state, &sel.service)?;
            for head in std::iter::once(&svc.head).chain(svc.flushing.as_deref()) {
                for (key, weight) in &head.samples {
                    if selected(sel, key.time_ms, &key.deploy, &key.endpoint) && labels.keeps(&key.labels) {
                        visit(SampleRef::of(key), *weight);
                    }
                }
            }
            files_of(svc, Table::Samples, sel)
        };
        // No query needs the host; labels only to filter by them.
        let columns = SampleColumns {
            host: false,
            labels: !sel.labels.is_empty(),
        };
        let range = time_range(sel);
        let mut visit_group = |group: &SampleGroup| {
            // Each distinct deploy, endpoint and label set is judged once.
            let deploy_kept = kept(&group.deploy, |d| deploy_selected(sel, d));
            let endpoint_kept = kept(&group.endpoint, |e| endpoint_selected(sel, e));
            let labels_kept: Vec<bool> = group.labels.values.iter().map(|l| labels.keeps(l)).collect();
            for row in 0..group.len() {
                let time_ms = group.time_ms[row];
                let (Some(unit), true) = (group.unit[row], range.contains(time_ms)) else {
                    continue;
                };
                let (deploy, endpoint) = (group.deploy.codes[row], group.endpoint.codes[row]);
                let label_set = group.labels.codes[row];
                if deploy_kept[deploy as usize]
                    && endpoint_kept[endpoint as usize]
                    && labels_kept[label_set as usize]
                {
                    let row_ref = SampleRef {
                        time_ms,
                        deploy: &group.deploy.values[deploy as usize],
                        endpoint: &group.endpoint.values[endpoint as usize],
                        stack_id: group.stack_id[row],
                        unit,
                    };
                    visit(row_ref, group.weight(row));
                }
            }
        };
        let mut files = Vec::new();
        for path in paths {
            let (_, groups) = format::sample_groups(&path, range, sel.endpoint.as_deref())?;
            files.push((path, groups));
        }
        parallel::decode_then_visit(&files, columns, &mut visit_group)?;
        Ok(())
    }

    /// Calls `visit` with every request row of the selection (histograms
    /// left empty), like [`DiskStore::each_sample`].
    fn each_request(&self, sel: &Selection, mut visit: impl FnMut(&RequestKey, &RequestAgg)) -> Result<()> {
        let keep = |key: &RequestKey| selected(sel, key.time_ms, &key.deploy, &key.endpoint);
        let paths = {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            let svc = Self::service(&state, &sel.service)?;
            for head in std::iter::once(&svc.head).chain(svc.flushing.as_deref()) {
                for (key, agg) in &head.requests {
                    if keep(key) {
                        visit(key, agg);
                    }
                }
            }
            files_of(svc, Table::Requests, sel)
        };
        for path in paths {
            format::read_requests(&path, time_range(sel), false, |key, agg| {
                if keep(&key) {
                    visit(&key, &agg);
                }
            })?;
        }
        Ok(())
    }
}

/// Whether each distinct value of a string column passes `keep`.
fn kept(column: &format::Strings, keep: impl Fn(&str) -> bool) -> Vec<bool> {
    column.values.iter().map(|v| keep(v)).collect()
}

/// What queries read of a sample row.
#[derive(Debug, Clone, Copy)]
struct SampleRef<'a> {
    time_ms: i64,
    deploy: &'a Arc<str>,
    endpoint: &'a Arc<str>,
    stack_id: u64,
    unit: Unit,
}

impl<'a> SampleRef<'a> {
    fn of(key: &'a SampleKey) -> SampleRef<'a> {
        SampleRef {
            time_ms: key.time_ms,
            deploy: &key.deploy,
            endpoint: &key.endpoint,
            stack_id: key.stack_id,
            unit: key.unit,
        }
    }
}

/// Window start, deploy, endpoint (or `""`) and unit.
type WindowKey = (i64, Arc<str>, Arc<str>, Unit);

/// First and last time, rows' counts, weights and units of one deploy.
#[derive(Default)]
struct DeploySeen {
    first: Option<i64>,
    last: Option<i64>,
    samples: i64,
    weight: i64,
    requests: i64,
    units: BTreeSet<Unit>,
}

impl DeploySeen {
    fn saw(&mut self, time_ms: i64, unit: Unit) {
        self.first = Some(self.first.map_or(time_ms, |f| f.min(time_ms)));
        self.last = Some(self.last.map_or(time_ms, |l| l.max(time_ms)));
        self.units.insert(unit);
    }
}

/// The queries of [`Store`], answered by scanning the head and the files.
impl DiskStore {
    pub(super) fn scan_services(&self) -> Result<Vec<ServiceSummary>> {
        let names: Vec<String> = {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            state.services.keys().cloned().collect()
        };
        let mut out = Vec::new();
        for service in names {
            let deploys = self.scan_deploys(&service)?;
            out.push(ServiceSummary::from_deploys(service, &deploys));
        }
        Ok(out)
    }

    pub(super) fn scan_deploys(&self, service: &str) -> Result<Vec<DeploySummary>> {
        let _scan = self.scan_guard();
        let sel = Selection {
            service: service.to_owned(),
            ..Selection::default()
        };
        let mut seen: HashMap<Arc<str>, DeploySeen> = HashMap::default();
        self.each_sample(&sel, |key, weight| {
            let d = seen.entry(key.deploy.clone()).or_default();
            d.saw(key.time_ms, key.unit);
            d.samples += weight.count;
            d.weight += weight.weight;
        })?;
        self.each_request(&sel, |key, agg| {
            let d = seen.entry(key.deploy.clone()).or_default();
            d.saw(key.time_ms, key.unit);
            d.requests += agg.count;
        })?;
        let mut by_deploy: BTreeMap<String, DeploySummary> = seen
            .into_iter()
            .map(|(deploy, d)| {
                let summary = DeploySummary {
                    deploy: deploy.to_string(),
                    first_seen_ms: d.first.unwrap_or(i64::MAX),
                    last_seen_ms: d.last.unwrap_or(i64::MIN),
                    samples: d.samples,
                    weight: d.weight,
                    requests: d.requests,
                    units: d.units.into_iter().collect(),
                    event: None,
                    commits: 0,
                };
                (deploy.to_string(), summary)
            })
            .collect();
        let (events, commits) = {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            state
                .services
                .get(service)
                .map(|s| (s.deploys.clone(), s.commit_counts()))
                .unwrap_or_default()
        };
        for (deploy, count) in commits {
            by_deploy
                .entry(deploy.clone())
                .or_insert_with(|| DeploySummary::unseen(&deploy))
                .commits = count;
        }
        for event in events {
            let d = by_deploy
                .entry(event.deploy.clone())
                .or_insert_with(|| DeploySummary::unseen(&event.deploy));
            d.first_seen_ms = d.first_seen_ms.min(event.time_ms);
            d.last_seen_ms = d.last_seen_ms.max(event.time_ms);
            d.event = Some(event);
        }
        let mut out: Vec<DeploySummary> = by_deploy.into_values().collect();
        out.sort_by(|a, b| (a.first_seen_ms, &a.deploy).cmp(&(b.first_seen_ms, &b.deploy)));
        Ok(out)
    }

    pub(super) fn scan_has_deploy(&self, service: &str, deploy: &str) -> Result<bool> {
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
        let scanned: std::collections::HashSet<String> = self
            .scan_deploys(service)?
            .into_iter()
            .map(|d| d.deploy)
            .collect();
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

    pub(super) fn scan_stack_totals(&self, sel: &Selection) -> Result<StackTotals> {
        let _scan = self.scan_guard();
        let mut units = BTreeSet::new();
        let mut stacks: HashMap<u64, Weight> = HashMap::default();
        self.each_sample(sel, |key, weight| {
            units.insert(key.unit);
            stacks.entry(key.stack_id).or_default().add(weight);
        })?;
        let unit = one_unit(&units)?.unwrap_or(Unit::CpuNs);
        Ok(StackTotals { unit, stacks })
    }

    pub(super) fn scan_stack_series(
        &self,
        sel: &Selection,
        window_ms: i64,
        by_endpoint: bool,
    ) -> Result<StackSeries> {
        let _scan = self.scan_guard();
        let window_ms = window_ms.max(1);
        let every_endpoint: Arc<str> = "".into();
        let mut units = BTreeSet::new();
        let mut summed: HashMap<(WindowKey, u64), Weight> = HashMap::default();
        self.each_sample(sel, |key, weight| {
            units.insert(key.unit);
            let window = key.time_ms - key.time_ms.rem_euclid(window_ms);
            let endpoint = if by_endpoint {
                key.endpoint.clone()
            } else {
                every_endpoint.clone()
            };
            summed
                .entry(((window, key.deploy.clone(), endpoint, key.unit), key.stack_id))
                .or_default()
                .add(weight);
        })?;
        let unit = one_unit(&units)?.unwrap_or(Unit::CpuNs);
        let mut rows: Vec<StackSeriesRow> = summed
            .into_iter()
            .map(
                |(((window_ms, deploy, endpoint, _), stack_id), weight)| StackSeriesRow {
                    window_ms,
                    deploy,
                    endpoint,
                    stack_id,
                    weight,
                },
            )
            .collect();
        rows.sort_unstable_by(|a, b| {
            (a.window_ms, &a.deploy, &a.endpoint, a.stack_id).cmp(&(
                b.window_ms,
                &b.deploy,
                &b.endpoint,
                b.stack_id,
            ))
        });
        Ok(StackSeries { unit, rows })
    }

    pub(super) fn scan_requests(&self, sel: &Selection, window_ms: i64) -> Result<Vec<RequestWindow>> {
        let _scan = self.scan_guard();
        let window_ms = window_ms.max(1);
        // (window, deploy, endpoint, unit) → (requests, cost)
        let mut summed: BTreeMap<WindowKey, (i64, i64)> = BTreeMap::new();
        self.each_request(sel, |key, agg| {
            let window = key.time_ms - key.time_ms.rem_euclid(window_ms);
            let sums = summed
                .entry((window, key.deploy.clone(), key.endpoint.clone(), key.unit))
                .or_default();
            sums.0 += agg.count;
            sums.1 += agg.cost;
        })?;
        Ok(summed
            .into_iter()
            .map(
                |((window_ms, deploy, endpoint, unit), (count, cost))| RequestWindow {
                    window_ms,
                    deploy: deploy.to_string(),
                    endpoint: endpoint.to_string(),
                    count,
                    cost,
                    unit,
                },
            )
            .collect())
    }
}
