//! Detection inside the analyzer: runs the deploy comparison and the
//! change-point layer over the store whenever a deploy's data changed,
//! keeps the regressions found (with their state: open, acknowledged,
//! resolved when a later deploy brings the cost back) in a
//! [`RegressionBook`], and tells a [`Notifier`] about each new one.
//!
//! When several nodes share a book, only the node the book's lease names
//! runs detection ([`RegressionBook::lead`]), so each regression is found
//! and notified once; the others skip their runs until it stops beating.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

pub use crate::store::{FileBook, Node, RegressionBook, Regressions};

use crate::detect::costs::{CostTable, CostTableBuilder};
use crate::detect::regression::Links;
use crate::detect::suspects;
use crate::detect::{compare_deploys, drift, DetectSettings, Metric, Regression, State, Suppressed};
use crate::store::facts::DeployChanges;
use crate::store::{DeploySummary, Selection, Store};
use crate::{Error, Result};
use flameshift_client::routes;

/// Told about every new regression (webhooks live in the binary).
pub trait Notifier: Send + Sync + Debug {
    /// Called once per regression, when it is first found.
    fn notify(&self, regression: &Regression);
}

/// What one detection run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DetectRun {
    /// Deploy pairs compared (pairs whose data had not changed are skipped).
    pub comparisons: usize,
    /// Pairs skipped for lack of data (fewer windows than `min_windows`).
    pub waiting: usize,
    /// New regressions.
    pub new: usize,
    /// Regressions found again (numbers updated).
    pub updated: usize,
    /// Regressions a later deploy resolved.
    pub resolved: usize,
    /// Significant rises set aside by a filter, per compared pair.
    pub suppressed: Vec<SuppressedIn>,
    /// Set when this node did not run detection because another holds
    /// the lease: that node's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub led_by: Option<String>,
}

/// A suppressed rise and where.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SuppressedIn {
    /// The service.
    pub service: String,
    /// The deploy compared with the one before.
    pub deploy: String,
    /// What was set aside and why.
    #[serde(flatten)]
    pub suppressed: Suppressed,
}

/// What the comparison of a deploy with the one before could see.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sensitivities {
    /// The service.
    pub service: String,
    /// The deploy before.
    pub deploy_before: String,
    /// The deploy compared.
    pub deploy_after: String,
    /// Tests in the comparison's family.
    pub tests: usize,
    /// The q-value a regression must reach.
    pub significance: f64,
    /// Unit of `before`.
    pub unit: String,
    /// Per endpoint total and function self cost, costliest first.
    pub rows: Vec<crate::detect::sensitivity::Sensitivity>,
    /// Endpoints whose deploys could not be compared, and why (too few
    /// windows yet): an empty `rows` with these is "not yet", not "no
    /// regression".
    pub not_compared: Vec<crate::detect::costs::NotCompared>,
}

/// What the comparison of a service's newest deploy with the one before
/// stands on: the measure of each endpoint compared, and why the others
/// are not (yet).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairStatus {
    /// The deploy before.
    pub deploy_before: String,
    /// The newest deploy.
    pub deploy_after: String,
    /// The endpoints compared, each with its measure.
    pub compared: Vec<ComparedEndpoint>,
    /// The endpoints not compared, and why.
    pub not_compared: Vec<crate::detect::costs::NotCompared>,
}

/// An endpoint whose deploys can be compared, and on what.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComparedEndpoint {
    /// The endpoint (empty: the whole service, no endpoint label).
    pub endpoint: String,
    /// Per request, share or per second.
    pub measure: crate::detect::regression::Measure,
}

/// Which regressions to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only this service.
    pub service: Option<String>,
    /// Only in this state.
    pub state: Option<State>,
    /// Only found in this deploy.
    pub deploy: Option<String>,
}

