//! A fleet simulator with known truth, for the detection benchmarks and
//! tests: a service of ~2,000 functions behind a handful of endpoints with
//! a traffic mix, sampled by an agent on every host (Poisson sampling
//! noise, host-to-host speed differences, per-window load noise), through
//! a sequence of deploys. Some deploys inject regressions of a chosen size
//! into the self cost of a hot function; others carry decoys that must not
//! be reported: a cost-neutral refactor (cost moves into a new callee), a
//! rename, a traffic-mix shift, a transient spike, or nothing at all.
//!
//! Every window of every host is a [`HostWindow`], which becomes the
//! agent's two uploads — a pprof profile with `endpoint` labels and a
//! request-statistics body — so the same data go through the real ingest
//! path; [`Fleet::cost_table`] feeds the detection core directly for
//! large accuracy runs. Everything is determined by the seed.
//!
//! Length: over 600 lines with its tests: one seeded generator: its plan, call trees, traffic and sampling share state and the order of random draws, which a split would make fragile; tests are the last 90 lines.

use std::collections::BTreeMap;
use std::sync::Arc;

use flameshift_profile::{LabelSetId, Period, Profile, SampleType};

use flameshift_profile::wire::{EndpointRequests, RequestsBody, Unit};

use crate::costs::{CostTable, CostTableBuilder, Weight};
pub use crate::rng::Rng;

/// The shape and noise of the simulated fleet.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetConfig {
    /// Seed of everything.
    pub seed: u64,
    /// The service name.
    pub service: String,
    /// Functions in the call tree (shared library functions included).
    pub functions: usize,
    /// Endpoints.
    pub endpoints: usize,
    /// Hosts.
    pub hosts: usize,
    /// Deploys, the first a baseline.
    pub deploys: usize,
    /// Windows each deploy runs.
    pub windows_per_deploy: usize,
    /// Width of a window (each host uploads once per window).
    pub window_ms: i64,
    /// Requests per second over the whole fleet.
    pub requests_per_second: f64,
    /// Sampling period in CPU nanoseconds (10 ms: 100 Hz).
    pub period_ns: i64,
    /// Spread of host speed (log-normal sigma).
    pub host_spread: f64,
    /// Per-host, per-window load noise (relative standard deviation).
    pub window_noise: f64,
    /// Chance a deploy (after the first) carries a regression.
    pub regression_chance: f64,
    /// Sizes a regression is drawn from (relative rise of self cost).
    pub regression_sizes: Vec<f64>,
    /// Chance of each decoy kind in a deploy.
    pub decoy_chance: f64,
    /// Start of the first window, ms since the Unix epoch.
    pub start_ms: i64,
}

impl Default for FleetConfig {
    /// 2,000 functions, 8 endpoints, 10 hosts serving 20,000 requests/s
    /// (about 200 busy cores, ~1 M samples a minute),
    /// 30 one-minute windows per deploy, 100 Hz sampling; regressions in
    /// 40% of deploys of 1–30%; each decoy kind in 25% of deploys.
    fn default() -> Self {
        FleetConfig {
            seed: 1,
            service: "fleet".to_owned(),
            functions: 2_000,
            endpoints: 8,
            hosts: 10,
            deploys: 20,
            windows_per_deploy: 30,
            window_ms: 60_000,
            requests_per_second: 20_000.0,
            period_ns: 10_000_000,
            host_spread: 0.1,
            window_noise: 0.02,
            regression_chance: 0.4,
            regression_sizes: vec![0.01, 0.02, 0.03, 0.05, 0.10, 0.20, 0.30],
            decoy_chance: 0.25,
            start_ms: 1_764_000_000_000,
        }
    }
}

/// A regression the simulator injected.
#[derive(Debug, Clone, PartialEq)]
pub struct Injected {
    /// Index of the deploy that introduced it.
    pub deploy: usize,
    /// The function (its name in that deploy).
    pub function: String,
    /// Relative rise of its self cost.
    pub size: f64,
}

