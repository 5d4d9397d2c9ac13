//! The in-process sampler: counter-overflow sampling of every thread of
//! this process, including threads started later.
//!
//! About every `period` units of a thread's work (each period drawn in
//! ½–1½ of it: retired instructions where the machine has a PMU; else
//! CPU nanoseconds, on a thread-CPU-clock timer up to [`TIMER_MAX_HZ`]
//! or where perf events are forbidden, on a task-clock event above), the
//! kernel sends that thread `SIGPROF`; the signal handler (`handler`)
//! walks its frame pointers (directly within the thread's stack mapping,
//! `stacks`) and writes the raw addresses, the thread's label set and
//! the weight into a lock-free buffer (`buffer`). A scanner thread arms
//! new threads every 100 ms (`/proc/self/task`); [`Sampler::drain_each`]
//! hands the samples over in place, and [`SelfSymbolizer`] turns the
//! aggregated [`StackCounts`] into a profile.
//!
//! One sampler runs per process. It uses `SIGPROF`: do not run another
//! `SIGPROF` profiler (gperftools, pprof-rs) in the same process.

mod arm;
mod buffer;
mod handler;
mod stacks;
mod symbols;

pub use buffer::{RawSample, SampleRef};
pub use symbols::{SelfSymbolizer, StackCounts};

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::counters::{choose_counter, CounterMode, CounterSource};
use crate::cpython::current::CurrentThreadReader;
use crate::{Error, Result};
use arm::Armed;
use buffer::SampleBuffer;

/// How to sample.
#[derive(Debug, Clone)]
pub struct SamplerConfig {
    /// Samples per CPU-second of a thread (default 99, as perf and Pyroscope).
    pub frequency: u64,
    /// Slots in the sample buffer (default 8,192, about 8 MiB).
    pub buffer_slots: usize,
    /// How often new threads are looked for (default 100 ms); zero: by
    /// no thread of the sampler's own, the owner calls [`Sampler::scan`]
    /// (one thread less to wake up).
    pub scan_interval: Duration,
    /// Force a counter instead of the automatic choice.
    pub mode: Option<CounterMode>,
    /// Read each thread's Python frames (code-object addresses, innermost
    /// first) instead of its native ones: the Python agent. Threads
    /// without a Python thread state make no samples.
    pub python: Option<CurrentThreadReader>,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            frequency: 99,
            buffer_slots: 8_192,
            scan_interval: Duration::from_millis(100),
            mode: None,
            python: None,
        }
    }
}

/// Instructions per sample at `frequency` Hz, assuming ~3 G instructions
/// per CPU-second (the period is fixed; the real rate follows the code).
pub fn instruction_period(frequency: u64) -> u64 {
    3_000_000_000 / frequency.max(1)
}

/// Highest frequency sampled with CPU-clock timers where the machine has
/// no PMU. POSIX CPU-clock timers are checked on the scheduler tick (250
/// Hz on Debian's and Ubuntu's kernels, 100–1000 elsewhere), so a sample
/// costs no interrupt of its own; a task-clock perf event interrupts the
/// thread for each sample (~33 µs a sample on this project's VM: 3.3 % of
/// a core at 1 kHz, against nothing measurable for timers at 250 Hz;
/// BENCHMARKS.md, "The agent in a service"). Above it, task-clock
/// gives the frequency asked for. On a kernel ticking slower than this,
/// timers sample less often than asked and each sample weighs the CPU
/// time it stands for, so totals stay true.
pub const TIMER_MAX_HZ: u64 = 250;

/// Which counter to sample on at `frequency` Hz: instructions where the
/// machine has a PMU; without one, CPU time — through CPU-clock timers up
/// to [`TIMER_MAX_HZ`], a task-clock perf event above; the CPU-clock
/// timers too where perf events are forbidden.
pub fn choose_mode(frequency: u64, open: impl FnMut(CounterMode) -> Result<()>) -> CounterMode {
    match choose_counter(open) {
        CounterSource::Perf(CounterMode::TaskClock, ()) if frequency <= TIMER_MAX_HZ => {
            CounterMode::ThreadCpuTime
        }
        CounterSource::Perf(mode, ()) => mode,
        CounterSource::ThreadClock => CounterMode::ThreadCpuTime,
    }
}

struct Shared {
    stop: AtomicBool,
    armed: Mutex<HashMap<i32, Armed>>,
    excluded: Mutex<HashSet<i32>>,
}

static BUFFER: OnceLock<SampleBuffer> = OnceLock::new();
static RUNNING: AtomicBool = AtomicBool::new(false);

