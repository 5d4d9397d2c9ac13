//! The interpreter's stacks, sampled from a Rust thread: every Python
//! thread's frames read from this process's own memory without the GIL
//! and without pausing anything, by the agent's own reader on CPython
//! 3.9 to 3.13 ([`flameshift_collector::cpython`]), else by py-spy used as
//! a library (`LockingStrategy::NonBlocking`). A stack read while it
//! changes can come out torn: such a sample is dropped.
//!
//! What each sample weighs: at every tick, a thread counts as found
//! running there when its CPU time moves while its stack is read, or
//! when it ran since the last tick and is runnable now (preempted: its
//! stack is where it stopped running); a thread blocked on I/O, a lock
//! or the GIL is not where its CPU goes. At each cut, the CPU each
//! thread used since the last one (its CPU clock, exact) is shared among
//! its running samples. So the profile's CPU is what the threads used,
//! found where they used it: a blocked thread adds nothing, and a
//! blocking call is not charged with the work done before it.
//! Ticks whose read the sampling thread spent off the CPU (preempted on
//! a busy machine) are not used: their stacks had moved on. A thread
//! found running while it moved from one request to another cannot be
//! labelled: that sample is not taken, and its share of the thread's
//! CPU is left out (not spread over the thread's other samples, which
//! are mostly mid-request: a function's rise would read smaller).
//!
//! The table is cut by the agent's collecting thread at each interval
//! ([`PythonSource`], a [`SampleSource`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use flameshift_collector::agent::SampleSource;
use flameshift_profile::{Profile, SampleType};
use rustc_hash::FxHashMap;

use crate::cpu::thread_cpu_ns;
use crate::endpoints::{Endpoints, Serving};
use crate::reader::{py_spy_reader, FrameIds, Reader};
use flameshift_collector::cpython::pthread::PthreadTids;
use flameshift_collector::cpython::{Interpreter, Memory, Walker};

/// A stack (root first, as frame ids) a thread was found running,
/// with the endpoint it was serving (none: no request).
type StackKey = (i32, Option<Arc<str>>, Vec<u32>);

/// A stack of an endpoint in a cut table, with its samples and CPU (ns).
type CutStack = ((Option<Arc<str>>, Vec<u32>), (i64, i64));

/// What was sampled since the last cut.
#[derive(Debug, Default)]
struct Table {
    /// Running samples per stack.
    stacks: FxHashMap<StackKey, i64>,
    /// Per thread: the CPU it used (ns) and its running samples. At the
    /// cut each thread's CPU is shared among its running samples, so
    /// that the profile's CPU is what the threads used, where they were
    /// found using it.
    threads: FxHashMap<i32, (u64, u64)>,
    samples: u64,
}

impl Table {
    /// The table cut: per stack and endpoint, samples and CPU (ns). The
    /// CPU of a thread that was never found running stays for the next
    /// cut.
    fn cut(&mut self) -> Vec<CutStack> {
        let stacks = std::mem::take(&mut self.stacks);
        let mut out: FxHashMap<_, (i64, i64)> = FxHashMap::default();
        for ((tid, endpoint, stack), count) in stacks {
            let (cpu, samples) = self.threads.get(&tid).copied().unwrap_or((0, 0));
            let weight = (cpu as f64 * count as f64 / samples.max(1) as f64).round() as i64;
            let entry = out.entry((endpoint, stack)).or_default();
            entry.0 += count;
            entry.1 += weight;
        }
        self.threads.retain(|_, (_, samples)| *samples == 0);
        self.samples = 0;
        out.into_iter().collect()
    }
}

/// What the sampling thread and the collecting thread share.
#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    table: Mutex<Table>,
    /// Every frame seen, by id (frames are few: a program's functions
    /// and lines).
    frames: Mutex<FrameIds>,
    /// What became of the reads.
    reads: Arc<ReadStats>,
}

