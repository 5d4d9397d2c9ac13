//! `flameshift record -- CMD`: sample a command and its children with perf
//! events, then build a profile (feature `record`).
//!
//! ```no_run
//! use flameshift_collector::recorder::{record, RecordOptions};
//! let recording = record(&["sleep".into(), "1".into()], &RecordOptions::default())?;
//! println!("{} samples", recording.profile.samples().len());
//! # Ok::<(), flameshift_collector::Error>(())
//! ```
//!
//! Length: over 600 lines with its tests: one recording loop (open, read the rings, resolve, build the profile) whose state would only be spread thinner by a split; its tests are the last 90 lines.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use flameshift_profile::{Frame, FrameId, LabelSetId, Profile, SampleType};

use crate::perf::event::{self, CallGraph, EventChoice, EventKind, EventOptions, Rate};
use crate::perf::records::{self, Record, SampleFormat};
use crate::perf::ring::Ring;
use crate::python_frames::{self, Merged, PythonFrames, PythonMode, PythonStack};
use crate::symbolize::{Location, Maps, Resolver};
use crate::unwind::DwarfUnwinder;
use crate::{Error, Result};

/// How to record.
#[derive(Debug, Clone)]
pub struct RecordOptions {
    /// Which event.
    pub event: EventChoice,
    /// How often.
    pub rate: Rate,
    /// Ring buffer size per CPU, as log2 of pages (default 9: 2 MiB, room
    /// for a hundred DWARF samples of up to 16 KiB between two reads).
    pub pages_log2: u32,
    /// How stacks are walked.
    pub call_graph: CallGraph,
    /// Whether Python frames are read and merged into native stacks.
    pub python: PythonMode,
    /// Called once sampling runs (events open; for `record`, the command
    /// started), e.g. to say so; not called when starting fails.
    pub on_start: Option<fn(&Started)>,
}

/// What a recording started on, for [`RecordOptions::on_start`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// The process sampled (for `record`, the command's).
    pub pid: u32,
    /// Its command line.
    pub command: String,
    /// The event chosen.
    pub event: EventKind,
    /// How often.
    pub rate: Rate,
}

impl Default for RecordOptions {
    fn default() -> Self {
        RecordOptions {
            event: EventChoice::Auto,
            rate: Rate::Frequency(99),
            pages_log2: 9,
            call_graph: CallGraph::Auto,
            python: PythonMode::Auto,
            on_start: None,
        }
    }
}

/// A finished recording.
#[derive(Debug)]
pub struct Recording {
    /// The profile: `samples/count` and the event's unit.
    pub profile: Profile,
    /// How the command ended.
    pub status: ExitStatus,
    /// The event that was used.
    pub event: EventKind,
    /// Records the kernel dropped because a buffer was full.
    pub lost: u64,
    /// What became of Python frames (`None`: not read, `--python off`).
    pub python: Option<String>,
}

/// One sample, its addresses already located in the mappings of that moment.
struct RawSample {
    pid: u32,
    tid: u32,
    period: u64,
    stack: Vec<Location>,
    /// Its thread's Python stack, read when the sample was drained.
    python: Option<PythonStack>,
}

/// Every record of every CPU's buffer, replayed in time order at the end:
/// each CPU's buffer is in order, but an mmap on one CPU may be read after
/// samples on another that need it.
struct Collector {
    format: SampleFormat,
    call_graph: CallGraph,
    records: Vec<(u64, Record)>,
    maps: Maps,
    unwinder: DwarfUnwinder,
    comms: HashMap<u32, String>,
    samples: Vec<RawSample>,
    lost: u64,
    /// Samples whose stack came from DWARF unwinding / from frame pointers.
    dwarf_stacks: u64,
    fp_stacks: u64,
    /// Python frames, and the stacks read for samples not replayed yet
    /// (by thread and time).
    python: PythonFrames,
    python_stacks: HashMap<(u32, u64), PythonStack>,
    /// When the last sample whose Python stack was read was taken.
    last_python_sample: Option<u64>,
}

