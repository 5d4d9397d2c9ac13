//! The in-process agent: the [`Sampler`](crate::sampler::Sampler) on every
//! thread, request statistics from the tower layer, and a background
//! exporter that ships both to the analyzer every `upload_interval`.
//!
//! Nothing here can block or crash the service: sampling happens in a
//! signal handler that never waits; aggregation, symbolization and
//! uploads run on two agent threads (not sampled); a dead or slow
//! analyzer only fills a bounded queue whose oldest entries are dropped
//! and counted; a refused upload (4xx) is logged and dropped.
//!
//! ```no_run
//! use flameshift_collector::agent::{Agent, AgentConfig};
//! let agent = Agent::start(AgentConfig::new("checkout", env!("CARGO_PKG_VERSION")).from_env())?;
//! // With the `axum` feature: router.layer(CpuLayer::new(agent.request_stats(), AxumRoute))
//! # Ok::<(), flameshift_collector::Error>(())
//! ```
//!
//! Environment (read by [`AgentConfig::from_env`], overriding the code):
//! `FLAMESHIFT_ANALYZER` (URL; without it nothing is uploaded),
//! `FLAMESHIFT_SERVICE`, `FLAMESHIFT_DEPLOY`, `FLAMESHIFT_HOST`,
//! `FLAMESHIFT_TOKEN`, `FLAMESHIFT_FREQUENCY` (Hz, default 99),
//! `FLAMESHIFT_UPLOAD_INTERVAL` (seconds, default 10),
//! `FLAMESHIFT_DISABLED=1` (start nothing).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flameshift_profile::Profile;

use crate::counters::{CounterMode, ThreadCounter};
use crate::export::{self, Destination};
use crate::requests::RequestStats;
use crate::sampler::buffer::RawSample;
use crate::sampler::symbols::{SelfSymbolizer, StackCounts};
use crate::sampler::{Sampler, SamplerConfig};
use crate::{Error, Result};

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Service name.
    pub service: String,
    /// Deploy (version) running, e.g. a git SHA.
    pub deploy: String,
    /// Host name (default: this machine's).
    pub host: String,
    /// The analyzer's URL; `None` keeps profiles in memory only.
    pub analyzer: Option<String>,
    /// Bearer token for the analyzer.
    pub token: Option<String>,
    /// Samples per CPU-second (default 99).
    pub frequency: u64,
    /// How often profiles and request statistics are shipped (default 10 s).
    pub upload_interval: Duration,
    /// Uploads kept while the analyzer is unreachable (default 12, two
    /// minutes at the default interval); older ones are dropped and counted.
    pub max_pending: usize,
    /// Whether to start at all.
    pub enabled: bool,
}

impl AgentConfig {
    /// A configuration for `service` running `deploy`.
    pub fn new(service: impl Into<String>, deploy: impl Into<String>) -> AgentConfig {
        AgentConfig {
            service: service.into(),
            deploy: deploy.into(),
            host: export::hostname(),
            analyzer: None,
            token: None,
            frequency: 99,
            upload_interval: Duration::from_secs(10),
            max_pending: 12,
            enabled: true,
        }
    }

    /// Sets the analyzer URL.
    pub fn analyzer(mut self, url: impl Into<String>) -> AgentConfig {
        self.analyzer = Some(url.into());
        self
    }

    /// Applies the `FLAMESHIFT_*` environment variables (see the module docs).
    pub fn from_env(self) -> AgentConfig {
        self.with_env(|key| std::env::var(key).ok())
    }

