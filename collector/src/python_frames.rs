//! Python frames in `record` and `attach` (feature `record`): each
//! sampled thread of a CPython 3.9–3.13 process has its Python stack
//! read ([`crate::cpython`]) as soon as its sample is drained from the
//! ring, and each call of the evaluator in the native stack
//! (`_PyEval_EvalFrameDefault`) is replaced by the Python frames it was
//! running ([`merge`]), as py-spy's `--native` does. A C extension's
//! frames (hashlib, json's accelerator) so stay under the Python
//! function that called them.
//!
//! The Python stack is read after the sample, not at it (the kernel
//! copies registers and the C stack at the sample; the interpreter's
//! frames live on the heap): the recorder wakes on every sample, so the
//! read follows it by the time it takes to wake, tens of microseconds
//! on an idle machine. A stack that changed meanwhile can have a
//! different number of evaluator calls than the native stack: then the
//! outermost calls are paired (the part of a stack that changes least)
//! and the sample is counted as aligned, not exact (the profile's
//! comments give both counts).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use flameshift_profile::FrameId;
use rustc_hash::FxHashMap;

use crate::cpython::naming::{frame_name, guess_short_file};
use crate::cpython::process::{Finder, NotRead};
use crate::cpython::{Thread, Walker};

/// Whether `record` and `attach` read Python frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PythonMode {
    /// In every CPython 3.9–3.13 process found; other processes keep
    /// native stacks, and a CPython of another version is named once.
    #[default]
    Auto,
    /// As `Auto`, and `attach` fails when its target is not such a
    /// CPython; `record` warns when none of its processes was.
    On,
    /// Native stacks only.
    Off,
}

/// A thread's Python stack as read: frame ids of [`PythonFrames::frame`],
/// innermost first, and where it splits into calls of the evaluator
/// ([`Walker::entries`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PythonStack {
    /// Frame ids, innermost first.
    pub frames: Vec<u32>,
    /// The index of each evaluator call's outermost frame.
    pub entries: Vec<usize>,
}

impl PythonStack {
    /// The evaluator calls' frames, outermost call first, each call's
    /// frames outermost first.
    pub fn calls(&self) -> Vec<Vec<u32>> {
        let mut calls = Vec::new();
        let mut from = 0;
        for &end in &self.entries {
            if end >= from && end < self.frames.len() {
                calls.push(self.frames[from..=end].iter().rev().copied().collect());
                from = end + 1;
            }
        }
        if from < self.frames.len() {
            calls.push(self.frames[from..].iter().rev().copied().collect());
        }
        calls.reverse();
        calls
    }
}

/// A Python frame as the profile shows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PythonFrame {
    /// `qualname (short file)`.
    pub name: String,
    /// The file as the code object has it.
    pub file: String,
    /// The function's first line.
    pub line: i32,
}

/// One process, as far as its Python frames go.
enum Process {
    Reading {
        walker: Box<Walker>,
        threads: Vec<Thread>,
        cwd: String,
    },
    /// Its interpreter is not started yet (or its thread list did not
    /// read as its threads): look again at `next`, then `wait` later.
    Waiting {
        next: Instant,
        wait: Duration,
    },
    NotRead,
    /// No CPython among its mappings yet: looked at again when it maps
    /// more code (a sample can come while the dynamic loader has not
    /// mapped libpython).
    NotPythonYet,
}

/// How a sample's stacks were put together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merged {
    /// As many evaluator calls in both stacks.
    Exact,
    /// Different counts (the Python stack moved on before it was read):
    /// paired from the outermost call.
    Aligned,
    /// The native stack has no evaluator call (the thread ran C code
    /// only): it is kept as it is.
    NativeOnly,
}

/// Counts for the profile's comments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Samples whose Python stack was read.
    pub read: u64,
    /// Reads that failed because the stack changed while it was read.
    pub torn: u64,
    /// Samples of a Python process's thread with no Python frames.
    pub without_python: u64,
    /// Merged with as many evaluator calls on both sides.
    pub exact: u64,
    /// Merged by pairing the outermost calls.
    pub aligned: u64,
    /// Samples drained too late to read their Python stack (more than
    /// [`MAX_LAG`] after them: the recorder was busy, or was finding the
    /// interpreter); they keep their native stack.
    pub late: u64,
    /// Time spent reading Python stacks (ns; finding interpreters aside).
    pub read_ns: u64,
}

