//! Choosing and opening the sampling event: `PERF_COUNT_HW_INSTRUCTIONS`
//! when the machine has a PMU, `cpu-clock` otherwise.

#![allow(unsafe_code)]

use std::os::fd::{FromRawFd, OwnedFd};

use perf_event_open_sys as sys;

use crate::{Error, Result};

/// Which event drives the sampling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Retired user-space instructions (hardware counter).
    Instructions,
    /// CPU time, in nanoseconds (software timer; works without a PMU).
    CpuClock,
}

impl EventKind {
    /// The sample type a sample's period is counted in.
    pub fn sample_type(self) -> flameshift_profile::SampleType {
        match self {
            EventKind::Instructions => flameshift_profile::SampleType::new("instructions", "instructions"),
            EventKind::CpuClock => flameshift_profile::SampleType::new("cpu", "nanoseconds"),
        }
    }

    /// The name perf uses.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Instructions => "instructions",
            EventKind::CpuClock => "cpu-clock",
        }
    }
}

/// What the user asked for with `--event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventChoice {
    /// Instructions if the counter opens, else cpu-clock.
    #[default]
    Auto,
    /// Only instructions (an error without a PMU).
    Instructions,
    /// Only cpu-clock.
    CpuClock,
}

/// How often to sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    /// Samples per second of the event (`-F`).
    Frequency(u64),
    /// Every this many units of the event (`--period`).
    Period(u64),
}

/// Picks the event: tries each candidate in order with `open` and keeps
/// the first that opens. Only "this event does not exist here" errors
/// (ENOENT, EOPNOTSUPP, ENODEV) move on to the next candidate; anything
/// else (permissions, limits) is reported at once. Pure apart from `open`,
/// so that the selection is tested on a machine without a PMU too.
pub fn choose<T>(
    choice: EventChoice,
    mut open: impl FnMut(EventKind) -> Result<T>,
) -> Result<(EventKind, T)> {
    let candidates: &[EventKind] = match choice {
        EventChoice::Auto => &[EventKind::Instructions, EventKind::CpuClock],
        EventChoice::Instructions => &[EventKind::Instructions],
        EventChoice::CpuClock => &[EventKind::CpuClock],
    };
    let mut last = None;
    for &kind in candidates {
        match open(kind) {
            Ok(t) => return Ok((kind, t)),
            Err(Error::Unsupported(e)) => {
                tracing::debug!(event = kind.name(), "not available, trying the next event: {e}");
                last = Some(Error::Unsupported(e));
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::Unsupported("no event".into())))
}

/// How stacks are walked (`--call-graph`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CallGraph {
    /// The kernel follows frame pointers (cheap; broken stacks for code
    /// built without them, as most distribution packages are).
    FramePointers,
    /// The kernel copies the top of the user stack and the registers; we
    /// unwind with `.eh_frame`/`.debug_frame` (works without frame pointers).
    Dwarf,
    /// Both are collected; per sample, the DWARF stack when unwinding
    /// succeeded, the frame-pointer one otherwise.
    #[default]
    Auto,
}

/// x86-64 `perf_regs` bits: BP (6), SP (7), IP (8) — what unwinding needs.
pub const USER_REGS_MASK: u64 = (1 << 6) | (1 << 7) | (1 << 8);
/// Bytes of user stack copied per sample for DWARF unwinding (perf's default is 8 KiB).
pub const USER_STACK_BYTES: u32 = 16 * 1024;

impl CallGraph {
    /// The sample record layout this choice produces.
    pub fn sample_format(self) -> crate::perf::records::SampleFormat {
        match self {
            CallGraph::FramePointers => crate::perf::records::SampleFormat::default(),
            CallGraph::Dwarf | CallGraph::Auto => crate::perf::records::SampleFormat {
                user_regs: USER_REGS_MASK.count_ones() as usize,
                user_stack: true,
            },
        }
    }
}

/// Options for one sampling event.
#[derive(Debug, Clone, Copy)]
pub struct EventOptions {
    /// The event.
    pub kind: EventKind,
    /// How often.
    pub rate: Rate,
    /// Follow children created after opening (threads and processes).
    pub inherit: bool,
    /// Start disabled and enable when the monitored task calls `exec`.
    pub enable_on_exec: bool,
    /// How stacks are walked.
    pub call_graph: CallGraph,
    /// Wake a reader polling the ring every this many samples (1: on
    /// each, for a reader that acts on samples at once).
    pub wake_every: u32,
}