/// What became of the sampling thread's reads: a profile's samples are
/// the running ones; the others say what its accuracy lost.
#[derive(Debug, Default)]
pub struct ReadStats {
    /// Ticks: reads of every thread's stack.
    pub ticks: AtomicU64,
    /// Ticks whose thread list could not be read.
    pub failed: AtomicU64,
    /// Ticks not used: the sampling thread was off the CPU during them.
    pub interrupted: AtomicU64,
    /// Threads found running: the samples.
    pub running: AtomicU64,
    /// Threads found not running (blocked, or waiting for a core).
    pub idle: AtomicU64,
    /// Threads found running whose stack changed under the read: their
    /// share of the CPU is left out.
    pub torn: AtomicU64,
    /// Threads found running while they moved from one request to
    /// another: their share of the CPU is left out.
    pub straddled: AtomicU64,
}

impl ReadStats {
    /// The counts, in the order of the fields.
    pub fn snapshot(&self) -> [u64; 7] {
        [
            &self.ticks,
            &self.failed,
            &self.interrupted,
            &self.running,
            &self.idle,
            &self.torn,
            &self.straddled,
        ]
        .map(|count| count.load(Ordering::Relaxed))
    }

    /// The names of [`ReadStats::snapshot`]'s counts.
    pub const NAMES: [&'static str; 7] = [
        "ticks",
        "failed",
        "interrupted",
        "running",
        "idle",
        "torn",
        "straddled",
    ];
}

/// How long a stack read may be held up off the CPU before its stacks
/// are not trusted.
const MAX_OFF_CPU_NS: u64 = 100_000;

/// Settings of the sampling thread.
#[derive(Debug, Clone)]
pub struct StackSettings {
    /// Ticks per second of wall time.
    pub frequency: u64,
    /// The interpreter's import paths (`sys.path`, absolute), to name
    /// files as imports do.
    pub import_paths: Vec<String>,
}

/// The sampling thread of this process's Python stacks, and the source
/// the agent cuts profiles from.
pub struct PythonSource {
    shared: Arc<Shared>,
    reader: &'static str,
    period_ns: i64,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for PythonSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PythonSource")
            .field("period_ns", &self.period_ns)
            .finish()
    }
}

impl PythonSource {
    /// Starts sampling this process's interpreter: read by the agent's
    /// own reader where `interpreter` is given (its layout known and
    /// checked), else by py-spy; an interpreter neither can read (an
    /// unsupported version) is an error naming why.
    pub fn start(
        settings: StackSettings,
        interpreter: Option<Interpreter>,
        endpoints: Arc<Endpoints>,
    ) -> Result<PythonSource, String> {
        let reader = match interpreter.and_then(|i| Walker::new(i, Memory::this_process())) {
            Some(walker) => Reader::Own {
                walker: Box::new(walker),
                threads: Vec::new(),
            },
            None => {
                let pthread_tids = PthreadTids::of(Memory::this_process());
                if pthread_tids.is_none() {
                    tracing::warn!(
                        "this C library's thread descriptors do not show where they keep their \
                         thread ids: threads whose interpreter keeps no id of its own (CPython \
                         3.9 and 3.10) are not sampled"
                    );
                }
                Reader::PySpy {
                    spy: Box::new(py_spy_reader()?),
                    pthread_tids,
                }
            }
        };
        let reader_name = reader.name();
        let shared = Arc::new(Shared::default());
        let frequency = settings.frequency.clamp(1, 1_000);
        let period = Duration::from_nanos(1_000_000_000 / frequency);
        let thread = {
            let shared = shared.clone();
            flameshift_collector::quiet_thread::spawn("flameshift-python-stacks", move || {
                sample(reader, period, &shared, &endpoints, &settings.import_paths)
            })
            .map_err(|e| format!("cannot start the sampling thread: {e}"))?
        };
        Ok(PythonSource {
            shared,
            reader: reader_name,
            period_ns: period.as_nanos() as i64,
            thread: Some(thread),
        })
    }