/// A change that is not a regression.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoy {
    /// Part of `from`'s self cost moved into a new callee `to`.
    Refactor {
        /// The function that lost cost.
        from: String,
        /// The new function.
        to: String,
    },
    /// `from` is called `to` from now on.
    Rename {
        /// The old name.
        from: String,
        /// The new name.
        to: String,
    },
    /// An endpoint's share of the traffic changed.
    TrafficShift {
        /// The endpoint.
        endpoint: String,
        /// Its traffic relative to before.
        factor: f64,
    },
    /// A function was expensive for a few windows, then was not.
    Spike {
        /// The function.
        function: String,
        /// How many windows.
        windows: usize,
    },
}

/// What changed in one deploy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeployPlan {
    /// Its name (`d000`, `d001`, …).
    pub name: String,
    /// Regressions it introduced.
    pub regressions: Vec<Injected>,
    /// Decoys it carried.
    pub decoys: Vec<Decoy>,
}

/// One host's data for one window: what its agent uploads.
#[derive(Debug, Clone, PartialEq)]
pub struct HostWindow {
    /// The deploy.
    pub deploy: Arc<str>,
    /// The host.
    pub host: String,
    /// Start of the window, ms.
    pub window_ms: i64,
    /// Width of the window, ms.
    pub duration_ms: i64,
    /// Requests per endpoint.
    pub requests: Vec<(Arc<str>, i64)>,
    /// Samples: endpoint index, frames root first, sample count.
    pub stacks: Vec<(usize, Vec<Arc<str>>, i64)>,
    /// Sampling period, CPU ns.
    pub period_ns: i64,
}

impl HostWindow {
    /// The pprof profile the agent would upload (`samples/count` and
    /// `cpu/nanoseconds`, an `endpoint` label per sample).
    pub fn profile(&self) -> Profile {
        let ty = SampleType::new("cpu", "nanoseconds");
        let mut profile = Profile::new(vec![SampleType::new("samples", "count"), ty.clone()]);
        profile.default_sample_type = Some(1);
        profile.period = Some(Period {
            kind: ty,
            value: self.period_ns,
        });
        profile.time_nanos = self.window_ms * 1_000_000;
        profile.duration_nanos = self.duration_ms * 1_000_000;
        let mut sets: Vec<Option<LabelSetId>> = vec![None; self.requests.len()];
        for (endpoint, frames, count) in &self.stacks {
            let set = match sets[*endpoint] {
                Some(set) => set,
                None => {
                    let label = profile.str_label("endpoint", &self.requests[*endpoint].0);
                    let set = profile.intern_labels(vec![label]);
                    sets[*endpoint] = Some(set);
                    set
                }
            };
            let stack = profile.stack_from_names(frames.iter().map(|f| &**f));
            profile.push_sample(stack, set, &[*count, count * self.period_ns]);
        }
        profile
    }

    /// The request statistics the agent would upload.
    pub fn requests_body(&self, service: &str) -> RequestsBody {
        RequestsBody {
            service: service.to_owned(),
            deploy: self.deploy.to_string(),
            host: Some(self.host.clone()),
            unit: Unit::CpuNs,
            start_ms: self.window_ms,
            duration_ms: self.duration_ms,
            endpoints: self
                .requests
                .iter()
                .map(|(endpoint, count)| EndpointRequests {
                    endpoint: endpoint.to_string(),
                    count: *count,
                    cost_sum: 0,
                    histogram: Vec::new(),
                })
                .collect(),
        }
    }
}

/// A node of an endpoint's call tree.
#[derive(Debug, Clone)]
struct Node {
    /// Function ids root first, ending with this node's function.
    path: Vec<usize>,
    /// Self cost per request, CPU ns.
    self_ns: f64,
}

#[derive(Debug, Clone)]
struct Endpoint {
    name: Arc<str>,
    weight: f64,
    nodes: Vec<Node>,
}

/// The state of the code in one deploy.
#[derive(Debug, Clone, Default)]
struct CodeState {
    /// Function id → multiplier of its self cost (regressions).
    multiplier: BTreeMap<usize, f64>,
    /// Function id → (new callee id, fraction of self cost moved there).
    split: BTreeMap<usize, (usize, f64)>,
    /// Function id → name, when renamed.
    renamed: BTreeMap<usize, Arc<str>>,
    /// Endpoint → traffic factor.
    traffic: BTreeMap<usize, f64>,
    /// Function id → (first window, windows, factor) of a spike.
    spike: Option<(usize, usize, usize, f64)>,
}

