//! The agent of this process: started once, restarted in each child of a
//! `fork` (prefork servers: gunicorn, uWSGI without `--lazy-apps`), and
//! stopped (its last interval shipped) at exit.
//!
//! Its state sits behind one lock. A fork happens while the forking
//! thread holds it (taken and given back by `pthread_atfork` handlers,
//! which run for the interpreter's `os.fork` and for servers that fork
//! from C without the interpreter's hooks, as uWSGI's master does), so
//! that the child never inherits it locked by a thread that does not
//! exist there. The child leaks the parent's agent (its threads did not
//! survive the fork; its locks and queues are not to be touched) and
//! starts its own: at once from the interpreter's after-fork hook, else
//! at its first use of the agent (a request, `stop`).

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use flameshift_collector::agent::{Agent, AgentConfig, AgentStats, SampleSource, SourceBuilder};
use flameshift_collector::counters::{CounterMode, ThreadCounter};
use flameshift_collector::labels::{self, LabelSetId};
use flameshift_collector::requests::RequestStats;
use rustc_hash::FxHashMap;

use crate::cpu::current_tid;
use crate::endpoints::Endpoints;
use crate::stacks::{PythonSource, ReadStats, StackSettings};
use flameshift_collector::cpython::current::{CurrentThreadReader, ThisThreadState};
use flameshift_collector::cpython::Interpreter;
use flameshift_collector::sampler::Sampler;

/// What `flameshift.start` was given (each `None` falls back to its
/// `FLAMESHIFT_*` variable).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Service name.
    pub service: Option<String>,
    /// Deploy (version).
    pub deploy: Option<String>,
    /// The analyzer's URL.
    pub analyzer: Option<String>,
    /// Bearer token.
    pub token: Option<String>,
    /// Extra certificate authorities (PEM file).
    pub ca_cert: Option<String>,
    /// Samples per second (default 99; 0: requests only).
    pub frequency: Option<u64>,
    /// Seconds between uploads (default 10).
    pub upload_interval: Option<u64>,
    /// The interpreter's import paths (`sys.path`), to name files.
    pub import_paths: Vec<String>,
    /// The running interpreter, where the agent's own stack reader
    /// knows its layout and checked it; else py-spy reads the stacks.
    pub interpreter: Option<Interpreter>,
    /// CPython's `PyGILState_GetThisThreadState`, where each thread reads
    /// its own stack in the sampler's signal handler (with
    /// `interpreter`); `None`: a sampling thread reads them all.
    pub this_thread_state: Option<ThisThreadState>,
}

impl Settings {
    /// The agent's configuration: the environment, then what was passed.
    fn agent_config(&self) -> AgentConfig {
        let mut config = AgentConfig::from_env();
        if let Some(v) = &self.service {
            config = config.service(v.clone());
        }
        if let Some(v) = &self.deploy {
            config = config.deploy(v.clone());
        }
        if let Some(v) = &self.analyzer {
            config = config.analyzer(v.clone());
        }
        if let Some(v) = &self.token {
            config = config.token(v.clone());
        }
        if let Some(v) = &self.ca_cert {
            config = config.ca_cert(v.clone());
        }
        if let Some(v) = self.frequency {
            config = config.frequency(v);
        }
        if let Some(v) = self.upload_interval {
            config = config.upload_interval(std::time::Duration::from_secs(v));
        }
        config
    }
}

/// The running agent of this process.
struct Running {
    settings: Settings,
    agent: Agent,
    stats: Arc<RequestStats>,
    endpoints: Arc<Endpoints>,
    /// Why stacks are not sampled, when they are not.
    no_stacks: Option<String>,
    /// What reads the stacks, when they are sampled.
    stack_reader: Option<&'static str>,
    /// What became of its reads.
    read_stats: Option<Arc<ReadStats>>,
}

static RUNNING: Mutex<Option<Running>> = Mutex::new(None);

/// Whether a sampling thread reads the stacks ([`crate::stacks`]), and
/// so must be told which endpoint each thread serves ([`Endpoints`]); the
/// signal handler ([`crate::signal_stacks`]) reads it from the thread's
/// current label set instead.
static THREAD_ENDPOINTS: AtomicBool = AtomicBool::new(false);