/// The regressions of every service, and the runs that find them.
#[derive(Debug)]
pub struct Detector {
    book: Arc<dyn RegressionBook>,
    settings: DetectSettings,
    notifier: Option<Arc<dyn Notifier>>,
    /// (service, deploy) → the data both deploys of its pair had when it
    /// was last compared.
    evaluated: Mutex<HashMap<(String, String), [i64; 5]>>,
    /// One run at a time.
    running: Mutex<()>,
    /// This process, as the lease knows it, and when it last beat.
    node: Mutex<(Node, Option<Instant>)>,
    /// How long a node's heartbeat keeps its lease.
    lease_ttl: Duration,
}

impl Detector {
    /// A detector keeping its findings in `book`.
    pub fn new(
        book: Arc<dyn RegressionBook>,
        settings: DetectSettings,
        notifier: Option<Arc<dyn Notifier>>,
    ) -> Detector {
        Detector {
            book,
            settings,
            notifier,
            evaluated: Mutex::new(HashMap::new()),
            running: Mutex::new(()),
            node: Mutex::new((Node::new(crate::model::now_ms()), None)),
            lease_ttl: Duration::from_secs(180),
        }
    }

    /// Sets how long the lease outlives this node's last run (a few
    /// detection intervals: a node that missed that many is taken for dead).
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Detector {
        self.lease_ttl = ttl;
        self
    }

    /// This process, as the lease knows it.
    pub fn node(&self) -> Node {
        self.node.lock().unwrap_or_else(|e| e.into_inner()).0.clone()
    }

    /// The settings in use.
    pub fn settings(&self) -> &DetectSettings {
        &self.settings
    }

    /// How small a rise the comparison of `deploy` with the deploy before it
    /// could have shown, per endpoint total and function self cost
    /// (docs/detection.md, "What a comparison could see"), computed now
    /// from the store: the same comparison detection runs, so any node can
    /// answer. `None` for the service's first deploy.
    pub fn sensitivity(
        &self,
        store: &dyn Store,
        service: &str,
        deploy: &str,
    ) -> Result<Option<Sensitivities>> {
        let deploys = store.deploys(service)?;
        let Some(at) = deploys.iter().position(|d| d.deploy == deploy) else {
            return Err(Error::NotFound {
                what: "deploy",
                name: format!("{deploy} (of {service})"),
            });
        };
        let Some(before) = at.checked_sub(1).map(|i| &deploys[i]) else {
            return Ok(None);
        };
        let table = cost_table(store, service, [&before.deploy, deploy], self.settings.window_ms)?;
        let comparison = compare_deploys(&table, 0, 1, &self.settings, crate::model::now_ms());
        Ok(Some(Sensitivities {
            service: service.to_owned(),
            deploy_before: before.deploy.clone(),
            deploy_after: deploy.to_owned(),
            tests: comparison.tests,
            significance: self.settings.max_q,
            unit: table.unit.as_str().to_owned(),
            rows: comparison.sensitivity,
            not_compared: comparison.not_compared,
        }))
    }

    /// What the comparison of `service`'s newest deploy with the one
    /// before can stand on, computed now from the store (any node can
    /// answer); `None` with fewer than two deploys.
    pub fn status(&self, store: &dyn Store, service: &str) -> Result<Option<PairStatus>> {
        let deploys = store.deploys(service)?;
        let [.., before, after] = &deploys[..] else {
            return Ok(None);
        };
        let table = cost_table(
            store,
            service,
            [&before.deploy, &after.deploy],
            self.settings.window_ms,
        )?;
        let (mut compared, mut not_compared) = (Vec::new(), Vec::new());
        for e in &table.endpoints {
            match e.basis(0, 1, &self.settings) {
                Ok(basis) => compared.push(ComparedEndpoint {
                    endpoint: e.endpoint.to_string(),
                    measure: basis.measure,
                }),
                Err(why) => not_compared.push(why),
            }
        }
        Ok(Some(PairStatus {
            deploy_before: before.deploy.clone(),
            deploy_after: after.deploy.clone(),
            compared,
            not_compared,
        }))
    }