impl Collector {
    fn new(call_graph: CallGraph, python: PythonMode) -> Self {
        Collector {
            format: call_graph.sample_format(),
            call_graph,
            records: Vec::new(),
            maps: Maps::default(),
            unwinder: DwarfUnwinder::default(),
            comms: HashMap::new(),
            samples: Vec::new(),
            lost: 0,
            dwarf_stacks: 0,
            fp_stacks: 0,
            python: PythonFrames::new(python),
            python_stacks: HashMap::new(),
            last_python_sample: None,
        }
    }

    /// The stack of a sample by the chosen method. With `Auto`: the DWARF
    /// stack when unwinding reached the outermost frame; otherwise (no
    /// unwind tables, a stack deeper than the copy) the longer of the two.
    /// Frame pointers are not trusted over a complete DWARF walk: in code
    /// built without them, the frame-pointer register holds stale values
    /// that make plausible-looking but wrong stacks.
    /// Return addresses outside every mapping are dropped from DWARF stacks.
    fn choose_stack(&mut self, pid: u32, callchain: Vec<u64>, regs: &[u64], stack: &[u8]) -> Vec<u64> {
        if self.call_graph == CallGraph::FramePointers || regs.is_empty() {
            self.fp_stacks += 1;
            return callchain;
        }
        let (mut dwarf, complete) = self.unwinder.unwind(pid, &self.maps, regs, stack);
        tracing::trace!(pid, ?dwarf, complete, ?callchain, "unwound");
        let maps = &self.maps;
        let mut first = true;
        dwarf.retain(|&addr| std::mem::take(&mut first) || maps.is_mapped(pid, addr));
        let use_dwarf = self.call_graph == CallGraph::Dwarf || complete || dwarf.len() > callchain.len();
        if use_dwarf && !dwarf.is_empty() {
            self.dwarf_stacks += 1;
            dwarf
        } else if use_dwarf {
            self.dwarf_stacks += 1;
            callchain.into_iter().take(1).collect()
        } else {
            self.fp_stacks += 1;
            callchain
        }
    }

    fn on_bytes(&mut self, bytes: &[u8]) {
        match records::parse(bytes, self.format) {
            Some(Record::Other) => {}
            Some(Record::Lost { count }) => self.lost += count,
            Some(record) => {
                // The Python stack is read now, as close to the sample as
                // the recorder gets (see `python_frames`).
                match &record {
                    Record::Sample { pid, tid, time, .. } => {
                        if let Some(stack) = self.python.read(*pid, *tid, *time) {
                            self.python_stacks.insert((*tid, *time), stack);
                            self.last_python_sample = Some(*time);
                        }
                    }
                    Record::Comm { pid, exec: true, .. } => self.python.exec(*pid),
                    Record::Mmap { pid, .. } => self.python.mapped(*pid),
                    _ => {}
                }
                self.records.push((records::time(bytes, &record), record))
            }
            None => tracing::debug!(len = bytes.len(), "skipped a malformed perf record"),
        }
    }

    fn replay(&mut self) {
        self.replay_before(u64::MAX);
    }

    /// Replays, in time order, the records stamped before `watermark`
    /// and keeps the rest for later. Samples are reduced to their located
    /// stack as they are replayed, so the stack copies of DWARF mode are
    /// held only until the next pump, not for the whole recording.
    fn replay_before(&mut self, watermark: u64) {
        self.records.sort_by_key(|(time, _)| *time); // stable: equal times keep buffer order
        let split = self.records.partition_point(|(time, _)| *time < watermark);
        let later = self.records.split_off(split);
        let ready = std::mem::replace(&mut self.records, later);
        for (_, record) in ready {
            self.on_record(record);
        }
    }

    fn on_record(&mut self, record: Record) {
        match record {
            Record::Sample {
                pid,
                tid,
                time,
                period,
                callchain,
                regs,
                stack,
            } => {
                let chain = self.choose_stack(pid, callchain, &regs, &stack);
                let stack = chain
                    .iter()
                    .enumerate()
                    // Callers' entries are return addresses: look one byte
                    // back, into the call instruction.
                    .map(|(i, &ip)| {
                        self.maps
                            .locate_with_jit(pid, if i == 0 { ip } else { ip.saturating_sub(1) })
                    })
                    .collect();
                self.samples.push(RawSample {
                    pid,
                    tid,
                    period,
                    stack,
                    python: self.python_stacks.remove(&(tid, time)),
                });
            }
            Record::Mmap {
                pid,
                start,
                len,
                pgoff,
                path,
            } => {
                self.maps.mmap(pid, start, len, pgoff, &path);
                self.unwinder.invalidate(pid);
            }
            Record::Comm { pid, tid, comm, exec } => {
                if exec {
                    self.maps.exec(pid);
                    self.unwinder.invalidate(pid);
                }
                self.comms.insert(tid, comm);
            }
            Record::Fork { pid, ppid, tid } => {
                self.maps.fork(pid, ppid);
                if let Some(comm) = self.comms.get(&ppid).cloned() {
                    self.comms.entry(tid).or_insert(comm);
                }
            }
            Record::Lost { .. } | Record::Exit { .. } | Record::Other => {}
        }
    }

