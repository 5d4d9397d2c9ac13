//! The interpreter's stacks sampled by the threads themselves (CPython
//! 3.9 to 3.13): every thread gets `SIGPROF` about every period of its
//! own CPU time (a POSIX CPU-clock timer at up to 250 Hz, a task-clock
//! or instructions perf event above or where a PMU counts), as the Rust
//! agent's threads do ([`flameshift_collector::sampler`]); the signal
//! handler reads the thread's own Python frames (code-object addresses,
//! [`flameshift_collector::cpython::current`]) and the endpoint it
//! serves (the label set the request made current on it), and writes
//! them into the sampler's lock-free buffer. The collecting thread
//! drains that buffer every 100 ms and names the code objects
//! ([`Walker::name_codes`]: each read once, known by address after).
//!
//! What each sample weighs: the CPU time its thread used since its
//! previous sample (timers), or the counter's period (perf events). A
//! thread blocked on I/O, a lock or the GIL uses no CPU and gets no
//! signal; a sample is always of the thread that used the CPU, at the
//! instant it used it, with the label of the request it served then (no
//! other thread's view of it to go stale). What the sampling thread of
//! [`crate::stacks`] paid a tick to wake up and look (~60 µs of a core
//! at 99 Hz on this project's VM) is gone; a sample costs its signal
//! and a few copies on the sampled thread.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use flameshift_collector::agent::{SampleSource, SourceBuilder};
use flameshift_collector::cpython::current::CurrentThreadReader;
use flameshift_collector::cpython::naming::{frame_name, short_file};
use flameshift_collector::cpython::{Interpreter, Memory, Walker};
use flameshift_collector::labels::{resolve, LabelSetId};
use flameshift_collector::sampler::{Sampler, SamplerConfig};
use flameshift_profile::Profile;
use rustc_hash::FxHashMap;

use crate::reader::FrameIds;
use crate::stacks::ReadStats;

/// Slots of the sampler's buffer: drained every 100 ms, 1,024 hold 40
/// threads' samples at 250 Hz (each slot is ~1 KiB, touched in turn).
const BUFFER_SLOTS: usize = 1_024;

/// The sampled stacks of this process's Python threads, as the agent's
/// [`SampleSource`].
pub struct SignalSource {
    sampler: Sampler,
    walker: Walker,
    import_paths: Vec<String>,
    frames: FrameIds,
    /// Per (label set, frame ids root first): samples and cost.
    stacks: FxHashMap<(u32, Vec<u32>), (i64, i64)>,
    samples: u64,
    reads: Arc<ReadStats>,
    /// The handler's counts of reads that made no sample, as last counted
    /// into `reads` (process-wide since the process started).
    misses_counted: (u64, u64),
    ids: Vec<u32>,
}

impl std::fmt::Debug for SignalSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalSource")
            .field("sampler", &self.sampler)
            .finish()
    }
}

/// Starts sampling: the builder of the agent's source, and the counts of
/// what became of the reads (shared: they go on counting).
pub fn start(
    frequency: u64,
    interpreter: Interpreter,
    reader: CurrentThreadReader,
    import_paths: Vec<String>,
) -> Result<(SourceBuilder, Arc<ReadStats>), String> {
    let walker = Walker::new(interpreter, Memory::this_process()).ok_or_else(|| {
        format!(
            "no layout of CPython {}.{}",
            interpreter.version.0, interpreter.version.1
        )
    })?;
    let sampler = Sampler::start(&SamplerConfig {
        frequency,
        buffer_slots: BUFFER_SLOTS,
        python: Some(reader),
        // New threads are armed by the collecting thread at each drain
        // (every 100 ms), not by a thread of their own to wake up.
        scan_interval: std::time::Duration::ZERO,
        ..SamplerConfig::default()
    })
    .map_err(|e| format!("cannot start the sampler: {e}"))?;
    let reads = Arc::new(ReadStats::default());
    let mode = sampler.mode();
    let source = SignalSource {
        misses_counted: sampler.python_misses(),
        sampler,
        walker,
        import_paths,
        frames: FrameIds::default(),
        stacks: FxHashMap::default(),
        samples: 0,
        reads: reads.clone(),
        ids: Vec::new(),
    };
    let builder = SourceBuilder {
        mode,
        build: Box::new(move || Box::new(source) as Box<dyn SampleSource>),
    };
    Ok((builder, reads))
}

impl SignalSource {
    /// The handler's misses since the start into the read counts.
    fn count_misses(&mut self) {
        let (not_python, torn) = self.sampler.python_misses();
        let (not_python, torn) = (
            not_python.saturating_sub(self.misses_counted.0),
            torn.saturating_sub(self.misses_counted.1),
        );
        self.misses_counted.0 += not_python;
        self.misses_counted.1 += torn;
        self.reads.ticks.fetch_add(not_python + torn, Ordering::Relaxed);
        self.reads.idle.fetch_add(not_python, Ordering::Relaxed);
        self.reads.torn.fetch_add(torn, Ordering::Relaxed);
    }
}

impl SampleSource for SignalSource {
    fn on_collecting_thread(&mut self) {
        self.sampler.exclude_current_thread();
    }

    fn drain(&mut self) {
        self.sampler.scan();
        let SignalSource {
            sampler,
            walker,
            import_paths,
            frames,
            stacks,
            samples,
            reads,
            ids,
            ..
        } = self;
        sampler.drain_each(|sample| {
            reads.ticks.fetch_add(1, Ordering::Relaxed);
            let named = walker.name_codes(
                sample.frames,
                &mut |f| {
                    let name = frame_name(f.qualname, short_file(f.filename, import_paths));
                    frames.id((name, f.filename.to_owned(), f.line))
                },
                ids,
            );
            if named.is_err() {
                // A code object gone (or never one: a torn frame) before
                // it was named.
                reads.torn.fetch_add(1, Ordering::Relaxed);
                return;
            }
            reads.running.fetch_add(1, Ordering::Relaxed);
            // Read innermost first; profiles list the root first.
            ids.reverse();
            let entry = stacks.entry((sample.labels, ids.clone())).or_default();
            entry.0 += 1;
            entry.1 += i64::try_from(sample.weight).unwrap_or(i64::MAX);
            *samples += 1;
        });
        self.count_misses();
    }

    fn cut(&mut self) -> (Profile, u64) {
        let stacks = std::mem::take(&mut self.stacks);
        let samples = std::mem::take(&mut self.samples);
        let endpoints: FxHashMap<u32, Option<String>> = stacks
            .keys()
            .map(|(labels, _)| *labels)
            .map(|labels| {
                let set = resolve(LabelSetId(labels));
                (labels, set.get("endpoint").map(str::to_owned))
            })
            .collect();
        let (mode, period) = (self.sampler.mode(), self.sampler.period());
        let profile = crate::profile::build(
            stacks.iter().map(|((labels, ids), (count, weight))| {
                (
                    endpoints.get(labels).and_then(Option::as_deref),
                    ids.as_slice(),
                    *count,
                    *weight,
                )
            }),
            &self.frames,
            mode.sample_type(),
            i64::try_from(period).unwrap_or(i64::MAX),
            format!(
                "flameshift Python agent: each thread's Python stack read by the thread itself every {period} units of its {mode:?} on average (each period drawn in ½–1½ of it)"
            ),
        );
        (profile, samples)
    }

    fn dropped(&self) -> u64 {
        self.sampler.dropped()
    }
}