/// The Python frames of the processes a recording samples.
pub struct PythonFrames {
    mode: PythonMode,
    finder: Finder,
    processes: HashMap<u32, Process>,
    frames: Vec<PythonFrame>,
    ids: FxHashMap<PythonFrame, u32>,
    /// What was found (`CPython 3.12 in 4242`) and what was said.
    found: Vec<String>,
    said: HashSet<String>,
    /// The counts so far.
    pub counts: Counts,
    /// How long after each sample its Python stack was read (ns; the
    /// first `LAGS_KEPT`).
    lags: Vec<u64>,
}

/// The most time between a sample and the read of its Python stack:
/// later, the stack read is too likely another moment's.
pub const MAX_LAG: Duration = Duration::from_millis(5);

/// How many lags are kept for the comment's percentiles.
const LAGS_KEPT: usize = 100_000;

/// How long to wait before looking again for an interpreter that has
/// not started: 20 ms, doubling up to a second.
const RETRY: Duration = Duration::from_millis(20);
const MAX_RETRY: Duration = Duration::from_secs(1);

impl PythonFrames {
    /// Reads nothing when `mode` is `Off`.
    pub fn new(mode: PythonMode) -> PythonFrames {
        PythonFrames {
            mode,
            finder: Finder::default(),
            processes: HashMap::new(),
            frames: Vec::new(),
            ids: FxHashMap::default(),
            found: Vec::new(),
            said: HashSet::new(),
            counts: Counts::default(),
            lags: Vec::new(),
        }
    }

    /// Whether frames are read at all.
    pub fn enabled(&self) -> bool {
        self.mode != PythonMode::Off
    }

    /// The frame of id `id`.
    pub fn frame(&self, id: u32) -> &PythonFrame {
        &self.frames[id as usize]
    }

    /// The interpreters found (`CPython 3.12 in process 4242`).
    pub fn found(&self) -> &[String] {
        &self.found
    }

    /// `pid` replaced its program (`exec`): look at it again.
    pub fn exec(&mut self, pid: u32) {
        self.processes.remove(&pid);
    }

    /// `pid` mapped more code: if no CPython was found in it so far, look
    /// again (libpython may be what it mapped).
    pub fn mapped(&mut self, pid: u32) {
        if matches!(self.processes.get(&pid), Some(Process::NotPythonYet)) {
            self.processes.remove(&pid);
        }
    }

    /// Looks for `pid`'s interpreter now; an error says why its frames
    /// are not read (`attach --python on` fails on it).
    pub fn find(&mut self, pid: u32) -> Result<(), NotRead> {
        match self.finder.find(pid) {
            Ok(found) => {
                let version = found.interpreter.version;
                let Some(walker) = Walker::new(found.interpreter, found.memory) else {
                    self.processes.insert(pid, Process::NotRead);
                    return Err(NotRead::LayoutMismatch { pid, version });
                };
                let cwd = std::fs::read_link(format!("/proc/{pid}/cwd"))
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let what = format!("CPython {}.{} in process {pid}", version.0, version.1);
                if !self.found.contains(&what) {
                    tracing::info!("reading the Python frames of {what}");
                    self.found.push(what);
                }
                self.processes.insert(
                    pid,
                    Process::Reading {
                        walker: Box::new(walker),
                        threads: Vec::new(),
                        cwd,
                    },
                );
                Ok(())
            }
            Err(why) => {
                let process = if why.is_transient() {
                    let wait = match self.processes.get(&pid) {
                        Some(Process::Waiting { wait, .. }) => (*wait * 2).min(MAX_RETRY),
                        _ => RETRY,
                    };
                    Process::Waiting {
                        next: Instant::now() + wait,
                        wait,
                    }
                } else if matches!(why, NotRead::NotPython(_)) {
                    Process::NotPythonYet
                } else {
                    Process::NotRead
                };
                self.processes.insert(pid, process);
                match &why {
                    NotRead::NotPython(_) | NotRead::Gone(_) => tracing::debug!("{why}"),
                    NotRead::NotStarted(_) => tracing::trace!("{why}"),
                    // Said once per kind of reason, not once per process
                    // (a server's workers all have the same).
                    _ => {
                        let key = match &why {
                            NotRead::Denied { .. } => "denied".to_owned(),
                            other => format!("{:?}", std::mem::discriminant(other)),
                        };
                        if self.said.insert(key) {
                            tracing::warn!("{why}");
                        }
                    }
                }
                Err(why)
            }
        }
    }