    /// [`AgentConfig::from_env`] over any lookup (testable).
    pub fn with_env(mut self, get: impl Fn(&str) -> Option<String>) -> AgentConfig {
        if let Some(v) = get("FLAMESHIFT_ANALYZER").filter(|v| !v.is_empty()) {
            self.analyzer = Some(v);
        }
        if let Some(v) = get("FLAMESHIFT_SERVICE").filter(|v| !v.is_empty()) {
            self.service = v;
        }
        if let Some(v) = get("FLAMESHIFT_DEPLOY").filter(|v| !v.is_empty()) {
            self.deploy = v;
        }
        if let Some(v) = get("FLAMESHIFT_HOST").filter(|v| !v.is_empty()) {
            self.host = v;
        }
        if let Some(v) = get("FLAMESHIFT_TOKEN").filter(|v| !v.is_empty()) {
            self.token = Some(v);
        }
        match get("FLAMESHIFT_FREQUENCY").map(|v| v.parse::<u64>()) {
            Some(Ok(hz)) if (1..=10_000).contains(&hz) => self.frequency = hz,
            Some(_) => tracing::warn!(
                "FLAMESHIFT_FREQUENCY must be 1..=10000 Hz; keeping {}",
                self.frequency
            ),
            None => {}
        }
        match get("FLAMESHIFT_UPLOAD_INTERVAL").map(|v| v.parse::<u64>()) {
            Some(Ok(s)) if s > 0 => self.upload_interval = Duration::from_secs(s),
            Some(_) => tracing::warn!("FLAMESHIFT_UPLOAD_INTERVAL must be a positive number of seconds"),
            None => {}
        }
        if get("FLAMESHIFT_DISABLED").is_some_and(|v| v == "1" || v == "true") {
            self.enabled = false;
        }
        self
    }
}

/// What the agent has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentStats {
    /// Profiles built.
    pub profiles: u64,
    /// Samples in them.
    pub samples: u64,
    /// Uploads acknowledged by the analyzer.
    pub uploads: u64,
    /// Uploads that failed (each retried until dropped).
    pub failures: u64,
    /// Uploads dropped (queue full or refused).
    pub dropped_uploads: u64,
    /// Samples dropped because the sample buffer was full.
    pub dropped_samples: u64,
}

#[derive(Default)]
struct Counters {
    profiles: AtomicU64,
    samples: AtomicU64,
    uploads: AtomicU64,
    failures: AtomicU64,
    dropped_uploads: AtomicU64,
    dropped_samples: AtomicU64,
}

enum Payload {
    Profile(Box<Profile>),
    Requests { body: String },
}

struct Queue {
    items: Mutex<VecDeque<Payload>>,
    ready: Condvar,
}

struct Shared {
    /// Tells the collecting thread to finish its last interval.
    stop: AtomicBool,
    /// Tells the upload thread to send what is queued and end (set after
    /// the collecting thread has queued its last interval).
    stop_uploads: AtomicBool,
    flush: AtomicBool,
    counters: Counters,
    queue: Queue,
    latest: Mutex<Option<Profile>>,
}

/// A running agent; [`Agent::shutdown`] (or drop) ships what is left.
pub struct Agent {
    config: AgentConfig,
    stats: Arc<RequestStats>,
    shared: Arc<Shared>,
    mode: Option<CounterMode>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("service", &self.config.service)
            .field("deploy", &self.config.deploy)
            .field("mode", &self.mode)
            .finish()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn unit_name(mode: CounterMode) -> &'static str {
    match mode {
        CounterMode::Instructions => "instructions",
        CounterMode::TaskClock | CounterMode::ThreadCpuTime => "cpu_ns",
    }
}