/// A simulated fleet: its call tree, its deploys and what they changed.
#[derive(Debug, Clone)]
pub struct Fleet {
    config: FleetConfig,
    names: Vec<Arc<str>>,
    endpoints: Vec<Endpoint>,
    host_speed: Vec<f64>,
    states: Vec<CodeState>,
    plans: Vec<DeployPlan>,
}

const MODULES: [&str; 12] = [
    "db", "cache", "auth", "render", "json", "rank", "feed", "orders", "search", "http", "metrics", "util",
];
const VERBS: [&str; 12] = [
    "load", "parse", "encode", "score", "fetch", "build", "validate", "merge", "hash", "format", "sort",
    "filter",
];
const ROUTES: [&str; 8] = [
    "GET /feed",
    "GET /users/{id}",
    "POST /orders",
    "GET /search",
    "GET /cart",
    "POST /login",
    "GET /product/{id}",
    "GET /health",
];

impl Fleet {
    /// Builds the call tree and plans every deploy.
    pub fn new(config: FleetConfig) -> Fleet {
        let mut rng = Rng::new(config.seed);
        let mut names: Vec<Arc<str>> = vec!["main".into(), "http::serve".into()];
        let libraries = (config.functions / 12).max(4);
        let lib_start = names.len();
        for i in 0..libraries {
            names.push(format!("lib::{}::{}_{i}", MODULES[i % 12], VERBS[(i / 12) % 12]).into());
        }
        let endpoint_count = config.endpoints.clamp(1, ROUTES.len());
        let per_endpoint = (config.functions.saturating_sub(names.len()) / endpoint_count).max(3);
        let mut endpoints = Vec::new();
        for (e, route) in ROUTES.iter().enumerate().take(endpoint_count) {
            let handler = names.len();
            names.push(
                format!(
                    "handlers::{}",
                    route.replace(['/', ' ', '{', '}'], "_").to_lowercase()
                )
                .into(),
            );
            let mut nodes = vec![Node {
                path: vec![0, 1, handler],
                self_ns: 0.0,
            }];
            for i in 1..per_endpoint {
                let id = names.len();
                names.push(format!("{}::{}_{e}_{i}", MODULES[rng.below(12)], VERBS[rng.below(12)]).into());
                let parent = &nodes[i.saturating_sub(1 + rng.below(12)).min(nodes.len() - 1)];
                let mut path = parent.path.clone();
                if path.len() > 24 {
                    path.truncate(3);
                }
                path.push(id);
                nodes.push(Node { path, self_ns: 0.0 });
            }
            // Library calls from some nodes.
            for i in 0..per_endpoint / 4 {
                let caller = nodes[(i * 7 + 1) % nodes.len()].path.clone();
                let mut path = caller;
                path.push(lib_start + rng.below(libraries));
                nodes.push(Node { path, self_ns: 0.0 });
            }
            // Heavy-tailed self costs, scaled to 2–20 ms per request.
            let mut total = 0.0;
            for node in nodes.iter_mut().skip(1) {
                node.self_ns = if rng.uniform() < 0.3 {
                    0.0
                } else {
                    (1.8 * rng.normal()).exp()
                };
                total += node.self_ns;
            }
            let target = 2e6 + rng.uniform() * 18e6;
            for node in nodes.iter_mut() {
                node.self_ns *= target / total.max(f64::MIN_POSITIVE);
            }
            endpoints.push(Endpoint {
                name: (*route).into(),
                weight: 1.0 / (e + 1) as f64,
                nodes,
            });
        }
        let host_speed = (0..config.hosts.max(1))
            .map(|_| (config.host_spread * rng.normal()).exp())
            .collect();
        let mut fleet = Fleet {
            config,
            names,
            endpoints,
            host_speed,
            states: Vec::new(),
            plans: Vec::new(),
        };
        fleet.plan(&mut rng);
        fleet
    }