/// Bumped in each child after a fork: thread counters opened before it
/// count the parent's threads and are opened again.
static FORKS: AtomicU64 = AtomicU64::new(0);

/// Set in the child of a fork until it starts an agent of its own
/// ([`after_fork_in_child`]): the agent it holds is the parent's.
static FORKED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// The lock held across a fork by the forking thread.
    static HELD_FOR_FORK: RefCell<Option<MutexGuard<'static, Option<Running>>>> = const { RefCell::new(None) };
    /// This thread's counter, with the fork generation it was opened in.
    static COUNTER: RefCell<Option<(u64, ThreadCounter)>> = const { RefCell::new(None) };
}

/// The agent of this process: in the child of a fork that the
/// interpreter's hooks did not see (uWSGI), started anew first.
fn running() -> MutexGuard<'static, Option<Running>> {
    if FORKED.load(Ordering::Acquire) {
        if let Err(why) = after_fork_in_child() {
            tracing::warn!("flameshift agent not restarted after fork: {why}");
        }
    }
    locked()
}

fn locked() -> MutexGuard<'static, Option<Running>> {
    RUNNING.lock().unwrap_or_else(|e| e.into_inner())
}

/// What [`start`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// The counter requests are costed in (`instructions` or `cpu_ns`).
    pub request_unit: &'static str,
    /// Why stacks are not sampled, if they are not (requests are still
    /// counted and costed).
    pub no_stacks: Option<String>,
    /// What reads the stacks (`flameshift`: the agent's own reader;
    /// `py-spy`), if they are sampled.
    pub stack_reader: Option<&'static str>,
}

fn launch(settings: Settings) -> Result<Running, String> {
    let config = settings.agent_config();
    if config.service.is_empty() || config.deploy.is_empty() {
        return Err(
            "flameshift needs a service and a deploy: pass service= and deploy= to \
             flameshift.start, or set FLAMESHIFT_SERVICE and FLAMESHIFT_DEPLOY"
                .to_owned(),
        );
    }
    let endpoints = Arc::new(Endpoints::default());
    // Made here, in the process that samples (a child of fork makes its own).
    let own_thread_reader =
        settings
            .interpreter
            .zip(settings.this_thread_state)
            .and_then(|(interpreter, state)| {
                Some((interpreter, CurrentThreadReader::new(interpreter.version, state)?))
            });
    THREAD_ENDPOINTS.store(false, Ordering::Relaxed);
    let (source, no_stacks, reader) = match (config.enabled, config.frequency, own_thread_reader) {
        // Asked for: nothing to warn about.
        (false, _, _) | (true, 0, _) => (None, None, None),
        (true, frequency, Some((interpreter, reader))) => {
            match crate::signal_stacks::start(frequency, interpreter, reader, settings.import_paths.clone()) {
                Ok((builder, reads)) => (Some(builder), None, Some(("flameshift", reads))),
                Err(why) => (None, Some(why), None),
            }
        }
        (true, frequency, None) => match PythonSource::start(
            StackSettings {
                frequency,
                import_paths: settings.import_paths.clone(),
            },
            settings.interpreter,
            endpoints.clone(),
        ) {
            Ok(source) => {
                // The sampling thread labels what it samples from the
                // endpoint each thread serves.
                THREAD_ENDPOINTS.store(true, Ordering::Relaxed);
                let reader = (source.reader(), source.read_stats());
                let builder = SourceBuilder {
                    mode: CounterMode::ThreadCpuTime,
                    build: Box::new(move || Box::new(source) as Box<dyn SampleSource>),
                };
                (Some(builder), None, Some(reader))
            }
            Err(why) => (None, Some(why), None),
        },
    };
    let agent = Agent::start_with(config, source).map_err(|e| e.to_string())?;
    Ok(Running {
        settings,
        stats: agent.request_stats(),
        agent,
        endpoints,
        no_stacks,
        stack_reader: reader.as_ref().map(|r| r.0),
        read_stats: reader.map(|r| r.1),
    })
}