    /// The Python stack of thread `tid` of `pid` now, for its sample
    /// taken at `sample_ns` (CLOCK_MONOTONIC) (`None`: not a CPython this
    /// reads, a thread without Python frames, a read that tore, or a
    /// sample drained more than [`MAX_LAG`] ago).
    pub fn read(&mut self, pid: u32, tid: u32, sample_ns: u64) -> Option<PythonStack> {
        if !self.enabled() {
            return None;
        }
        let lag = crate::counters::clock_ns(libc::CLOCK_MONOTONIC).saturating_sub(sample_ns);
        if Duration::from_nanos(lag) > MAX_LAG
            && matches!(self.processes.get(&pid), Some(Process::Reading { .. }))
        {
            self.counts.late += 1;
            return None;
        }
        let due = match self.processes.get(&pid) {
            None => true,
            Some(Process::Waiting { next, .. }) => Instant::now() >= *next,
            Some(_) => false,
        };
        if due && self.find(pid).is_err() {
            return None;
        }
        let Some(Process::Reading { walker, threads, cwd }) = self.processes.get_mut(&pid) else {
            return None;
        };
        let started = Instant::now();
        let stack = Self::read_thread(
            walker,
            threads,
            cwd,
            tid,
            &mut self.frames,
            &mut self.ids,
            &mut self.counts,
        );
        self.counts.read_ns += started.elapsed().as_nanos() as u64;
        let stack = stack?;
        let lag = crate::counters::clock_ns(libc::CLOCK_MONOTONIC).saturating_sub(sample_ns);
        if Duration::from_nanos(lag) > MAX_LAG {
            // Found the interpreter only now: this sample is long past.
            self.counts.late += 1;
            return None;
        }
        self.counts.read += 1;
        if self.lags.len() < LAGS_KEPT {
            self.lags.push(lag);
        }
        Some(stack)
    }

    /// `tid`'s stack, read with `walker` (frames interned in `frames`).
    fn read_thread(
        walker: &mut Walker,
        threads: &mut Vec<Thread>,
        cwd: &str,
        tid: u32,
        frames: &mut Vec<PythonFrame>,
        ids: &mut FxHashMap<PythonFrame, u32>,
        counts: &mut Counts,
    ) -> Option<PythonStack> {
        if walker.threads(threads).is_err() {
            counts.torn += 1;
            return None;
        }
        let Some(thread) = threads.iter().find(|t| t.tid as u32 == tid).copied() else {
            counts.without_python += 1;
            return None;
        };
        let mut stack = PythonStack::default();
        let read = walker.stack(
            &thread,
            &mut |f| {
                let frame = PythonFrame {
                    name: frame_name(f.qualname, guess_short_file(f.filename, cwd)),
                    file: f.filename.to_owned(),
                    line: f.line,
                };
                *ids.entry(frame.clone()).or_insert_with(|| {
                    frames.push(frame);
                    frames.len() as u32 - 1
                })
            },
            &mut stack.frames,
        );
        if read.is_err() {
            counts.torn += 1;
            return None;
        }
        if stack.frames.is_empty() {
            counts.without_python += 1;
            return None;
        }
        stack.entries = walker.entries().to_vec();
        Some(stack)
    }

    /// What the profile's comments say of the Python frames (nothing
    /// when `auto` found no CPython; `--python on` without any CPython
    /// found is also warned of).
    pub fn comment(&self) -> Option<String> {
        if !self.enabled() {
            return None;
        }
        if self.mode == PythonMode::On && self.found.is_empty() {
            tracing::warn!("--python on: no CPython 3.9–3.13 was found among the processes sampled");
        }
        let c = self.counts;
        Some(if self.found.is_empty() {
            // `auto` on a program that is not Python says nothing.
            if self.mode == PythonMode::Auto {
                return None;
            }
            "python: no CPython 3.9–3.13 found".to_owned()
        } else {
            let mut lags = self.lags.clone();
            lags.sort_unstable();
            let at = |q: f64| {
                lags.get(((lags.len() as f64 - 1.0) * q).round() as usize)
                    .map_or(0, |&l| l / 1_000)
            };
            format!(
                "python: {} ({} samples with Python frames, read {} µs after the sample (median; 99th percentile {} µs) in {:.1} µs each: {} merged with as many evaluator calls, {} aligned from the outermost call; {} read too late, {} torn reads)",
                self.found.join(", "),
                c.read,
                at(0.5),
                at(0.99),
                c.read_ns as f64 / 1_000.0 / (c.read + c.late + c.torn).max(1) as f64,
                c.exact,
                c.aligned,
                c.late,
                c.torn
            )
        })
    }
}

/// Whether a native function is a call of CPython's evaluator.
pub fn is_evaluator(function: &str) -> bool {
    function.starts_with("_PyEval_EvalFrameDefault")
}