impl Agent {
    /// Starts sampling and exporting. With `enabled: false` it starts
    /// nothing but still hands out request statistics.
    pub fn start(config: AgentConfig) -> Result<Agent> {
        if config.service.is_empty() || config.deploy.is_empty() {
            return Err(Error::Io(std::io::Error::other(
                "the agent needs a service and a deploy",
            )));
        }
        let stats = Arc::new(RequestStats::default());
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            stop_uploads: AtomicBool::new(false),
            flush: AtomicBool::new(false),
            counters: Counters::default(),
            queue: Queue {
                items: Mutex::new(VecDeque::new()),
                ready: Condvar::new(),
            },
            latest: Mutex::new(None),
        });
        if !config.enabled {
            tracing::info!("flameshift agent disabled");
            return Ok(Agent {
                config,
                stats,
                shared,
                mode: None,
                threads: Vec::new(),
            });
        }
        let sampler = Sampler::start(&SamplerConfig {
            frequency: config.frequency,
            ..SamplerConfig::default()
        })?;
        let mode = sampler.mode();
        let request_unit = unit_name(ThreadCounter::open().mode());
        let mut threads = Vec::new();
        {
            let (shared, stats, config) = (shared.clone(), stats.clone(), config.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("flameshift-agent".into())
                    .spawn(move || collect(sampler, shared, stats, config, request_unit))?,
            );
        }
        if let Some(analyzer) = config.analyzer.clone() {
            let mut dest = Destination::new(analyzer, config.service.clone(), config.deploy.clone());
            dest.host = config.host.clone();
            dest.token = config.token.clone();
            dest.attempts = 1; // the queue retries, a round later
            let shared = shared.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("flameshift-upload".into())
                    .spawn(move || upload(dest, shared))?,
            );
        }
        tracing::info!(service = %config.service, deploy = %config.deploy, ?mode, "flameshift agent started");
        Ok(Agent {
            config,
            stats,
            shared,
            mode: Some(mode),
            threads,
        })
    }

    /// The request statistics the tower layer records into.
    pub fn request_stats(&self) -> Arc<RequestStats> {
        self.stats.clone()
    }

    /// The counter samples are taken on (`None` when disabled).
    pub fn mode(&self) -> Option<CounterMode> {
        self.mode
    }

    /// What the agent has done so far.
    pub fn stats(&self) -> AgentStats {
        let c = &self.shared.counters;
        AgentStats {
            profiles: c.profiles.load(Ordering::Relaxed),
            samples: c.samples.load(Ordering::Relaxed),
            uploads: c.uploads.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            dropped_uploads: c.dropped_uploads.load(Ordering::Relaxed),
            dropped_samples: c.dropped_samples.load(Ordering::Relaxed),
        }
    }

    /// Ends the current interval now (its profile is built and queued).
    pub fn flush(&self) {
        self.shared.flush.store(true, Ordering::Release);
    }

    /// The profile of the last finished interval, if any.
    pub fn latest_profile(&self) -> Option<Profile> {
        self.shared
            .latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops sampling, ships what is left (best effort, bounded by the
    /// upload timeout) and joins the agent's threads.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        let mut threads = self.threads.drain(..);
        if let Some(collector) = threads.next() {
            let _ = collector.join();
        }
        self.shared.stop_uploads.store(true, Ordering::Release);
        self.shared.queue.ready.notify_all();
        for thread in threads {
            let _ = thread.join();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The collecting thread: drains the sampler every 100 ms, and at every
/// interval builds the profile and the request statistics and queues them.
fn collect(
    sampler: Sampler,
    shared: Arc<Shared>,
    stats: Arc<RequestStats>,
    config: AgentConfig,
    request_unit: &str,
) {
    sampler.exclude_current_thread();
    let mut symbolizer = SelfSymbolizer::default();
    let mut stacks = StackCounts::default();
    let mut raw: Vec<RawSample> = Vec::new();
    let mut started = Instant::now();
    let mut started_ms = now_ms();
    let mut dropped_before = sampler.dropped();
    loop {
        let stopping = shared.stop.load(Ordering::Acquire);
        std::thread::sleep(Duration::from_millis(100));
        raw.clear();
        sampler.drain(&mut raw);
        stacks.add(&raw);
        let due = started.elapsed() >= config.upload_interval || shared.flush.swap(false, Ordering::AcqRel);
        if !(due || stopping) {
            continue;
        }
        let mut profile = symbolizer.profile(&stacks, sampler.mode(), sampler.period());
        profile.time_nanos = started_ms * 1_000_000;
        profile.duration_nanos = started.elapsed().as_nanos() as i64;
        profile.comments.push(format!(
            "flameshift agent: {:?} every {} units",
            sampler.mode(),
            sampler.period()
        ));
        let c = &shared.counters;
        c.profiles.fetch_add(1, Ordering::Relaxed);
        c.samples.fetch_add(stacks.samples() as u64, Ordering::Relaxed);
        let dropped = sampler.dropped();
        c.dropped_samples
            .fetch_add(dropped - dropped_before, Ordering::Relaxed);
        dropped_before = dropped;
        let requests = stats.take();
        let window_ms = started.elapsed().as_millis() as i64;
        if config.analyzer.is_some() {
            let mut dest = Destination::new("", config.service.clone(), config.deploy.clone());
            dest.host = config.host.clone();
            let mut queue = shared.queue.items.lock().unwrap_or_else(|e| e.into_inner());
            if !stacks.is_empty() {
                queue.push_back(Payload::Profile(Box::new(profile.clone())));
            }
            if !requests.is_empty() {
                let body = export::requests_json(&dest, request_unit, started_ms, window_ms, &requests);
                queue.push_back(Payload::Requests { body });
            }
            while queue.len() > config.max_pending.max(1) {
                queue.pop_front();
                c.dropped_uploads.fetch_add(1, Ordering::Relaxed);
            }
            shared.queue.ready.notify_all();
        }
        *shared.latest.lock().unwrap_or_else(|e| e.into_inner()) = Some(profile);
        stacks = StackCounts::default();
        started = Instant::now();
        started_ms = now_ms();
        if stopping {
            break;
        }
    }
    drop(sampler);
}

/// The upload thread: sends queued payloads in order; a failure leaves the
/// payload at the head of the queue for the next round, a refusal drops it.
fn upload(dest: Destination, shared: Arc<Shared>) {
    let c = &shared.counters;
    loop {
        let next = {
            let mut queue = shared.queue.items.lock().unwrap_or_else(|e| e.into_inner());
            while queue.is_empty() && !shared.stop_uploads.load(Ordering::Acquire) {
                queue = shared
                    .queue
                    .ready
                    .wait_timeout(queue, Duration::from_secs(1))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            match queue.pop_front() {
                Some(payload) => payload,
                None => return, // stopping and nothing left
            }
        };
        let result = match &next {
            Payload::Profile(profile) => export::upload_profile(&dest, profile),
            Payload::Requests { body } => {
                let url = format!("{}/api/v1/requests", dest.analyzer);
                let auth = dest.token.as_ref().map(|t| format!("Bearer {t}"));
                let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
                crate::http::post(&url, &headers, body.as_bytes(), dest.timeout).and_then(|r| {
                    if r.status < 300 {
                        Ok(r.text())
                    } else {
                        Err(Error::Upload {
                            url,
                            message: format!("HTTP {}: {}", r.status, r.error_message()),
                        })
                    }
                })
            }
        };
        match result {
            Ok(_) => {
                c.uploads.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) if e.to_string().contains("HTTP 4") && !e.to_string().contains("HTTP 429") => {
                tracing::error!(error = %e, "the analyzer refused an upload; dropping it");
                c.dropped_uploads.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                c.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "upload failed; will retry");
                shared
                    .queue
                    .items
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_front(next);
                if shared.stop_uploads.load(Ordering::Acquire) {
                    return; // do not hold up the service's shutdown
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_code_and_bad_values_are_ignored() {
        let env = |key: &str| match key {
            "FLAMESHIFT_ANALYZER" => Some("http://a:7411".to_owned()),
            "FLAMESHIFT_DEPLOY" => Some("sha-2".to_owned()),
            "FLAMESHIFT_FREQUENCY" => Some("abc".to_owned()),
            "FLAMESHIFT_UPLOAD_INTERVAL" => Some("5".to_owned()),
            _ => None,
        };
        let config = AgentConfig::new("svc", "sha-1").with_env(env);
        assert_eq!(config.analyzer.as_deref(), Some("http://a:7411"));
        assert_eq!(
            (config.service.as_str(), config.deploy.as_str()),
            ("svc", "sha-2")
        );
        assert_eq!(config.frequency, 99);
        assert_eq!(config.upload_interval, Duration::from_secs(5));
        assert!(config.enabled);
        let off =
            AgentConfig::new("s", "d").with_env(|k| (k == "FLAMESHIFT_DISABLED").then(|| "1".to_owned()));
        assert!(!off.enabled);
    }
}