    /// The regressions `filter` selects, newest first.
    pub fn list(&self, filter: &Filter) -> Result<Vec<Regression>> {
        let mut out: Vec<Regression> = self
            .book
            .all()?
            .into_values()
            .filter(|r| filter.service.as_ref().is_none_or(|s| *s == r.service))
            .filter(|r| filter.state.is_none_or(|s| s == r.state))
            .filter(|r| filter.deploy.as_ref().is_none_or(|d| *d == r.deploy_after))
            .collect();
        out.sort_by(|a, b| {
            b.first_seen_ms
                .cmp(&a.first_seen_ms)
                .then_with(|| b.change.mean.total_cmp(&a.change.mean))
        });
        Ok(out)
    }

    /// Regression `id`.
    pub fn get(&self, id: &str) -> Result<Regression> {
        self.book.all()?.remove(id).ok_or_else(|| Error::NotFound {
            what: "regression",
            name: id.to_owned(),
        })
    }

    /// Sets the state of regression `id` (acknowledging it, or opening it
    /// again) and returns it.
    pub fn set_state(&self, id: &str, state: State) -> Result<Regression> {
        let mut regression = self.get(id)?;
        regression.state = state;
        if state != State::Resolved {
            regression.resolved_by = None;
        }
        self.book.put(std::slice::from_ref(&regression))?;
        Ok(regression)
    }

    /// Compares every deploy whose data changed since the last run with
    /// the deploy before it (all services, or `only`), at time `now_ms`.
    pub fn run(&self, store: &dyn Store, only: Option<&str>, now_ms: i64) -> Result<DetectRun> {
        match only {
            Some(service) => self.run_on(store, || Ok(vec![service.to_owned()]), now_ms),
            None => self.run_where(store, |_| true, now_ms),
        }
    }

    /// [`Detector::run`] on the services `covers` accepts (those a
    /// token may act on).
    pub fn run_where(
        &self,
        store: &dyn Store,
        covers: impl Fn(&str) -> bool,
        now_ms: i64,
    ) -> Result<DetectRun> {
        let services = || {
            Ok(store
                .services()?
                .into_iter()
                .map(|s| s.service)
                .filter(|s| covers(s))
                .collect())
        };
        self.run_on(store, services, now_ms)
    }

    fn run_on(
        &self,
        store: &dyn Store,
        services: impl FnOnce() -> Result<Vec<String>>,
        now_ms: i64,
    ) -> Result<DetectRun> {
        let _one = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let mut run = DetectRun::default();
        if !self.leads(&mut run)? {
            return Ok(run);
        }
        let services = services()?;
        for service in services {
            // Asked before each service: a long run keeps beating, and
            // stops if another node took over meanwhile.
            if !self.leads(&mut run)? {
                return Ok(run);
            }
            let deploys = store.deploys(&service)?;
            for pair in deploys.windows(2) {
                self.compare_pair(store, &service, &deploys, pair, now_ms, &mut run)?;
            }
        }
        Ok(run)
    }

    /// Beats the lease; false (with `run.led_by` set) when another node holds it.
    fn leads(&self, run: &mut DetectRun) -> Result<bool> {
        let node = {
            let mut node = self.node.lock().unwrap_or_else(|e| e.into_inner());
            // Silent for longer than the lease (paused, cut off): others
            // may have taken over; come back as the newest candidate
            // rather than displace them.
            if node.1.is_some_and(|at| at.elapsed() > self.lease_ttl) {
                node.0.since_ms = crate::model::now_ms();
            }
            node.0.clone()
        };
        let leader = self.book.lead(&node, self.lease_ttl)?;
        self.node.lock().unwrap_or_else(|e| e.into_inner()).1 = Some(Instant::now());
        if leader == node.id {
            return Ok(true);
        }
        tracing::debug!(%leader, "another node holds the detection lease");
        run.led_by = Some(leader);
        Ok(false)
    }