    /// Functions that carry half the fleet's CPU, hottest first: where
    /// regressions and decoys go.
    fn hot_functions(&self) -> Vec<usize> {
        let mut cost: BTreeMap<usize, f64> = BTreeMap::new();
        let total_weight: f64 = self.endpoints.iter().map(|e| e.weight).sum();
        for e in &self.endpoints {
            for n in &e.nodes {
                if let Some(&f) = n.path.last() {
                    *cost.entry(f).or_default() += n.self_ns * e.weight / total_weight;
                }
            }
        }
        let total: f64 = cost.values().sum();
        let mut ranked: Vec<(usize, f64)> = cost.into_iter().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut covered = 0.0;
        ranked
            .into_iter()
            .take_while(|&(_, c)| {
                let keep = covered < 0.5 * total;
                covered += c;
                keep
            })
            .map(|(f, _)| f)
            .collect()
    }

    fn plan(&mut self, rng: &mut Rng) {
        let hot = self.hot_functions();
        let mut state = CodeState::default();
        for d in 0..self.config.deploys.max(1) {
            let mut plan = DeployPlan {
                name: deploy_name(d),
                ..DeployPlan::default()
            };
            state.spike = None;
            if d > 0 {
                // A refactored function's cost is partly in its new
                // callee; regressions go to functions that were not.
                let mut regressed: Vec<usize> = Vec::new();
                let targets: Vec<usize> = hot
                    .iter()
                    .copied()
                    .filter(|f| !state.split.contains_key(f))
                    .collect();
                if rng.uniform() < self.config.regression_chance && !targets.is_empty() {
                    let f = targets[rng.below(targets.len())];
                    let sizes = &self.config.regression_sizes;
                    let size = sizes[rng.below(sizes.len())];
                    *state.multiplier.entry(f).or_insert(1.0) *= 1.0 + size;
                    regressed.push(f);
                    plan.regressions.push(Injected {
                        deploy: d,
                        function: self.name_in(&state, f).to_string(),
                        size,
                    });
                }
                let decoy_target = |rng: &mut Rng, state: &CodeState| {
                    let candidates: Vec<usize> = hot
                        .iter()
                        .copied()
                        .filter(|f| !regressed.contains(f) && !state.split.contains_key(f))
                        .collect();
                    (!candidates.is_empty()).then(|| candidates[rng.below(candidates.len())])
                };
                if rng.uniform() < self.config.decoy_chance {
                    if let Some(f) = decoy_target(rng, &state) {
                        let to = self.names.len();
                        let name: Arc<str> = format!("{}::inner", self.name_in(&state, f)).into();
                        self.names.push(name.clone());
                        state.split.insert(f, (to, 0.3 + 0.7 * rng.uniform()));
                        plan.decoys.push(Decoy::Refactor {
                            from: self.name_in(&state, f).to_string(),
                            to: name.to_string(),
                        });
                    }
                }
                if rng.uniform() < self.config.decoy_chance {
                    if let Some(f) = decoy_target(rng, &state) {
                        let from = self.name_in(&state, f).to_string();
                        let to: Arc<str> = format!("{from}_v{d}").into();
                        state.renamed.insert(f, to.clone());
                        plan.decoys.push(Decoy::Rename {
                            from,
                            to: to.to_string(),
                        });
                    }
                }
                if rng.uniform() < self.config.decoy_chance {
                    let e = rng.below(self.endpoints.len());
                    let factor = if rng.uniform() < 0.5 { 0.5 } else { 2.0 };
                    *state.traffic.entry(e).or_insert(1.0) *= factor;
                    plan.decoys.push(Decoy::TrafficShift {
                        endpoint: self.endpoints[e].name.to_string(),
                        factor,
                    });
                }
                if rng.uniform() < self.config.decoy_chance {
                    if let Some(f) = decoy_target(rng, &state) {
                        let windows = 2 + rng.below(3);
                        let room = self.config.windows_per_deploy.saturating_sub(windows + 2).max(1);
                        let start = 1 + rng.below(room);
                        state.spike = Some((f, start, windows, 1.5 + 1.5 * rng.uniform()));
                        plan.decoys.push(Decoy::Spike {
                            function: self.name_in(&state, f).to_string(),
                            windows,
                        });
                    }
                }
            }
            self.states.push(state.clone());
            self.plans.push(plan);
        }
    }

    fn name_in<'a>(&'a self, state: &'a CodeState, f: usize) -> &'a Arc<str> {
        state.renamed.get(&f).unwrap_or(&self.names[f])
    }

    /// The configuration.
    pub fn config(&self) -> &FleetConfig {
        &self.config
    }