/// The agent's warnings (an analyzer that refuses uploads or cannot be
/// reached, each said at most once a minute) on standard error, as
/// `flameshift agent: WARN …`, unless the process already installed a
/// `tracing` subscriber. `FLAMESHIFT_LOG` (`info`, `debug`) says more.
fn log_to_stderr() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let level = std::env::var("FLAMESHIFT_LOG")
        .ok()
        .and_then(|v| v.parse::<tracing_subscriber::filter::Targets>().ok())
        .unwrap_or_else(|| tracing_subscriber::filter::Targets::new().with_default(tracing::Level::WARN));
    let subscriber = tracing_subscriber::registry().with(level).with(
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .fmt_fields(tracing_subscriber::fmt::format::DefaultFields::new())
            .event_format(
                tracing_subscriber::fmt::format()
                    .compact()
                    .with_target(false)
                    .without_time(),
            ),
    );
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Starts the agent of this process (a second call while it runs changes
/// nothing). An error says why nothing started.
pub fn start(settings: Settings) -> Result<Started, String> {
    static LOGGING: std::sync::Once = std::sync::Once::new();
    LOGGING.call_once(log_to_stderr);
    watch_forks();
    let mut running = running();
    if running.is_none() {
        *running = Some(launch(settings)?);
    }
    let unit = match ThreadCounter::open().mode() {
        CounterMode::Instructions => "instructions",
        _ => "cpu_ns",
    };
    Ok(Started {
        request_unit: unit,
        no_stacks: running.as_ref().and_then(|r| r.no_stacks.clone()),
        stack_reader: running.as_ref().and_then(|r| r.stack_reader),
    })
}

/// Stops the agent, shipping what it holds (bounded by the upload
/// timeout). Nothing running: nothing to do.
pub fn stop() {
    let Some(running) = running().take() else {
        return;
    };
    let shut_down = move || {
        if let Some(reads) = &running.read_stats {
            let counts = reads.snapshot();
            let said: Vec<String> = ReadStats::NAMES
                .iter()
                .zip(counts)
                .map(|(name, count)| format!("{name}={count}"))
                .collect();
            tracing::info!(reader = running.stack_reader, "stack reads: {}", said.join(" "));
        }
        running.agent.shutdown();
    };
    // On a thread of its own: `stop` runs at exit, and uWSGI finalizes
    // the interpreter (so runs its exit functions) from a C `atexit`
    // handler, which glibc runs after the exiting thread's thread-local
    // destructors: logging and the shutdown would find theirs gone.
    let _ =
        flameshift_collector::quiet_thread::spawn("flameshift-stop", shut_down).map(|thread| thread.join());
}

/// Whether the agent runs.
pub fn is_running() -> bool {
    running().is_some()
}

/// What reads the stacks, if the agent runs and samples them.
pub fn stack_reader() -> Option<&'static str> {
    running().as_ref().and_then(|r| r.stack_reader)
}

/// What became of the stack reads (counts named by
/// [`ReadStats::NAMES`]), if the agent runs and samples stacks.
pub fn read_stats() -> Option<[u64; 7]> {
    running()
        .as_ref()
        .and_then(|r| r.read_stats.as_ref().map(|s| s.snapshot()))
}

/// What the agent has done, if it runs.
pub fn stats() -> Option<AgentStats> {
    running().as_ref().map(|r| r.agent.stats())
}

/// Requests recorded since the last upload, per endpoint: count and CPU.
pub fn requests() -> Vec<(String, u64, u64)> {
    let stats = running().as_ref().map(|r| r.stats.clone());
    stats.map_or_else(Vec::new, |stats| {
        stats
            .snapshot()
            .into_iter()
            .map(|(endpoint, s)| (endpoint, s.count, s.cost_sum))
            .collect()
    })
}

/// The calling thread's counter now (instructions or CPU ns).
pub fn read_counter() -> u64 {
    let forks = FORKS.load(Ordering::Relaxed);
    COUNTER.with(|cell| {
        let mut cell = cell.borrow_mut();
        match &*cell {
            Some((generation, counter)) if *generation == forks => counter.read(),
            _ => {
                let counter = ThreadCounter::open();
                let value = counter.read();
                *cell = Some((forks, counter));
                value
            }
        }
    })
}

/// A step of a request starts on the calling thread: it now serves
/// `endpoint` (whose label set is `label`); what was current before, to
/// give back to [`end`], and the counter's value.
pub fn begin(endpoint: &str, label: LabelSetId) -> (LabelSetId, u64) {
    let outer = enter(endpoint, label);
    (outer, read_counter())
}