/// `native` (root first) with each evaluator call (`is_eval`) replaced
/// by the frames of the Python call it ran (`calls`, outermost first,
/// each root first), into `out`. With as many of each, call `i` replaces
/// evaluator frame `i`; otherwise the outermost are paired, further
/// Python calls all go to the innermost evaluator frame and further
/// evaluator frames stay native. A native stack without an evaluator
/// frame is kept as it is: the thread was not running Python code then.
pub fn merge(
    native: &[FrameId],
    is_eval: &mut dyn FnMut(FrameId) -> bool,
    calls: &[Vec<FrameId>],
    out: &mut Vec<FrameId>,
) -> Merged {
    out.clear();
    let evals: Vec<usize> = native
        .iter()
        .enumerate()
        .filter(|&(_, &f)| is_eval(f))
        .map(|(i, _)| i)
        .collect();
    if evals.is_empty() || calls.is_empty() {
        out.extend_from_slice(native);
        return Merged::NativeOnly;
    }
    let mut next_call = 0;
    for (i, &frame) in native.iter().enumerate() {
        match evals.iter().position(|&e| e == i) {
            Some(k) if next_call < calls.len() => {
                let last_eval = k + 1 == evals.len();
                let upto = if last_eval { calls.len() } else { next_call + 1 };
                for call in &calls[next_call..upto] {
                    out.extend_from_slice(call);
                }
                next_call = upto;
            }
            _ => out.push(frame),
        }
    }
    if evals.len() == calls.len() {
        Merged::Exact
    } else {
        Merged::Aligned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(id: u32) -> FrameId {
        FrameId(id)
    }

    /// Native frames 1xx, evaluator frames 9xx, Python frames 2xx.
    fn merged(native: &[u32], calls: &[&[u32]]) -> (Vec<u32>, Merged) {
        let native: Vec<FrameId> = native.iter().map(|&i| f(i)).collect();
        let calls: Vec<Vec<FrameId>> = calls.iter().map(|c| c.iter().map(|&i| f(i)).collect()).collect();
        let mut out = Vec::new();
        let how = merge(&native, &mut |f| f.0 >= 900, &calls, &mut out);
        (out.iter().map(|f| f.0).collect(), how)
    }

    #[test]
    fn each_evaluator_call_gives_way_to_its_python_frames() {
        // main → eval (module, outer) → sorted (C) → eval (lambda, leaf) → sha256 (C)
        let (out, how) = merged(&[100, 900, 101, 901, 102], &[&[200, 201], &[202, 203]]);
        assert_eq!(out, [100, 200, 201, 101, 202, 203, 102]);
        assert_eq!(how, Merged::Exact);
    }

    #[test]
    fn counts_that_differ_pair_the_outermost_calls() {
        // The Python stack entered one more call before it was read.
        let (out, how) = merged(&[100, 900, 101], &[&[200], &[201]]);
        assert_eq!(out, [100, 200, 201, 101]);
        assert_eq!(how, Merged::Aligned);
        // It returned from one: the inner evaluator frame stays native.
        let (out, how) = merged(&[100, 900, 101, 901, 102], &[&[200]]);
        assert_eq!(out, [100, 200, 101, 901, 102]);
        assert_eq!(how, Merged::Aligned);
    }

    #[test]
    fn a_thread_in_c_code_only_keeps_its_native_stack() {
        let (out, how) = merged(&[100, 101], &[&[200]]);
        assert_eq!(out, [100, 101]);
        assert_eq!(how, Merged::NativeOnly);
        let (out, how) = merged(&[100, 900], &[]);
        assert_eq!(out, [100, 900]);
        assert_eq!(how, Merged::NativeOnly);
    }

    #[test]
    fn a_stack_splits_into_its_evaluator_calls_outermost_first() {
        let stack = PythonStack {
            frames: vec![1, 2, 3, 4, 5],
            entries: vec![2, 4],
        };
        assert_eq!(stack.calls(), [vec![5, 4], vec![3, 2, 1]]);
        // 3.11 marks the outermost frame of each call; a stack read
        // without marks is one call.
        let plain = PythonStack {
            frames: vec![1, 2],
            entries: vec![],
        };
        assert_eq!(plain.calls(), [vec![2, 1]]);
        assert!(is_evaluator("_PyEval_EvalFrameDefault"));
        assert!(is_evaluator("_PyEval_EvalFrameDefault.cold"));
        assert!(!is_evaluator("PyEval_EvalCode"));
    }
}