fn gettid() -> i32 {
    #[allow(unsafe_code)]
    // SAFETY: gettid has no preconditions.
    unsafe {
        libc::syscall(libc::SYS_gettid) as i32
    }
}

/// A running sampler; stops when dropped.
pub struct Sampler {
    mode: CounterMode,
    period: u64,
    shared: Arc<Shared>,
    scanner: Option<JoinHandle<()>>,
    buffer: &'static SampleBuffer,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler")
            .field("mode", &self.mode)
            .field("period", &self.period)
            .finish()
    }
}

fn arm_thread(tid: i32, mode: CounterMode, period: u64) -> Result<Armed> {
    match mode {
        CounterMode::ThreadCpuTime => arm::timer(tid, period),
        perf => arm::perf(tid, perf, period),
    }
}

fn list_threads() -> Vec<i32> {
    std::fs::read_dir("/proc/self/task")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Threads the agent runs for itself: its own (`flameshift-…`) and the
/// HTTP client's runtime (`reqwest-internal-sync-runtime`, cut to the
/// kernel's 15 characters). Their CPU is the agent's, not the service's.
fn is_agent_thread(tid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
        .is_ok_and(|comm| comm.starts_with("flameshift-") || comm.starts_with("reqwest-interna"))
}

fn scan(shared: &Shared, mode: CounterMode, period: u64) {
    let live: HashSet<i32> = list_threads().into_iter().collect();
    let mut excluded = shared.excluded.lock().unwrap_or_else(|e| e.into_inner());
    // Threads gone are forgotten; the agent's own are found once (not by
    // reading their names at every scan).
    excluded.retain(|tid| live.contains(tid));
    let mut armed = shared.armed.lock().unwrap_or_else(|e| e.into_inner());
    armed.retain(|tid, _| live.contains(tid));
    let mut stacks_read = false;
    for &tid in &live {
        if armed.contains_key(&tid) || excluded.contains(&tid) {
            continue;
        }
        if is_agent_thread(tid) {
            excluded.insert(tid);
            continue;
        }
        if !stacks_read {
            // The new thread's stack must be in the handler's table before
            // its first signal.
            stacks::refresh();
            stacks_read = true;
        }
        match arm_thread(tid, mode, period) {
            Ok(a) => {
                armed.insert(tid, a);
            }
            Err(e) => tracing::debug!(tid, error = %e, "cannot arm a thread (it may have exited)"),
        }
    }
}

impl Sampler {
    /// Starts sampling every thread of this process. Fails if a sampler
    /// already runs or the signal handler cannot be installed; never
    /// fails for lack of perf events (it falls back to timers).
    pub fn start(config: &SamplerConfig) -> Result<Sampler> {
        if RUNNING.swap(true, Ordering::AcqRel) {
            return Err(Error::Io(std::io::Error::other(
                "a sampler already runs in this process",
            )));
        }
        let result = Self::start_inner(config);
        if result.is_err() {
            RUNNING.store(false, Ordering::Release);
        }
        result
    }

    fn start_inner(config: &SamplerConfig) -> Result<Sampler> {
        let frequency = config.frequency.clamp(1, 10_000);
        let period_for = |mode: CounterMode| match mode {
            CounterMode::Instructions => instruction_period(frequency),
            CounterMode::TaskClock | CounterMode::ThreadCpuTime => 1_000_000_000 / frequency,
        };
        let me = gettid();
        let mode = match config.mode {
            Some(mode) => mode,
            None => choose_mode(frequency, |mode| arm::perf(me, mode, period_for(mode)).map(drop)),
        };
        let period = period_for(mode);
        handler::install()?;
        let buffer = BUFFER.get_or_init(|| SampleBuffer::new(config.buffer_slots));
        // The buffer outlives samplers: samples a previous one took after
        // its last drain (another period, maybe) are not ours, nor are
        // pushes of threads a `fork` left behind. No handler writes yet
        // (`handler::BUFFER` is set below).
        buffer.restart();
        // What the handler reads. A reader, once the handler may hold it,
        // is never freed (a few dozen bytes per start).
        let python = config
            .python
            .map_or(std::ptr::null_mut(), |reader| Box::into_raw(Box::new(reader)));
        handler::PYTHON.store(python, Ordering::Release);
        handler::PERIOD.store(period, Ordering::Relaxed);
        handler::GENERATION.fetch_add(1, Ordering::Relaxed);
        handler::REARM.store(true, Ordering::Relaxed);
        handler::BUFFER.store(
            buffer as *const SampleBuffer as *mut SampleBuffer,
            Ordering::Release,
        );
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            armed: Mutex::new(HashMap::new()),
            excluded: Mutex::new(HashSet::new()),
        });
        scan(&shared, mode, period);
        let scanner = if config.scan_interval.is_zero() {
            None
        } else {
            let shared = shared.clone();
            let interval = config.scan_interval;
            let scanner = crate::quiet_thread::spawn("flameshift-scan", move || {
                shared
                    .excluded
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(gettid());
                shared
                    .armed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&gettid());
                while !shared.stop.load(Ordering::Relaxed) {
                    std::thread::sleep(interval);
                    scan(&shared, mode, period);
                }
            })?;
            Some(scanner)
        };
        tracing::info!(?mode, period, "in-process sampler started");
        Ok(Sampler {
            mode,
            period,
            shared,
            scanner,
            buffer,
        })
    }

    /// The counter it samples on.
    pub fn mode(&self) -> CounterMode {
        self.mode
    }

    /// Units each sample stands for.
    pub fn period(&self) -> u64 {
        self.period
    }

    /// Stops sampling the calling thread (the agent's own threads).
    pub fn exclude_current_thread(&self) {
        let tid = gettid();
        self.shared
            .excluded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tid);
        self.shared
            .armed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&tid);
    }

    /// Arms the threads started since the last scan (what the scanner
    /// thread does every `scan_interval`).
    pub fn scan(&self) {
        scan(&self.shared, self.mode, self.period);
    }

    /// Threads currently armed.
    pub fn threads(&self) -> usize {
        self.shared.armed.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Moves the samples taken so far into `out`.
    pub fn drain(&self, out: &mut Vec<RawSample>) {
        self.buffer.drain(out);
    }

    /// Hands each sample taken so far to `f` without copying it out.
    pub fn drain_each(&self, f: impl FnMut(SampleRef<'_>)) {
        self.buffer.drain_each(f);
    }

    /// Samples dropped because the buffer was full, since the process started.
    pub fn dropped(&self) -> u64 {
        self.buffer.dropped()
    }

    /// Python reads that made no sample, since the process started:
    /// signals of threads without a Python thread state, and torn reads.
    pub fn python_misses(&self) -> (u64, u64) {
        (
            handler::PYTHON_NOT_PYTHON.load(Ordering::Relaxed),
            handler::PYTHON_TORN.load(Ordering::Relaxed),
        )
    }

    /// In the child of a `fork`: the parent's sampler (its scanner thread
    /// and its timers) did not come along, and its `Sampler` is not to be
    /// dropped there (its threads cannot be joined); a new one may start.
    pub fn forget_after_fork() {
        handler::REARM.store(false, Ordering::Relaxed);
        handler::BUFFER.store(std::ptr::null_mut(), Ordering::Release);
        RUNNING.store(false, Ordering::Release);
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(scanner) = self.scanner.take() {
            let _ = scanner.join();
        }
        handler::REARM.store(false, Ordering::Relaxed);
        self.shared
            .armed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        handler::BUFFER.store(std::ptr::null_mut(), Ordering::Release);
        RUNNING.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_choice_follows_the_fallback_chain() {
        let unsupported = |m: CounterMode| Error::Unsupported(format!("{m:?}"));
        // A PMU: instructions, at any frequency.
        assert_eq!(choose_mode(99, |_| Ok(())), CounterMode::Instructions);
        assert_eq!(choose_mode(999, |_| Ok(())), CounterMode::Instructions);
        // No PMU: CPU-clock timers up to the tick rate, task-clock above.
        let no_pmu = |m: CounterMode| {
            if m == CounterMode::Instructions {
                Err(unsupported(m))
            } else {
                Ok(())
            }
        };
        assert_eq!(choose_mode(99, no_pmu), CounterMode::ThreadCpuTime);
        assert_eq!(choose_mode(TIMER_MAX_HZ, no_pmu), CounterMode::ThreadCpuTime);
        assert_eq!(choose_mode(TIMER_MAX_HZ + 1, no_pmu), CounterMode::TaskClock);
        assert_eq!(choose_mode(999, no_pmu), CounterMode::TaskClock);
        // perf events forbidden: the thread CPU clock timer, at any frequency.
        let forbidden = |_| {
            Err(Error::PerfOpen {
                event: "x".into(),
                message: "EACCES".into(),
            })
        };
        assert_eq!(choose_mode(99, forbidden), CounterMode::ThreadCpuTime);
        assert_eq!(choose_mode(999, forbidden), CounterMode::ThreadCpuTime);
        assert_eq!(instruction_period(99), 30_303_030);
    }
}