/// Opens one sampling event for `pid` (0: the calling thread) on `cpu`
/// (-1: any), recording user-space callchains, mmaps, comms and tasks.
pub fn open(options: &EventOptions, pid: i32, cpu: i32) -> Result<OwnedFd> {
    // SAFETY: perf_event_attr is a plain C struct for which all-zero bytes
    // are a valid (and the documented default) value.
    let mut attr: sys::bindings::perf_event_attr = unsafe { std::mem::zeroed() };
    attr.size = std::mem::size_of::<sys::bindings::perf_event_attr>() as u32;
    match options.kind {
        EventKind::Instructions => {
            attr.type_ = sys::bindings::PERF_TYPE_HARDWARE;
            attr.config = u64::from(sys::bindings::PERF_COUNT_HW_INSTRUCTIONS);
        }
        EventKind::CpuClock => {
            attr.type_ = sys::bindings::PERF_TYPE_SOFTWARE;
            attr.config = u64::from(sys::bindings::PERF_COUNT_SW_CPU_CLOCK);
        }
    }
    match options.rate {
        Rate::Frequency(hz) => {
            attr.__bindgen_anon_1.sample_freq = hz;
            attr.set_freq(1);
        }
        Rate::Period(period) => attr.__bindgen_anon_1.sample_period = period,
    }
    attr.sample_type = u64::from(
        sys::bindings::PERF_SAMPLE_IP
            | sys::bindings::PERF_SAMPLE_TID
            | sys::bindings::PERF_SAMPLE_TIME
            | sys::bindings::PERF_SAMPLE_PERIOD
            | sys::bindings::PERF_SAMPLE_CALLCHAIN,
    );
    if options.call_graph != CallGraph::FramePointers {
        attr.sample_type |=
            u64::from(sys::bindings::PERF_SAMPLE_REGS_USER | sys::bindings::PERF_SAMPLE_STACK_USER);
        attr.sample_regs_user = USER_REGS_MASK;
        attr.sample_stack_user = USER_STACK_BYTES;
    }
    attr.set_disabled(u64::from(options.enable_on_exec));
    attr.set_enable_on_exec(u64::from(options.enable_on_exec));
    attr.set_inherit(u64::from(options.inherit));
    attr.set_exclude_kernel(1);
    attr.set_exclude_hv(1);
    attr.set_exclude_callchain_kernel(1);
    attr.set_mmap(1);
    attr.set_mmap2(1);
    attr.set_comm(1);
    attr.set_task(1);
    // Time-stamp side-band records too, so that records from different
    // CPUs' buffers can be put back in order (an mmap before its samples).
    attr.set_sample_id_all(1);
    // Time stamps on CLOCK_MONOTONIC, so that the reader can tell which
    // records are certainly all in (see `recorder::Session::pump`).
    attr.set_use_clockid(1);
    attr.clockid = libc::CLOCK_MONOTONIC;
    attr.__bindgen_anon_2.wakeup_events = options.wake_every.max(1);
    // SAFETY: `attr` is a valid, fully initialised perf_event_attr that
    // outlives the call; the other arguments are plain integers.
    let fd = unsafe {
        sys::perf_event_open(
            &mut attr,
            pid,
            cpu,
            -1,
            libc::c_ulong::from(sys::bindings::PERF_FLAG_FD_CLOEXEC),
        )
    };
    if fd < 0 {
        return Err(open_error(options.kind, std::io::Error::last_os_error()));
    }
    // SAFETY: the kernel just returned this descriptor to us and nothing
    // else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Turns an errno into an error that says what to do.
fn open_error(kind: EventKind, error: std::io::Error) -> Error {
    let event = kind.name().to_owned();
    match error.raw_os_error() {
        Some(libc::ENOENT | libc::EOPNOTSUPP | libc::ENODEV) => {
            Error::Unsupported(format!("{event}: {error}"))
        }
        Some(libc::EACCES | libc::EPERM) => {
            let paranoid = std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|_| "unknown".into());
            Error::PerfOpen {
                event,
                message: format!(
                    "{error}: kernel.perf_event_paranoid is {paranoid}; run as root, grant CAP_PERFMON, \
                     or allow user-space profiling with `sysctl kernel.perf_event_paranoid=2` \
                     (seccomp in containers may also forbid perf_event_open)"
                ),
            }
        }
        Some(libc::EMFILE) => Error::PerfOpen {
            event,
            message: format!("{error}: too many open files; raise `ulimit -n`"),
        },
        _ => Error::PerfOpen {
            event,
            message: error.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_prefers_instructions_and_falls_back_on_unsupported() {
        let (kind, ()) = choose(EventChoice::Auto, |_| Ok(())).unwrap();
        assert_eq!(kind, EventKind::Instructions);
        let (kind, ()) = choose(EventChoice::Auto, |k| match k {
            EventKind::Instructions => Err(Error::Unsupported("ENOENT".into())),
            EventKind::CpuClock => Ok(()),
        })
        .unwrap();
        assert_eq!(kind, EventKind::CpuClock);
    }

    #[test]
    fn permission_errors_are_not_hidden_by_the_fallback() {
        let mut tried = Vec::new();
        let err = choose(EventChoice::Auto, |k| -> Result<()> {
            tried.push(k);
            Err(Error::PerfOpen {
                event: k.name().into(),
                message: "EACCES".into(),
            })
        })
        .unwrap_err();
        assert!(matches!(err, Error::PerfOpen { .. }));
        assert_eq!(tried, vec![EventKind::Instructions]);
    }

    #[test]
    fn explicit_instructions_without_pmu_is_an_error() {
        let err = choose(EventChoice::Instructions, |_| -> Result<()> {
            Err(Error::Unsupported("ENOENT".into()))
        })
        .unwrap_err();
        assert!(err.to_string().contains("not supported"), "{err}");
    }

    #[test]
    fn this_machine_opens_some_event() {
        // Real perf_event_open on this machine: instructions where there is
        // a PMU, cpu-clock where there is not. Both must work.
        let result = choose(EventChoice::Auto, |kind| {
            open(
                &EventOptions {
                    kind,
                    rate: Rate::Frequency(99),
                    inherit: false,
                    enable_on_exec: false,
                    call_graph: CallGraph::Auto,
                    wake_every: 64,
                },
                0,
                -1,
            )
        });
        let (kind, _fd) = result.expect("perf_event_open must work here");
        tracing::info!(?kind, "opened");
        let pmu = std::path::Path::new("/sys/bus/event_source/devices/cpu/events/instructions").exists();
        if !pmu {
            assert_eq!(kind, EventKind::CpuClock);
        }
    }
}