    /// The profile, and what became of Python frames.
    fn into_profile(mut self, kind: EventKind, comments: Vec<String>) -> (Profile, Option<String>) {
        let mut profile = Profile::new(vec![SampleType::new("samples", "count"), kind.sample_type()]);
        profile.comments = comments;
        let mut resolver = Resolver::default();
        resolver.prepare(
            &mut profile,
            self.samples.iter().flat_map(|s| s.stack.iter().cloned()),
        );
        let mut labels: HashMap<(u32, u32), LabelSetId> = HashMap::new();
        let mut frames = Vec::new();
        let mut merged = Vec::new();
        let mut python_ids: Vec<Option<FrameId>> = Vec::new();
        let mut evaluators: HashMap<FrameId, bool> = HashMap::new();
        for sample in &self.samples {
            frames.clear();
            for location in sample.stack.iter().rev() {
                frames.extend_from_slice(resolver.frames(location));
            }
            if let Some(python) = &sample.python {
                let calls: Vec<Vec<FrameId>> = python
                    .calls()
                    .iter()
                    .map(|call| {
                        call.iter()
                            .map(|&id| python_frame(&mut profile, &self.python, &mut python_ids, id))
                            .collect()
                    })
                    .collect();
                let mut is_eval = |frame: FrameId| {
                    *evaluators
                        .entry(frame)
                        .or_insert_with(|| python_frames::is_evaluator(&profile.frame_name(frame)))
                };
                match python_frames::merge(&frames, &mut is_eval, &calls, &mut merged) {
                    Merged::Exact => self.python.counts.exact += 1,
                    Merged::Aligned => self.python.counts.aligned += 1,
                    Merged::NativeOnly => {}
                }
                std::mem::swap(&mut frames, &mut merged);
            }
            let stack = profile.intern_stack(&frames);
            let label_set = *labels.entry((sample.pid, sample.tid)).or_insert_with(|| {
                let mut set = vec![
                    profile.num_label("pid", i64::from(sample.pid), ""),
                    profile.num_label("tid", i64::from(sample.tid), ""),
                ];
                if let Some(comm) = self.comms.get(&sample.tid) {
                    set.push(profile.str_label("thread", comm));
                }
                profile.intern_labels(set)
            });
            profile.push_sample(stack, label_set, &[1, sample.period as i64]);
        }
        let python = self.python.comment();
        profile.comments.extend(python.clone());
        (profile, python)
    }
}

/// The profile's frame of Python frame `id` (interned the first time).
fn python_frame(
    profile: &mut Profile,
    python: &PythonFrames,
    ids: &mut Vec<Option<FrameId>>,
    id: u32,
) -> FrameId {
    let index = id as usize;
    if ids.len() <= index {
        ids.resize(index + 1, None);
    }
    *ids[index].get_or_insert_with(|| {
        let frame = python.frame(id);
        let function = profile.intern_str(&frame.name);
        let file = profile.intern_str(&frame.file);
        profile.intern_frame(Frame {
            function,
            file,
            line: u32::try_from(frame.line).unwrap_or(0),
            ..Frame::default()
        })
    })
}

/// Open events, their ring buffers, and what has been read from them.
struct Session {
    kind: EventKind,
    rings: Vec<Ring>,
    /// Events whose output is redirected into one of `rings`.
    _redirected: Vec<std::os::fd::OwnedFd>,
    collector: Collector,
    /// The time between two samples of a running thread (ns), where
    /// the event counts time at a known rate (cpu-clock by frequency
    /// or period); `None` when Python stacks are not read.
    spin_period: Option<u64>,
}

