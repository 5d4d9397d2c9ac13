//! The in-process agent: the [`crate::sampler::Sampler`] on every
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
//! let agent = Agent::start(AgentConfig::new("checkout", env!("CARGO_PKG_VERSION")))?;
//! // With the `axum` feature: router.layer(CpuLayer::new(agent.request_stats(), AxumRoute))
//! # Ok::<(), flameshift_collector::Error>(())
//! ```
//!
//! Environment (read by [`AgentConfig::from_env`] and [`AgentConfig::new`];
//! what the code sets with the builder wins):
//! `FLAMESHIFT_ANALYZER` (URL; without it nothing is uploaded),
//! `FLAMESHIFT_SERVICE`, `FLAMESHIFT_DEPLOY`, `FLAMESHIFT_HOST`,
//! `FLAMESHIFT_TOKEN`, `FLAMESHIFT_CA_CERT` (a PEM file of certificate
//! authorities to trust for an `https://` analyzer, beside the system's),
//! `FLAMESHIFT_FREQUENCY` (Hz, default 99; 0 samples nothing and only
//! counts and costs requests),
//! `FLAMESHIFT_UPLOAD_INTERVAL` (seconds, default 10),
//! `FLAMESHIFT_DISABLED=1` (start nothing).
//!
//! Length: over 600 lines with its tests: the agent's three threads (collect, upload, scan) share one `Shared` state and its shutdown order, which reads best in one place.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flameshift_profile::wire::Unit;
use flameshift_profile::Profile;

use crate::counters::{CounterMode, ThreadCounter};
use flameshift_client::http::{random_unit, RetryPolicy};
use flameshift_client::upload::{self, Destination, Exporter};

use crate::export;
use crate::requests::RequestStats;
use crate::sampler::{Sampler, SamplerConfig, SelfSymbolizer, StackCounts};
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
    /// Extra certificate authorities (PEM) for an `https://` analyzer.
    pub ca_cert: Option<std::path::PathBuf>,
    /// Without an analyzer, the file the profile is written to.
    pub output: Option<std::path::PathBuf>,
    /// Samples per CPU-second (default 99; 0: requests only, no samples).
    pub frequency: u64,
    /// How often profiles and request statistics are shipped (default 10 s).
    pub upload_interval: Duration,
    /// Uploads kept while the analyzer is unreachable (default 12, two
    /// minutes at the default interval); older ones are dropped and counted.
    pub max_pending: usize,
    /// Whether to start at all.
    pub enabled: bool,
}

impl Default for AgentConfig {
    /// No service or deploy yet, this machine's host name, 99 Hz, 10 s
    /// intervals, no analyzer, enabled.
    fn default() -> AgentConfig {
        AgentConfig {
            service: String::new(),
            deploy: String::new(),
            host: upload::hostname(),
            analyzer: None,
            token: None,
            ca_cert: None,
            output: None,
            frequency: 99,
            upload_interval: Duration::from_secs(10),
            max_pending: 12,
            enabled: true,
        }
    }
}

impl AgentConfig {
    /// The environment's settings ([`AgentConfig::from_env`]) with
    /// `service` and `deploy` set by the code: what the code sets wins.
    pub fn new(service: impl Into<String>, deploy: impl Into<String>) -> AgentConfig {
        AgentConfig::from_env().service(service).deploy(deploy)
    }

    /// Defaults, then the `FLAMESHIFT_*` environment variables (see the
    /// module docs); builder methods called afterwards win over both.
    pub fn from_env() -> AgentConfig {
        AgentConfig::default().with_env(|key| std::env::var(key).ok())
    }

    /// Sets the service name.
    pub fn service(mut self, service: impl Into<String>) -> AgentConfig {
        self.service = service.into();
        self
    }

    /// Sets the deploy (version) running.
    pub fn deploy(mut self, deploy: impl Into<String>) -> AgentConfig {
        self.deploy = deploy.into();
        self
    }

    /// Sets the host name.
    pub fn host(mut self, host: impl Into<String>) -> AgentConfig {
        self.host = host.into();
        self
    }

    /// Sets the analyzer URL.
    pub fn analyzer(mut self, url: impl Into<String>) -> AgentConfig {
        self.analyzer = Some(url.into());
        self
    }

    /// Sets the analyzer's bearer token.
    pub fn token(mut self, token: impl Into<String>) -> AgentConfig {
        self.token = Some(token.into());
        self
    }

    /// Trusts the certificate authorities in this PEM file (beside the
    /// system's) for an `https://` analyzer.
    pub fn ca_cert(mut self, path: impl Into<std::path::PathBuf>) -> AgentConfig {
        self.ca_cert = Some(path.into());
        self
    }