    /// What reads the stacks: `flameshift` (the agent's own reader) or
    /// `py-spy`.
    pub fn reader(&self) -> &'static str {
        self.reader
    }

    /// What became of the reads so far (shared: it goes on counting).
    pub fn read_stats(&self) -> Arc<ReadStats> {
        self.shared.reads.clone()
    }
}

impl Drop for PythonSource {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The sampling loop: every period (drawn in ½–1½ of it, so that work
/// repeating at the sampling rate is not always seen at one phase), each
/// Python thread's stack, weighed by its CPU time since its last sample.
fn sample(
    mut reader: Reader,
    period: Duration,
    shared: &Shared,
    endpoints: &Endpoints,
    import_paths: &[String],
) {
    let mut cpu_seen: FxHashMap<i32, (u64, Instant)> = FxHashMap::default();
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64 ^ u64::from(std::process::id());
    let mut stack = Vec::new();
    let mut traces = Vec::new();
    let own_tid = crate::cpu::current_tid();
    let mut ticks = 0u64;
    // Ticks fall due at deadlines a drawn period apart, not a drawn
    // period after the last tick's work: a sleep wakes late (the timer's
    // slack, a busy core), and sleeping from the end of each tick made
    // 999 Hz about 690 ticks a second here. A tick that falls due while
    // the last one still ran starts at once; deadlines more than a
    // period behind are given up (no burst to catch up after a stall).
    let mut due = Instant::now();
    while !shared.stop.load(Ordering::Acquire) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let jitter = 0.5 + (rng >> 11) as f64 / (1u64 << 53) as f64;
        due += period.mul_f64(jitter);
        let now = Instant::now();
        if due + period < now {
            due = now;
        }
        std::thread::sleep(due.saturating_duration_since(now));
        // Each known thread's CPU time just before its stack is read: a
        // thread whose CPU time moves while its stack is read is running
        // there (a thread waiting for a core, or blocked, is not).
        let before_read: FxHashMap<i32, (u64, Serving)> = cpu_seen
            .keys()
            .filter_map(|&tid| Some((tid, (thread_cpu_ns(tid)?, endpoints.of(tid)))))
            .collect();
        let (read_started, own_cpu) = (Instant::now(), thread_cpu_ns(own_tid));
        let reads = &shared.reads;
        reads.ticks.fetch_add(1, Ordering::Relaxed);
        // A read is memory copies that fail, never faults; a panic in it
        // (a defect) loses that tick, not the sampling thread.
        // A thread that used no CPU since the last tick (blocked all
        // along, as most of a server's threads are) has nothing to weigh:
        // its stack is not read. A thread not known yet is.
        let used_cpu = |tid: i32| match (before_read.get(&tid), cpu_seen.get(&tid)) {
            (Some((at_read, _)), Some((seen, _))) => at_read > seen,
            _ => true,
        };
        let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            reader.read(&shared.frames, import_paths, &used_cpu, &mut traces)
        }));
        if !matches!(read, Ok(Ok(()))) {
            reads.failed.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        // The stacks are read while their threads run: a read that this
        // thread spent off the CPU (preempted on a busy machine) saw
        // frames that had moved on, and would put the CPU of a function
        // on the one called after it. Its samples are not taken; the
        // CPU they would have weighed waits for the next read.
        let wall = read_started.elapsed().as_nanos() as u64;
        let on_cpu = thread_cpu_ns(own_tid)
            .zip(own_cpu)
            .map_or(wall, |(after, before)| after.saturating_sub(before));
        let off_cpu = wall.saturating_sub(on_cpu);
        if off_cpu > MAX_OFF_CPU_NS {
            reads.interrupted.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let now = Instant::now();
        for (tid, frames) in traces.drain(..) {
            let Some(cpu) = thread_cpu_ns(tid) else {
                continue;
            };
            // A thread's first sight sets where its CPU time counts from.
            let Some(&(before, _)) = cpu_seen.get(&tid) else {
                cpu_seen.insert(tid, (cpu, now));
                continue;
            };
            cpu_seen.insert(tid, (cpu, now));
            // Known before the read (its CPU time then, and what it
            // served), or it came up during it: nothing to compare yet.
            let Some((cpu_at_read, serving)) = before_read.get(&tid) else {
                continue;
            };
            // Taken only if the thread served the same request all
            // through the read: else the stack may be of one request and
            // the label of another.
            let (change, endpoint) = endpoints.of(tid);
            // Running during the read, or preempted (runnable, waiting
            // for a core) after running since the last tick: its stack
            // is then where it stopped running. On a busy machine the
            // sampling thread often takes the very core its threads run
            // on, and only counting threads that run during the read
            // found them in a third to two thirds of the ticks, in
            // long stretches, which made each interval's mix noisy.
            let found_running = cpu > *cpu_at_read || (cpu > before && crate::cpu::is_runnable(tid));
            // Found running between two requests, or with a stack torn
            // while read (its thread was calling or returning): its share
            // of the CPU is left out rather than piled onto the thread's
            // other samples (those would be mostly mid-request, or in
            // code that calls less, and a rise of a function there would
            // read smaller than it is).
            let (running, left_out) = match &frames {
                _ if !found_running => {
                    reads.idle.fetch_add(1, Ordering::Relaxed);
                    (false, false)
                }
                None => {
                    reads.torn.fetch_add(1, Ordering::Relaxed);
                    (false, true)
                }
                Some(_) if change != serving.0 => {
                    reads.straddled.fetch_add(1, Ordering::Relaxed);
                    (false, true)
                }
                // A thread running outside Python code (in the
                // interpreter's own start or end) has no stack to charge.
                Some(frames) if frames.is_empty() => {
                    reads.idle.fetch_add(1, Ordering::Relaxed);
                    (false, false)
                }
                Some(_) => {
                    reads.running.fetch_add(1, Ordering::Relaxed);
                    (true, false)
                }
            };
            let used = cpu.saturating_sub(before);
            if let (true, Some(frames)) = (running, &frames) {
                stack.clear();
                // Read innermost frame first; profiles list the root first.
                stack.extend(frames.iter().rev());
            }
            let mut table = shared.table.lock().unwrap_or_else(|e| e.into_inner());
            let thread = table.threads.entry(tid).or_default();
            thread.0 += used;
            if running {
                thread.1 += 1;
                table.samples += 1;
                *table.stacks.entry((tid, endpoint, stack.clone())).or_default() += 1;
            } else if left_out {
                thread.1 += 1;
            }
        }
        // Threads not seen for a minute have exited.
        ticks += 1;
        if ticks.is_multiple_of(1_000) {
            cpu_seen.retain(|_, (_, seen)| now.duration_since(*seen) < Duration::from_secs(60));
            endpoints.retain(|tid| thread_cpu_ns(tid).is_some());
        }
    }
}

impl SampleSource for PythonSource {
    fn drain(&mut self) {
        // The sampling thread adds to the table as it goes.
    }

    fn cut(&mut self) -> (Profile, u64) {
        let (stacks, samples) = {
            let mut table = self.shared.table.lock().unwrap_or_else(|e| e.into_inner());
            let samples = table.samples;
            let threads: Vec<(i32, u64, u64)> =
                table.threads.iter().map(|(t, (c, n))| (*t, *c, *n)).collect();
            let cut = table.cut();
            let weight: i64 = cut.iter().map(|(_, (_, w))| *w).sum();
            tracing::debug!(?threads, samples, weight, "cut");
            (cut, samples)
        };
        let frames = self.shared.frames.lock().unwrap_or_else(|e| e.into_inner());
        let profile = crate::profile::build(
            stacks
                .iter()
                .map(|((endpoint, ids), (count, weight))| (endpoint.as_deref(), ids.as_slice(), *count, *weight)),
            &frames,
            SampleType::new("cpu", "nanoseconds"),
            self.period_ns,
            format!(
                "flameshift Python agent: the interpreter's stacks every {} ns of wall time on average, each thread's CPU time shared among the samples that found it running",
                self.period_ns
            ),
        );
        (profile, samples)
    }
}