impl Session {
    /// Waits up to `timeout` for data, then reads every buffer.
    fn pump(&mut self, timeout: Duration) {
        if let Some(due) = self.next_python_sample() {
            self.wait_for_sample(due, timeout);
        } else {
            wait_readable(&self.rings, timeout);
        }
        // Every record stamped before this instant is already in its ring
        // (the kernel writes records as events happen), so once all rings
        // are drained, everything before it can be replayed in order.
        let watermark = monotonic_ns();
        for ring in &mut self.rings {
            ring.drain(|bytes| self.collector.on_bytes(bytes));
        }
        self.collector.replay_before(watermark);
    }

    /// When the next sample of a Python thread is due (CLOCK_MONOTONIC
    /// ns), if Python stacks are read and samples come at a known rate
    /// of CPU time: a thread that keeps running is sampled every period.
    fn next_python_sample(&self) -> Option<u64> {
        let last = self.collector.last_python_sample?;
        let period = self.spin_period?;
        let now = monotonic_ns();
        // No Python sample for a few periods: its threads are blocked
        // (an idle server); the next sample wakes the recorder as usual.
        if now > last + IDLE_PERIODS * period {
            return None;
        }
        let window = spin_window(period);
        // The first due time not yet past its window.
        let behind = now.saturating_sub(last + window) / period + 1;
        Some(last + behind * period)
    }

    /// Sleeps until shortly before `due`, then polls the rings without
    /// sleeping until a record comes or shortly after `due`: a Python
    /// stack read right after its sample, not after the scheduler woke
    /// the recorder (~130 µs on this machine's VM, against ~25 µs).
    /// Costs at most two windows of CPU per period (`spin_window`).
    fn wait_for_sample(&self, due: u64, timeout: Duration) {
        let window = self.spin_period.map_or(0, spin_window);
        let now = monotonic_ns();
        let wake = due.saturating_sub(window);
        if wake > now {
            let sleep = Duration::from_nanos(wake - now).min(timeout);
            if wait_readable(&self.rings, sleep) || sleep == timeout {
                return;
            }
        }
        while monotonic_ns() < due + window {
            if wait_readable(&self.rings, Duration::ZERO) {
                return;
            }
            std::hint::spin_loop();
        }
    }

    /// Stops sampling, reads what is left and builds the profile.
    fn finish(mut self, rate: Rate, mut comments: Vec<String>) -> (Profile, u64, Option<String>) {
        for ring in &mut self.rings {
            ring.disable();
            ring.drain(|bytes| self.collector.on_bytes(bytes));
        }
        self.collector.replay();
        let (dwarf, fp) = (self.collector.dwarf_stacks, self.collector.fp_stacks);
        comments.push(format!(
            "stacks: {dwarf} unwound with DWARF, {fp} from frame pointers"
        ));
        let lost = self.collector.lost;
        if lost > 0 {
            tracing::warn!(
                lost,
                "the kernel dropped records; lower -F or use --call-graph fp"
            );
            comments.push(format!("lost {lost} records"));
        }
        let kind = self.kind;
        let (mut profile, python) = self.collector.into_profile(kind, comments);
        profile.default_sample_type = Some(1);
        if let Rate::Period(p) = rate {
            profile.period = Some(flameshift_profile::Period {
                kind: kind.sample_type(),
                value: p as i64,
            });
        }
        (profile, lost, python)
    }
}

fn describe(kind: EventKind, options: &RecordOptions) -> String {
    let rate = match options.rate {
        Rate::Frequency(hz) => format!("{hz} Hz"),
        Rate::Period(p) => format!("every {p}"),
    };
    let call_graph = match options.call_graph {
        CallGraph::FramePointers => "fp",
        CallGraph::Dwarf => "dwarf",
        CallGraph::Auto => "auto",
    };
    format!(
        "event: {} ({rate}), user space, --call-graph {call_graph}",
        kind.name()
    )
}