/// A step that began at `started` ends: what it cost; the thread serves
/// what it served before (`outer`, from [`begin`]), and with `record`
/// the request is recorded under `endpoint` with `cost_before` plus
/// this step's cost.
pub fn end(endpoint: &str, outer: LabelSetId, started: u64, cost_before: u64, record_it: bool) -> u64 {
    let step = read_counter().saturating_sub(started);
    labels::replace_current(outer);
    if !(record_it || THREAD_ENDPOINTS.load(Ordering::Relaxed)) {
        return step;
    }
    let running = running();
    if let Some(running) = running.as_ref() {
        if THREAD_ENDPOINTS.load(Ordering::Relaxed) {
            running.endpoints.leave(current_tid());
        }
        if record_it {
            running.stats.record(endpoint, cost_before.saturating_add(step));
        }
    }
    step
}

/// The calling thread now serves `endpoint`, whose label set is `label`:
/// what was current before.
pub fn enter(endpoint: &str, label: LabelSetId) -> LabelSetId {
    let outer = labels::replace_current(label);
    if THREAD_ENDPOINTS.load(Ordering::Relaxed) {
        if let Some(running) = running().as_ref() {
            running.endpoints.enter(current_tid(), endpoint);
        }
    }
    outer
}

/// The label set of samples taken while a thread serves `endpoint`
/// (interned once per endpoint and thread).
pub fn endpoint_label(endpoint: &str) -> LabelSetId {
    thread_local! {
        static LABELS: RefCell<FxHashMap<String, LabelSetId>> = RefCell::new(FxHashMap::default());
    }
    LABELS.with(|cache| {
        if let Some(&id) = cache.borrow().get(endpoint) {
            return id;
        }
        let id = labels::intern(labels::LabelSet::new([("endpoint", endpoint)]));
        cache.borrow_mut().insert(endpoint.to_owned(), id);
        id
    })
}

/// One finished request of `endpoint` that cost `cost`.
pub fn record(endpoint: &str, cost: u64) {
    let stats = running().as_ref().map(|r| r.stats.clone());
    if let Some(stats) = stats {
        stats.record(endpoint, cost);
    }
}

/// Installs the `pthread_atfork` handlers (once): every `fork` of this
/// process, the interpreter's or a C server's, runs them.
fn watch_forks() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[allow(unsafe_code)]
        // SAFETY: the handlers are plain functions that live as long as
        // the process (the extension is never unloaded).
        let _ = unsafe { libc::pthread_atfork(Some(before_fork), Some(after_fork_in_parent), Some(forked)) };
    });
}

/// Before a fork: the forking thread holds the lock across it (not a
/// thread being torn down, whose thread-locals are gone: a panic here
/// would abort the process).
extern "C" fn before_fork() {
    let _ = HELD_FOR_FORK.try_with(|held| {
        if let Ok(mut held) = held.try_borrow_mut() {
            *held = Some(locked());
        }
    });
}

/// After a fork, in the parent: the lock is given back.
extern "C" fn after_fork_in_parent() {
    give_back_for_fork();
}

/// After a fork, in the child (its only thread, the forking one): the
/// lock is given back, and the agent is marked as the parent's. Starting
/// the child's own is left to [`after_fork_in_child`] (threads are not
/// started from here).
extern "C" fn forked() {
    FORKS.fetch_add(1, Ordering::Relaxed);
    give_back_for_fork();
    FORKED.store(true, Ordering::Release);
}

fn give_back_for_fork() {
    let _ = HELD_FOR_FORK.try_with(|held| {
        if let Ok(mut held) = held.try_borrow_mut() {
            drop(held.take());
        }
    });
}

/// In the child of a fork (from the interpreter's after-fork hook, or at
/// the first use of the agent after a fork it did not see): the
/// parent's agent is left alone (leaked) and a new one started with the
/// same settings, once. An error says why the child runs without one.
pub fn after_fork_in_child() -> Result<(), String> {
    if !FORKED.swap(false, Ordering::AcqRel) {
        return Ok(());
    }
    let mut guard = locked();
    match guard.take() {
        None => Ok(()),
        Some(parent) => {
            let settings = parent.settings.clone();
            std::mem::forget(parent);
            Sampler::forget_after_fork();
            *guard = Some(launch(settings)?);
            Ok(())
        }
    }
}