    /// Writes the profile (everything since start, as gzipped pprof) to
    /// this file every 30 s and when the agent stops, when no analyzer is set.
    pub fn output(mut self, path: impl Into<std::path::PathBuf>) -> AgentConfig {
        self.output = Some(path.into());
        self
    }

    /// Sets the sampling frequency (Hz of CPU time per thread); 0 samples
    /// nothing and only counts and costs requests.
    pub fn frequency(mut self, hz: u64) -> AgentConfig {
        self.frequency = hz.min(10_000);
        self
    }

    /// Sets how often profiles are shipped.
    pub fn upload_interval(mut self, every: Duration) -> AgentConfig {
        self.upload_interval = every.max(Duration::from_millis(100));
        self
    }

    /// The environment variables over the current values, from any
    /// lookup (for tests).
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
        if let Some(v) = get("FLAMESHIFT_CA_CERT").filter(|v| !v.is_empty()) {
            self.ca_cert = Some(v.into());
        }
        match get("FLAMESHIFT_FREQUENCY").map(|v| v.parse::<u64>()) {
            Some(Ok(hz)) if hz <= 10_000 => self.frequency = hz,
            Some(_) => tracing::warn!(
                "FLAMESHIFT_FREQUENCY must be 0..=10000 Hz (0: requests only); keeping {}",
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

/// An upload waiting in the queue, with the key all its attempts carry.
struct Pending {
    payload: Payload,
    key: String,
}

enum Payload {
    Profile(Box<Profile>),
    Requests { body: String },
}

struct Queue {
    items: Mutex<VecDeque<Pending>>,
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
    /// When a warning was last logged, and how many were held back since.
    last_warning: Mutex<(Option<Instant>, u64)>,
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

fn unit_of(mode: CounterMode) -> Unit {
    match mode {
        CounterMode::Instructions => Unit::Instructions,
        CounterMode::TaskClock | CounterMode::ThreadCpuTime => Unit::CpuNs,
    }
}

/// What an agent samples. The collecting thread drains it every 100 ms
/// and cuts it at every interval into the profile it ships: the
/// signal-driven [`Sampler`] of native stacks here ([`Agent::start`]),
/// or another sampler (the Python agent's interpreter frames) through
/// [`Agent::start_with`]. It lives on the collecting thread (a
/// symbolizer need not be `Send`); a [`SourceBuilder`] makes it there.
pub trait SampleSource {
    /// Called once, on the collecting thread, before anything else.
    fn on_collecting_thread(&mut self) {}
    /// Moves what was sampled since the last call into the interval's
    /// table.
    fn drain(&mut self);
    /// The interval's profile and the samples in it, the table cleared.
    fn cut(&mut self) -> (Profile, u64);
    /// Samples lost so far (a full buffer).
    fn dropped(&self) -> u64 {
        0
    }
}

/// Makes the [`SampleSource`] on the collecting thread, with the counter
/// it weighs samples in.
pub struct SourceBuilder {
    /// The counter samples are weighed in.
    pub mode: CounterMode,
    /// Makes the source (called once, on the collecting thread).
    pub build: Box<dyn FnOnce() -> Box<dyn SampleSource> + Send>,
}

impl std::fmt::Debug for SourceBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceBuilder").field("mode", &self.mode).finish()
    }
}

/// The native stacks of every thread, from the signal-driven sampler.
struct NativeSource {
    sampler: Sampler,
    symbolizer: SelfSymbolizer,
    stacks: StackCounts,
}

impl SampleSource for NativeSource {
    fn on_collecting_thread(&mut self) {
        self.sampler.exclude_current_thread();
    }

    fn drain(&mut self) {
        let stacks = &mut self.stacks;
        self.sampler
            .drain_each(|s| stacks.add_one(s.labels, s.weight, s.frames));
    }

    fn cut(&mut self) -> (Profile, u64) {
        let (mode, period) = (self.sampler.mode(), self.sampler.period());
        let mut profile = self.symbolizer.profile(&self.stacks, mode, period);
        profile.comments.push(format!(
            "flameshift agent: {mode:?} every {period} units on average (each period drawn in ½–1½ of it)"
        ));
        let samples = self.stacks.samples() as u64;
        self.stacks.clear();
        (profile, samples)
    }

    fn dropped(&self) -> u64 {
        self.sampler.dropped()
    }
}

impl Agent {
    /// Starts sampling native stacks and exporting. With `enabled: false`
    /// it starts nothing but still hands out request statistics.
    pub fn start(config: AgentConfig) -> Result<Agent> {
        // At 0 Hz nothing is sampled: only requests are counted and costed.
        let source = match (config.enabled, config.frequency) {
            (false, _) | (_, 0) => None,
            (true, frequency) => {
                let sampler = Sampler::start(&SamplerConfig {
                    frequency,
                    ..SamplerConfig::default()
                })?;
                Some(SourceBuilder {
                    mode: sampler.mode(),
                    build: Box::new(move || {
                        Box::new(NativeSource {
                            sampler,
                            symbolizer: SelfSymbolizer::default(),
                            stacks: StackCounts::default(),
                        })
                    }),
                })
            }
        };
        Agent::start_with(config, source)
    }

    /// Starts exporting what `source` samples (none: requests only).
    /// With `enabled: false` it starts nothing but still hands out
    /// request statistics.
    pub fn start_with(config: AgentConfig, source: Option<SourceBuilder>) -> Result<Agent> {
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
            last_warning: Mutex::new((None, 0)),
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
        // A CA file that does not load is the caller's to hear now, before
        // anything starts; the client itself is built on the upload
        // thread, because reqwest's blocking client must not be built
        // inside an async runtime (services start the agent from one).
        if let (Some(_), Some(ca)) = (&config.analyzer, &config.ca_cert) {
            flameshift_client::http::check_ca_file(ca)?;
        }
        let mode = source.as_ref().map(|s| s.mode);
        let request_unit = unit_of(ThreadCounter::open().mode());
        let mut threads = Vec::new();
        {
            let (shared, stats, config) = (shared.clone(), stats.clone(), config.clone());
            threads.push(crate::quiet_thread::spawn("flameshift-agent", move || {
                collect(source, shared, stats, config, request_unit)
            })?);
        }
        if let Some(analyzer) = config.analyzer.clone() {
            let mut dest = Destination::new(analyzer, config.service.clone(), config.deploy.clone());
            dest.host = config.host.clone();
            dest.token = config.token.clone();
            dest.ca_cert = config.ca_cert.clone();
            dest.attempts = 1; // the queue retries, a round later
            let shared = shared.clone();
            threads.push(crate::quiet_thread::spawn(
                "flameshift-upload",
                move || match Exporter::new(dest) {
                    Ok(exporter) => upload(exporter, shared),
                    Err(e) => {
                        tracing::error!(error = %e, "the agent cannot upload; profiles stay in memory")
                    }
                },
            )?);
        }
        tracing::info!(service = %config.service, deploy = %config.deploy, ?mode, "flameshift agent started");
        Ok(Agent {
            config,
            stats,
            shared,
            mode,
            threads,
        })
    }

    /// The request statistics the tower layer records into.
    pub fn request_stats(&self) -> Arc<RequestStats> {
        self.stats.clone()
    }

    /// The counter samples are taken on (`None` when disabled or at 0 Hz).
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

/// How often `output` is rewritten with the profile since start (and
/// once more when the agent stops).
const OUTPUT_EVERY: Duration = Duration::from_secs(30);

/// The collecting thread: drains the sampler every 100 ms, and at every
/// interval builds the profile and the request statistics and queues them.
fn collect(
    source: Option<SourceBuilder>,
    shared: Arc<Shared>,
    stats: Arc<RequestStats>,
    config: AgentConfig,
    request_unit: Unit,
) {
    let mut source = source.map(|builder| (builder.build)());
    if let Some(source) = &mut source {
        source.on_collecting_thread();
    }
    let mut started = Instant::now();
    let mut started_ms = now_ms();
    let mut dropped_before = source.as_ref().map_or(0, |s| s.dropped());
    let mut cumulative: Option<Profile> = None;
    let mut written: Option<Instant> = None;
    loop {
        let stopping = shared.stop.load(Ordering::Acquire);
        std::thread::sleep(Duration::from_millis(100));
        if let Some(source) = &mut source {
            source.drain();
        }
        let due = started.elapsed() >= config.upload_interval || shared.flush.swap(false, Ordering::AcqRel);
        if !(due || stopping) {
            continue;
        }
        // Cut the interval here, requests and samples at the same instant
        // (the samples were drained just above): building the profile can
        // take a while (the first symbolization reads the binary's debug
        // info), and what happens meanwhile belongs to the next interval.
        let requests = stats.take();
        let (start_ms, duration) = (started_ms, started.elapsed());
        started = Instant::now();
        started_ms = now_ms();
        let c = &shared.counters;
        let cut = source.as_mut().map(|source| {
            let (mut profile, samples) = source.cut();
            profile.time_nanos = start_ms * 1_000_000;
            profile.duration_nanos = duration.as_nanos() as i64;
            c.profiles.fetch_add(1, Ordering::Relaxed);
            c.samples.fetch_add(samples, Ordering::Relaxed);
            let dropped = source.dropped();
            c.dropped_samples
                .fetch_add(dropped.saturating_sub(dropped_before), Ordering::Relaxed);
            dropped_before = dropped;
            (profile, samples)
        });
        let window_ms = duration.as_millis() as i64;
        if config.analyzer.is_some() {
            let mut dest = Destination::new("", config.service.clone(), config.deploy.clone());
            dest.host = config.host.clone();
            let mut queue = shared.queue.items.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((profile, _)) = cut.as_ref().filter(|(_, samples)| *samples > 0) {
                queue.push_back(Pending {
                    payload: Payload::Profile(Box::new(profile.clone())),
                    key: upload::idempotency_key(),
                });
            }
            if !requests.is_empty() {
                let body = export::requests_json(&dest, request_unit, start_ms, window_ms, &requests);
                queue.push_back(Pending {
                    payload: Payload::Requests { body },
                    key: upload::idempotency_key(),
                });
            }
            while queue.len() > config.max_pending.max(1) {
                queue.pop_front();
                c.dropped_uploads.fetch_add(1, Ordering::Relaxed);
            }
            shared.queue.ready.notify_all();
        }
        let profile = cut.map(|(profile, _)| profile);
        if let (None, Some(path), Some(profile)) = (&config.analyzer, &config.output, &profile) {
            let total = match cumulative.take() {
                Some(mut total) => {
                    if let Err(e) = total.merge(profile) {
                        tracing::warn!(error = %e, "cannot merge the interval's profile");
                    }
                    total
                }
                None => profile.clone(),
            };
            // The whole profile since start is rewritten at most every
            // OUTPUT_EVERY and when the agent stops, not every interval.
            if stopping || written.is_none_or(|at: Instant| at.elapsed() >= OUTPUT_EVERY) {
                if let Err(e) = write_profile(path, &total) {
                    warn_limited(&shared, &format!("cannot write {}: {e}", path.display()));
                }
                written = Some(Instant::now());
            }
            cumulative = Some(total);
        }
        if profile.is_some() {
            *shared.latest.lock().unwrap_or_else(|e| e.into_inner()) = profile;
        }
        if stopping {
            break;
        }
    }
    drop(source);
}

/// Writes a profile to `path` whole (temporary file, then rename).
fn write_profile(path: &std::path::Path, profile: &Profile) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    flameshift_profile::format::pprof::write(profile, &mut file).map_err(std::io::Error::other)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Logs a warning at most once a minute (with how many were held back).
fn warn_limited(shared: &Shared, message: &str) {
    let mut last = shared.last_warning.lock().unwrap_or_else(|e| e.into_inner());
    match last.0 {
        Some(at) if at.elapsed() < Duration::from_secs(60) => last.1 += 1,
        _ => {
            tracing::warn!(suppressed = last.1, "{message}");
            *last = (Some(Instant::now()), 0);
        }
    }
}

/// The upload thread: sends queued payloads in order; a failure leaves the
/// payload at the head of the queue and waits with backoff, a refusal
/// (4xx) drops it.
fn upload(exporter: Exporter, shared: Arc<Shared>) {
    let c = &shared.counters;
    // One attempt per round; between rounds, 1 s doubling to a minute
    // (±25 %), or longer if the analyzer says so (`Retry-After`).
    let policy = RetryPolicy {
        first_backoff: Duration::from_secs(1),
        ..*exporter.retry_policy()
    };
    let mut failures = 0u32;
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
        let result = match &next.payload {
            Payload::Profile(profile) => upload::encode_profile(profile)
                .map_err(crate::Error::from)
                .and_then(|body| Ok(exporter.send_profile(&body, &next.key)?)),
            Payload::Requests { body } => exporter.send_requests(body, &next.key).map_err(Error::from),
        };
        match result {
            Ok(_) => {
                c.uploads.fetch_add(1, Ordering::Relaxed);
                failures = 0;
            }
            Err(e) if !e.is_retryable() => {
                warn_limited(
                    &shared,
                    &format!("the analyzer refused an upload; dropped it: {e}"),
                );
                c.dropped_uploads.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                c.failures.fetch_add(1, Ordering::Relaxed);
                failures += 1;
                warn_limited(&shared, &format!("upload failed; retrying with backoff: {e}"));
                shared
                    .queue
                    .items
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_front(next);
                if shared.stop_uploads.load(Ordering::Acquire) {
                    return; // do not hold up the service's shutdown
                }
                let wait = policy.delay(failures, e.retry_after(), random_unit());
                // Sleep in slices so that a shutdown is not held up.
                let until = Instant::now() + wait;
                while Instant::now() < until && !shared.stop_uploads.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(100));
                }
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