/// The event settings both `record` and `attach` use: inherited by new
/// threads and processes, switched on at `exec` for `record`.
fn event_options(kind: EventKind, options: &RecordOptions, enable_on_exec: bool) -> EventOptions {
    EventOptions {
        kind,
        rate: options.rate,
        inherit: true,
        enable_on_exec,
        call_graph: options.call_graph,
        // Python stacks are read when a sample is drained: wake on each.
        wake_every: if options.python == PythonMode::Off { 64 } else { 1 },
    }
}

/// Runs `command` and samples it (and every thread and child process it
/// starts) until it exits. Ctrl-C reaches the command, not us: the
/// recording ends when the command does, and keeps what was collected.
pub fn record(command: &[OsString], options: &RecordOptions) -> Result<Recording> {
    let Some((program, args)) = command.split_first() else {
        return Err(Error::Spawn {
            command: String::new(),
            error: std::io::Error::new(std::io::ErrorKind::InvalidInput, "no command given"),
        });
    };
    let cpus = online_cpus();
    // The events follow this thread's future children and switch on when
    // the child calls exec: nothing of flameshift itself is recorded.
    let event_options = |kind| event_options(kind, options, true);
    let (kind, first) = event::choose(options.event, |kind| {
        event::open(&event_options(kind), 0, cpus[0])
    })?;
    let mut rings = vec![Ring::new(first, options.pages_log2)?];
    for &cpu in &cpus[1..] {
        rings.push(Ring::new(
            event::open(&event_options(kind), 0, cpu)?,
            options.pages_log2,
        )?);
    }
    let mut session = Session {
        kind,
        rings,
        _redirected: Vec::new(),
        collector: Collector::new(options.call_graph, options.python),
        spin_period: spin_period(kind, options),
    };
    let command_line = command
        .iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new(program)
        .args(args)
        .spawn()
        .map_err(|error| Error::Spawn {
            command: command_line.clone(),
            error,
        })?;
    if let Some(on_start) = options.on_start {
        on_start(&Started {
            pid: child.id(),
            command: command_line.clone(),
            event: kind,
            rate: options.rate,
        });
    }
    let status = loop {
        session.pump(Duration::from_millis(100));
        if let Some(status) = child.try_wait()? {
            break status;
        }
    };
    let comments = vec![
        format!("flameshift record -- {command_line}"),
        describe(kind, options),
    ];
    let (profile, lost, python) = session.finish(options.rate, comments);
    Ok(Recording {
        profile,
        status,
        event: kind,
        lost,
        python,
    })
}

/// A finished attachment to a running process.
#[derive(Debug)]
pub struct Attachment {
    /// The profile.
    pub profile: Profile,
    /// The event that was used.
    pub event: EventKind,
    /// Records the kernel dropped.
    pub lost: u64,
    /// Whether the process exited while we were attached.
    pub target_exited: bool,
    /// What became of Python frames (`None`: not read, `--python off`).
    pub python: Option<String>,
}

/// Samples the running process `pid` (all its threads, and threads and
/// children they start) until `stop` is set, `duration` passes or the
/// process exits, whichever comes first; keeps what was collected.
pub fn attach(
    pid: u32,
    options: &RecordOptions,
    duration: Option<Duration>,
    stop: &AtomicBool,
) -> Result<Attachment> {
    let tids = threads_of(pid)?;
    let mut python = PythonFrames::new(options.python);
    if python.enabled() {
        match python.find(pid) {
            Err(why) if options.python == PythonMode::On => return Err(Error::Python(why)),
            _ => {}
        }
    }
    let cpus = online_cpus();
    let event_options = |kind| event_options(kind, options, false);
    let (kind, first) = event::choose(options.event, |kind| {
        event::open(&event_options(kind), tids[0] as i32, cpus[0])
    })?;
    let mut firsts = vec![Some(first)];
    firsts.extend(cpus[1..].iter().map(|_| None));
    let mut rings = Vec::with_capacity(cpus.len());
    let mut redirected = Vec::new();
    for (i, &cpu) in cpus.iter().enumerate() {
        let mut ring: Option<Ring> = None;
        for (j, &tid) in tids.iter().enumerate() {
            let fd = match (i, j) {
                (0, 0) => firsts[0].take().expect("opened above"),
                _ => match event::open(&event_options(kind), tid as i32, cpu) {
                    Ok(fd) => fd,
                    // A thread that exited since we listed it.
                    Err(Error::PerfOpen { message, .. }) if message.contains("No such process") => continue,
                    Err(e) => return Err(e),
                },
            };
            match &ring {
                None => ring = Some(Ring::new(fd, options.pages_log2)?),
                Some(r) => {
                    crate::perf::ring::redirect(&fd, r)?;
                    redirected.push(fd);
                }
            }
        }
        rings.extend(ring);
    }
    let mut session = Session {
        kind,
        rings,
        _redirected: redirected,
        collector: Collector::new(options.call_graph, options.python),
        spin_period: spin_period(kind, options),
    };
    session.collector.python = python;
    synthesize_existing(pid, &tids, &mut session.collector);
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " ").trim().to_owned())
        .unwrap_or_default();
    if let Some(on_start) = options.on_start {
        on_start(&Started {
            pid,
            command: cmdline.clone(),
            event: kind,
            rate: options.rate,
        });
    }
    let started = std::time::Instant::now();
    let mut target_exited = false;
    while !stop.load(Ordering::Relaxed) && duration.is_none_or(|d| started.elapsed() < d) {
        session.pump(Duration::from_millis(100));
        if !is_running(pid) {
            target_exited = true;
            break;
        }
    }
    let comments = vec![
        format!("flameshift attach --pid {pid} ({cmdline})"),
        describe(kind, options),
    ];
    let (profile, lost, python) = session.finish(options.rate, comments);
    Ok(Attachment {
        profile,
        event: kind,
        lost,
        target_exited,
        python,
    })
}