    fn compare_pair(
        &self,
        store: &dyn Store,
        service: &str,
        deploys: &[DeploySummary],
        pair: &[DeploySummary],
        now_ms: i64,
        run: &mut DetectRun,
    ) -> Result<()> {
        let (before, after) = (&pair[0], &pair[1]);
        let key = (service.to_owned(), after.deploy.clone());
        // The commits the deploy event listed name suspects: a list that
        // arrives after the data is a reason to look again.
        let fingerprint = [
            before.samples,
            before.requests,
            after.samples,
            after.requests,
            after.commits as i64,
        ];
        if self.evaluated.lock().unwrap_or_else(|e| e.into_inner()).get(&key) == Some(&fingerprint) {
            return Ok(());
        }
        let changes = match after.commits {
            0 => DeployChanges::default(),
            _ => store.deploy_changes(service, &after.deploy)?,
        };
        let table = cost_table(
            store,
            service,
            [&before.deploy, &after.deploy],
            self.settings.window_ms,
        )?;
        let comparison = compare_deploys(&table, 0, 1, &self.settings, now_ms);
        if comparison.endpoints_compared == 0 {
            run.waiting += 1;
            return Ok(());
        }
        run.comparisons += 1;
        let skip: HashSet<_> = comparison
            .regressions
            .iter()
            .map(|r| (r.endpoint.clone(), r.function.clone(), r.metric))
            .collect();
        let drifts = drift::drifts(&table, 1, &self.settings, now_ms, &skip);
        run.suppressed
            .extend(comparison.suppressed.iter().map(|s| SuppressedIn {
                service: service.to_owned(),
                deploy: after.deploy.clone(),
                suppressed: s.clone(),
            }));
        let order: HashMap<&str, usize> = deploys
            .iter()
            .enumerate()
            .map(|(i, d)| (d.deploy.as_str(), i))
            .collect();
        let after_index = order.get(after.deploy.as_str()).copied().unwrap_or(usize::MAX);
        let mut fresh = Vec::new();
        let mut book = self.book.all()?;
        let mut changed: Vec<String> = Vec::new();
        let found: Vec<Regression> = comparison
            .regressions
            .into_iter()
            .chain(drifts)
            .map(with_links)
            .collect();
        let deploy_wide = deploy_suspects(&found, &changes);
        for found in found
            .into_iter()
            .map(|r| with_suspects(r, &changes, &deploy_wide))
        {
            changed.push(found.id.clone());
            match book.get_mut(&found.id) {
                Some(known) => {
                    let (state, first_seen, resolved_by) =
                        (known.state, known.first_seen_ms, known.resolved_by.take());
                    *known = found;
                    known.state = state;
                    known.first_seen_ms = first_seen;
                    known.resolved_by = resolved_by;
                    run.updated += 1;
                }
                None => {
                    fresh.push(found.clone());
                    book.insert(found.id.clone(), found);
                    run.new += 1;
                }
            }
        }
        let resolved = resolve(&mut book, &table, service, &order, after_index, &self.settings);
        run.resolved += resolved.len();
        changed.extend(resolved);
        let changed: Vec<Regression> = changed.iter().filter_map(|id| book.get(id).cloned()).collect();
        self.book.put(&changed)?;
        self.evaluated
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, fingerprint);
        if let Some(notifier) = &self.notifier {
            for regression in &fresh {
                notifier.notify(regression);
            }
        }
        for regression in &fresh {
            tracing::warn!(id = %regression.id, "regression: {}", regression.summary());
        }
        Ok(())
    }
}

/// `regression` with its links: the differential flame graph of its
/// endpoint between its deploys, and its series.
fn with_links(mut regression: Regression) -> Regression {
    let r = &regression;
    regression.links = Links {
        diff: routes::diff_link(&r.service, &r.endpoint, &r.deploy_before, &r.deploy_after),
        series: routes::series_link(
            &r.service,
            &r.endpoint,
            r.function.as_deref(),
            r.metric == Metric::SelfCost,
        ),
    };
    regression
}

/// The function of a regression and its callers, for ranking suspects.
fn regressed(regression: &Regression) -> Option<suspects::Regressed> {
    Some(suspects::Regressed {
        function: regression.function.clone()?,
        callers: regression
            .call_path
            .as_ref()
            .map(|p| p.callers.clone())
            .unwrap_or_default(),
    })
}