    /// What each deploy changed.
    pub fn plans(&self) -> &[DeployPlan] {
        &self.plans
    }

    /// Every injected regression.
    pub fn truth(&self) -> Vec<Injected> {
        self.plans.iter().flat_map(|p| p.regressions.clone()).collect()
    }

    /// Distinct function names (before renames and refactors).
    pub fn function_count(&self) -> usize {
        self.names.len()
    }

    /// Start of window `w` of deploy `d`.
    pub fn window_start(&self, d: usize, w: usize) -> i64 {
        self.config.start_ms + ((d * self.config.windows_per_deploy + w) as i64) * self.config.window_ms
    }

    /// The data of host `h` in window `w` of deploy `d`.
    pub fn host_window(&self, d: usize, w: usize, h: usize) -> HostWindow {
        let state = &self.states[d];
        let names: Vec<Arc<str>> = (0..self.names.len())
            .map(|f| self.name_in(state, f).clone())
            .collect();
        let mut out = HostWindow {
            deploy: deploy_name(d).into(),
            host: format!("host-{h:02}"),
            window_ms: self.window_start(d, w),
            duration_ms: self.config.window_ms,
            requests: self.endpoints.iter().map(|e| (e.name.clone(), 0)).collect(),
            stacks: Vec::new(),
            period_ns: self.config.period_ns,
        };
        self.generate(d, w, Some(h), |event| match event {
            Event::Requests(e, count) => out.requests[e].1 = count,
            Event::Stack(e, path, extra, samples) => {
                let mut frames: Vec<Arc<str>> = path.iter().map(|&f| names[f].clone()).collect();
                frames.extend(extra.map(|f| names[f].clone()));
                out.stacks.push((e, frames, samples));
            }
        });
        out
    }