/// Whether `pid` still runs: it exists and is not a zombie waiting for its
/// parent to reap it.
fn is_running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) S ...`: the comm may contain spaces and parentheses.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, None | Some('Z' | 'X'))
}

/// The thread ids of a process, main thread first.
fn threads_of(pid: u32) -> Result<Vec<u32>> {
    let dir = format!("/proc/{pid}/task");
    let entries = std::fs::read_dir(&dir).map_err(|_| Error::NoSuchProcess(pid))?;
    let mut tids: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_unstable_by_key(|&t| (t != pid, t));
    if tids.is_empty() {
        return Err(Error::NoSuchProcess(pid));
    }
    Ok(tids)
}

/// The kernel reports only new mappings and names: the ones a running
/// process already has come from /proc, stamped at time 0 so that they
/// replay before every sample.
fn synthesize_existing(pid: u32, tids: &[u32], collector: &mut Collector) {
    if let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) {
        for mut mapping in parse_proc_maps(&maps) {
            if let Record::Mmap { pid: owner, .. } = &mut mapping {
                *owner = pid;
            }
            collector.records.push((0, mapping));
        }
    }
    for &tid in tids {
        if let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm")) {
            collector.records.push((
                0,
                Record::Comm {
                    pid,
                    tid,
                    comm: comm.trim_end().to_owned(),
                    exec: false,
                },
            ));
        }
    }
}

/// Executable mappings of a `/proc/PID/maps` text, as MMAP records (pid 0).
fn parse_proc_maps(text: &str) -> Vec<Record> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (range, perms, offset) = (fields.next()?, fields.next()?, fields.next()?);
            let path = fields.nth(2).unwrap_or("");
            if !perms.contains('x') {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            let start = u64::from_str_radix(start, 16).ok()?;
            let end = u64::from_str_radix(end, 16).ok()?;
            Some(Record::Mmap {
                pid: 0,
                start,
                len: end.saturating_sub(start),
                pgoff: u64::from_str_radix(offset, 16).ok()?,
                path: path.to_owned(),
            })
        })
        .collect()
}

/// The CPUs that are online, from `/sys/devices/system/cpu/online`
/// (`0-3,5`), falling back to `0..available_parallelism`.
fn online_cpus() -> Vec<i32> {
    let parsed = std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|text| {
            let mut cpus = Vec::new();
            for part in text.trim().split(',') {
                match part.split_once('-') {
                    Some((a, b)) => cpus.extend(a.parse::<i32>().ok()?..=b.parse::<i32>().ok()?),
                    None => cpus.push(part.parse().ok()?),
                }
            }
            (!cpus.is_empty()).then_some(cpus)
        });
    parsed.unwrap_or_else(|| {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        (0..n as i32).collect()
    })
}

/// Now on CLOCK_MONOTONIC, in ns: the clock the events stamp records with.
fn monotonic_ns() -> u64 {
    crate::counters::clock_ns(libc::CLOCK_MONOTONIC)
}

/// The time between two samples of a thread that keeps running (ns),
/// when Python stacks are read and the rate says it.
fn spin_period(kind: EventKind, options: &RecordOptions) -> Option<u64> {
    if options.python == PythonMode::Off {
        return None;
    }
    match (options.rate, kind) {
        (Rate::Frequency(hz), _) => Some(1_000_000_000 / hz.max(1)),
        (Rate::Period(ns), EventKind::CpuClock) => Some(ns),
        (Rate::Period(_), EventKind::Instructions) => None,
    }
}

/// How many periods without a Python sample end the polling around due
/// samples.
const IDLE_PERIODS: u64 = 4;

/// How long before and after a due sample the recorder polls without
/// sleeping: 250 µs, or an eighth of the period at high rates.
fn spin_window(period: u64) -> u64 {
    (period / 8).min(250_000)
}

/// Waits until some ring has data or `timeout` passes; whether one has.
fn wait_readable(rings: &[Ring], timeout: Duration) -> bool {
    let mut fds: Vec<libc::pollfd> = rings
        .iter()
        .map(|r| libc::pollfd {
            fd: r.fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    poll(&mut fds, timeout) > 0
}

#[allow(unsafe_code)]
fn poll(fds: &mut [libc::pollfd], timeout: Duration) -> i32 {
    // ppoll, not poll: a wait of 300 µs is 300 µs, not a millisecond.
    let timeout = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: `fds` is a valid, exclusively borrowed array of pollfd of the
    // length passed; ppoll only writes `revents`; `timeout` outlives the
    // call and no signal mask is passed.
    unsafe {
        libc::ppoll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            &timeout,
            std::ptr::null(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_maps_keep_executable_mappings_only() {
        let text = "\
55d0a000-55d0b000 r--p 00000000 08:01 123 /usr/bin/app
55d0b000-55d0f000 r-xp 00001000 08:01 123 /usr/bin/app
7ffd1000-7ffd3000 r-xp 00000000 00:00 0 [vdso]
7f000000-7f001000 rw-p 00000000 00:00 0
";
        let maps = parse_proc_maps(text);
        assert_eq!(maps.len(), 2);
        assert_eq!(
            maps[0],
            Record::Mmap {
                pid: 0,
                start: 0x55d0b000,
                len: 0x4000,
                pgoff: 0x1000,
                path: "/usr/bin/app".into()
            }
        );
        assert_eq!(
            maps[1],
            Record::Mmap {
                pid: 0,
                start: 0x7ffd1000,
                len: 0x2000,
                pgoff: 0,
                path: "[vdso]".into()
            }
        );
    }

    #[test]
    fn this_process_is_running_and_a_reaped_child_is_not() {
        assert!(is_running(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!is_running(pid));
    }

    #[test]
    fn replay_is_in_time_order_and_keeps_what_is_not_due() {
        let mut c = Collector::new(CallGraph::FramePointers, PythonMode::Off);
        let sample = |time| Record::Sample {
            pid: 1,
            tid: 1,
            time,
            period: 1,
            callchain: vec![0x1010],
            regs: vec![],
            stack: vec![],
        };
        let mmap = Record::Mmap {
            pid: 1,
            start: 0x1000,
            len: 0x1000,
            pgoff: 0,
            path: "/bin/x".into(),
        };
        // Buffer order: a sample read before the mmap (another CPU) that precedes it.
        c.records.push((20, sample(20)));
        c.records.push((10, mmap));
        c.records.push((30, sample(30)));
        c.replay_before(25);
        assert_eq!(c.samples.len(), 1);
        assert_eq!(c.records.len(), 1, "the sample at 30 waits");
        assert!(
            matches!(c.samples[0].stack[0], Location::File { .. }),
            "the mmap was replayed first"
        );
        c.replay();
        assert_eq!(c.samples.len(), 2);
        assert!(monotonic_ns() > 0);
    }

    #[test]
    fn online_cpus_are_listed() {
        let cpus = online_cpus();
        assert!(!cpus.is_empty());
        assert_eq!(cpus[0], 0);
    }
}