/// The deploy's commits ranked against all its regressions at once (as
/// the gate ranks them): each SHA's place.
fn deploy_suspects(found: &[Regression], changes: &DeployChanges) -> HashMap<String, usize> {
    if changes.commits.is_empty() {
        return HashMap::new();
    }
    let all: Vec<suspects::Regressed> = found.iter().filter_map(regressed).collect();
    suspects::rank(&all, &changes.sources, &changes.commits)
        .into_iter()
        .enumerate()
        .map(|(place, s)| (s.sha, place))
        .collect()
}

/// `regression` with the commits of its deploy that may have caused it,
/// ranked (docs/detection.md, "Suspect commits"): by how they touch the
/// function's source span and its callers'; among equally strong ties,
/// the commit that ranks higher against all the deploy's regressions
/// first (a caller's inclusive rise and its callee's own rise share
/// their cause). A rise of an endpoint's total names no function, and
/// so no suspect.
fn with_suspects(
    mut regression: Regression,
    changes: &DeployChanges,
    deploy_wide: &HashMap<String, usize>,
) -> Regression {
    if changes.commits.is_empty() {
        return regression;
    }
    let Some(own) = regressed(&regression) else {
        return regression;
    };
    let mut ranked = suspects::rank(&[own], &changes.sources, &changes.commits);
    ranked.sort_by_key(|s| (s.tier, deploy_wide.get(&s.sha).copied().unwrap_or(usize::MAX)));
    regression.suspects = ranked;
    regression
}

/// Marks open regressions of `service` found in deploys before
/// `after_index` resolved when the new deploy (index 1 of `table`) brought
/// their cost back at least halfway; returns their ids.
fn resolve(
    book: &mut Regressions,
    table: &CostTable,
    service: &str,
    order: &HashMap<&str, usize>,
    after_index: usize,
    settings: &DetectSettings,
) -> Vec<String> {
    let mut resolved = Vec::new();
    for r in book.values_mut() {
        let earlier = order
            .get(r.deploy_after.as_str())
            .is_some_and(|&i| i < after_index);
        if r.service != service || r.state == State::Resolved || !earlier {
            continue;
        }
        let Some(endpoint) = table.endpoints.iter().find(|e| *e.endpoint == *r.endpoint) else {
            continue;
        };
        let function = match &r.function {
            Some(name) => match endpoint.function(name) {
                Some(f) => Some(f),
                None => continue,
            },
            None => None,
        };
        let Some(level) = endpoint.level(function, r.metric, 1, r.measure, settings) else {
            continue;
        };
        let rise = r.after.mean - r.before.mean;
        if rise > 0.0 && level - r.before.mean < 0.5 * rise {
            r.state = State::Resolved;
            r.resolved_by = Some(table.deploys[1].to_string());
            resolved.push(r.id.clone());
        }
    }
    resolved
}

/// The cost table of two deploys of `service` from the store.
pub fn cost_table(store: &dyn Store, service: &str, deploys: [&str; 2], window_ms: i64) -> Result<CostTable> {
    let selection = Selection {
        service: service.to_owned(),
        deploys: deploys.iter().map(|d| (*d).to_owned()).collect(),
        ..Selection::default()
    };
    let stacks = store.stack_series(&selection, window_ms, true)?;
    let names: Vec<Arc<str>> = deploys.iter().map(|d| Arc::from(*d)).collect();
    let mut builder = CostTableBuilder::new(service, stacks.unit, &names);
    let frames = store.stacks(service, &stacks.ids())?;
    for row in &stacks.rows {
        let stack = &frames[&row.stack_id];
        builder.add_stack(row.window_ms, &row.deploy, &row.endpoint, stack, row.weight);
    }
    for r in store.requests(&selection, window_ms)? {
        let endpoint = Arc::from(r.endpoint.as_str());
        builder.add_requests(r.window_ms, &r.deploy, &endpoint, r.count);
        if r.unit == stacks.unit && r.cost > 0 {
            builder.add_measured(r.window_ms, &r.deploy, &endpoint, r.cost);
        }
    }
    Ok(builder.finish())
}