    /// Draws window `w` of deploy `d` for one host, or for the whole fleet
    /// at once (a sum of Poisson draws is one Poisson draw of the summed
    /// means, so this is the same distribution, ten times faster).
    fn generate(&self, d: usize, w: usize, host: Option<usize>, mut emit: impl FnMut(Event<'_>)) {
        let c = &self.config;
        let hosts: Vec<usize> = match host {
            Some(h) => vec![h % self.host_speed.len()],
            None => (0..self.host_speed.len()).collect(),
        };
        // Every (deploy, window, host) gets its own stream: the parts are
        // hashed in, not XORed (XORed seeds make related streams).
        let marker = host.map_or(u64::MAX, |h| h as u64);
        let mut rng = Rng::new(
            [d as u64, w as u64, marker]
                .iter()
                .fold(c.seed, |acc, &part| Rng::new(acc ^ part).next_u64()),
        );
        let state = &self.states[d];
        let weights: Vec<f64> = self
            .endpoints
            .iter()
            .enumerate()
            .map(|(e, ep)| ep.weight * state.traffic.get(&e).copied().unwrap_or(1.0))
            .collect();
        let total_weight: f64 = weights.iter().sum();
        let per_host = c.requests_per_second * (c.window_ms as f64 / 1000.0) / self.host_speed.len() as f64;
        let loads: Vec<f64> = hosts
            .iter()
            .map(|&h| (1.0 + c.window_noise * rng.normal()).max(0.5) * self.host_speed[h])
            .collect();
        for (e, endpoint) in self.endpoints.iter().enumerate() {
            // Requests, and requests weighted by each host's load.
            let (mut requests, mut weighted) = (0i64, 0.0);
            for load in &loads {
                let r = rng.poisson(per_host * weights[e] / total_weight);
                requests += r;
                weighted += r as f64 * load;
            }
            emit(Event::Requests(e, requests));
            let mut draw = |rng: &mut Rng, path: &[usize], extra: Option<usize>, cost: f64| {
                let samples = rng.poisson(weighted * cost / c.period_ns as f64);
                if samples > 0 {
                    emit(Event::Stack(e, path, extra, samples));
                }
            };
            for node in &endpoint.nodes {
                let Some(&f) = node.path.last() else { continue };
                let mut cost = node.self_ns * state.multiplier.get(&f).copied().unwrap_or(1.0);
                if let Some((sf, start, len, factor)) = state.spike {
                    if sf == f && (start..start + len).contains(&w) {
                        cost *= factor;
                    }
                }
                match state.split.get(&f) {
                    Some(&(callee, moved)) => {
                        draw(&mut rng, &node.path, None, cost * (1.0 - moved));
                        draw(&mut rng, &node.path, Some(callee), cost * moved);
                    }
                    None => draw(&mut rng, &node.path, None, cost),
                }
            }
        }
    }

    /// The cost table of deploys `first..=last`, the whole fleet of every
    /// window drawn at once, straight into the detection core's input.
    pub fn cost_table(&self, first: usize, last: usize) -> CostTable {
        let deploys: Vec<Arc<str>> = (first..=last).map(|d| deploy_name(d).into()).collect();
        let mut builder = CostTableBuilder::new(&self.config.service, Unit::CpuNs, &deploys);
        let mut frames: Vec<Arc<str>> = Vec::new();
        for (i, d) in (first..=last).enumerate() {
            let state = &self.states[d];
            let names: Vec<Arc<str>> = (0..self.names.len())
                .map(|f| self.name_in(state, f).clone())
                .collect();
            for w in 0..self.config.windows_per_deploy {
                let window_ms = self.window_start(d, w);
                self.generate(d, w, None, |event| match event {
                    Event::Requests(e, count) => {
                        builder.add_requests(window_ms, &deploys[i], &self.endpoints[e].name, count)
                    }
                    Event::Stack(e, path, extra, samples) => {
                        frames.clear();
                        frames.extend(path.iter().chain(extra.as_ref()).map(|&f| names[f].clone()));
                        let weight = Weight {
                            weight: samples * self.config.period_ns,
                            count: samples,
                        };
                        builder.add_stack(window_ms, &deploys[i], &self.endpoints[e].name, &frames, weight);
                    }
                });
            }
        }
        builder.finish()
    }
}

/// What [`Fleet::generate`] draws.
enum Event<'a> {
    /// Requests of an endpoint.
    Requests(usize, i64),
    /// Samples of a stack of an endpoint: its path, maybe one more callee.
    Stack(usize, &'a [usize], Option<usize>, i64),
}

/// The name of deploy `d`.
pub fn deploy_name(d: usize) -> String {
    format!("d{d:03}")
}

/// How well reported regressions match the truth, per (deploy, function).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Score {
    /// Reported (deploy, function) pairs that were injected.
    pub true_positives: usize,
    /// Reported pairs that were not.
    pub false_positives: usize,
    /// Injected pairs not reported.
    pub false_negatives: usize,
    /// Per regression size: (found, injected).
    pub by_size: BTreeMap<u32, (usize, usize)>,
    /// Deploys with decoys and no regression.
    pub decoy_only_deploys: usize,
    /// Of those, deploys with any report.
    pub decoy_only_alerted: usize,
}

impl Score {
    /// Adds another fleet's counts.
    pub fn add(&mut self, other: &Score) {
        self.true_positives += other.true_positives;
        self.false_positives += other.false_positives;
        self.false_negatives += other.false_negatives;
        self.decoy_only_deploys += other.decoy_only_deploys;
        self.decoy_only_alerted += other.decoy_only_alerted;
        for (&size, &(found, all)) in &other.by_size {
            let e = self.by_size.entry(size).or_default();
            e.0 += found;
            e.1 += all;
        }
    }

    /// `tp / (tp + fp)` (1 with no reports).
    pub fn precision(&self) -> f64 {
        let reported = self.true_positives + self.false_positives;
        if reported == 0 {
            1.0
        } else {
            self.true_positives as f64 / reported as f64
        }
    }

    /// `tp / (tp + fn)` (1 with nothing injected).
    pub fn recall(&self) -> f64 {
        let injected = self.true_positives + self.false_negatives;
        if injected == 0 {
            1.0
        } else {
            self.true_positives as f64 / injected as f64
        }
    }

    /// Harmonic mean of precision and recall.
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }

    /// Recall of regressions of at least `size`.
    pub fn recall_at_least(&self, size: f64) -> f64 {
        let (found, total) = self
            .by_size
            .iter()
            .filter(|(&pct, _)| pct as f64 >= size * 100.0 - 1e-9)
            .fold((0, 0), |(f, t), (_, &(a, b))| (f + a, t + b));
        if total == 0 {
            1.0
        } else {
            found as f64 / total as f64
        }
    }
}

/// Scores `reported` (deploy name, function name) pairs against `plans`,
/// counting deploys in `deploys` only.
pub fn score(plans: &[DeployPlan], reported: &[(String, String)], deploys: std::ops::Range<usize>) -> Score {
    let mut s = Score::default();
    let reported: std::collections::BTreeSet<(String, String)> = reported.iter().cloned().collect();
    for d in deploys {
        let plan = &plans[d];
        let injected: std::collections::BTreeSet<&str> =
            plan.regressions.iter().map(|r| r.function.as_str()).collect();
        for r in &plan.regressions {
            let found = reported.contains(&(plan.name.clone(), r.function.clone()));
            let entry = s.by_size.entry((r.size * 100.0).round() as u32).or_default();
            entry.1 += 1;
            if found {
                entry.0 += 1;
                s.true_positives += 1;
            } else {
                s.false_negatives += 1;
            }
        }
        let alerts: Vec<&(String, String)> = reported.iter().filter(|(dep, _)| *dep == plan.name).collect();
        s.false_positives += alerts
            .iter()
            .filter(|(_, f)| !injected.contains(f.as_str()))
            .count();
        if plan.regressions.is_empty() && !plan.decoys.is_empty() {
            s.decoy_only_deploys += 1;
            if !alerts.is_empty() {
                s.decoy_only_alerted += 1;
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_has_the_right_mean() {
        let mut rng = Rng::new(3);
        for lambda in [0.5, 7.0, 400.0] {
            let n = 20_000;
            let sum: i64 = (0..n).map(|_| rng.poisson(lambda)).sum();
            let got = sum as f64 / n as f64;
            assert!(
                (got - lambda).abs() < 4.0 * (lambda / n as f64).sqrt() + 0.01,
                "{lambda}: {got}"
            );
        }
    }

    #[test]
    fn the_fleet_is_deterministic_and_as_planned() {
        let config = FleetConfig {
            deploys: 6,
            windows_per_deploy: 4,
            hosts: 2,
            regression_chance: 1.0,
            decoy_chance: 1.0,
            ..FleetConfig::default()
        };
        let fleet = Fleet::new(config.clone());
        assert!(fleet.function_count() >= 2_000);
        assert_eq!(
            fleet.truth().len(),
            5,
            "a regression in every deploy after the first"
        );
        assert!(fleet.plans()[1..].iter().all(|p| p.decoys.len() >= 3));
        let a = fleet.host_window(2, 1, 1);
        assert_eq!(a, Fleet::new(config).host_window(2, 1, 1));
        assert_eq!(a.window_ms, fleet.window_start(2, 1));
        assert!(a.stacks.len() > 500, "{}", a.stacks.len());
        let profile = a.profile();
        let samples: i64 = a.stacks.iter().map(|s| s.2).sum();
        assert_eq!(profile.total(0), samples);
        assert_eq!(profile.total(1), samples * a.period_ns);
    }

    #[test]
    fn scores_per_deploy_and_function() {
        let plans = vec![
            DeployPlan {
                name: "d000".into(),
                ..DeployPlan::default()
            },
            DeployPlan {
                name: "d001".into(),
                regressions: vec![Injected {
                    deploy: 1,
                    function: "f".into(),
                    size: 0.05,
                }],
                decoys: vec![],
            },
            DeployPlan {
                name: "d002".into(),
                regressions: vec![],
                decoys: vec![Decoy::Spike {
                    function: "g".into(),
                    windows: 2,
                }],
            },
        ];
        let reported = vec![
            ("d001".to_owned(), "f".to_owned()),
            ("d002".to_owned(), "g".to_owned()),
        ];
        let s = score(&plans, &reported, 0..3);
        assert_eq!(
            (s.true_positives, s.false_positives, s.false_negatives),
            (1, 1, 0)
        );
        assert_eq!((s.decoy_only_deploys, s.decoy_only_alerted), (1, 1));
        assert_eq!(s.precision(), 0.5);
        assert_eq!(s.recall_at_least(0.05), 1.0);
        let mut twice = s.clone();
        twice.add(&s);
        assert_eq!(
            (twice.true_positives, twice.false_positives, twice.by_size[&5]),
            (2, 2, (2, 2))
        );
    }
}
