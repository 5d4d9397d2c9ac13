//! Arming one thread: a sampling perf event that signals that thread on
//! every overflow (`F_SETOWN_EX` with `F_OWNER_TID`, `F_SETSIG`, re-armed
//! by the handler with `PERF_EVENT_IOC_REFRESH`), or, where perf events
//! are unavailable, a POSIX timer on the thread's CPU clock delivered to
//! that thread (`SIGEV_THREAD_ID`). Both can be armed from any thread, so
//! a scanner can cover threads the service starts later.

#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, OwnedFd};

use perf_event_open_sys as sys;

use super::handler::{jittered, one_shot, SIGNAL};
use crate::counters::{event_attr, open_event, CounterMode};
use crate::Result;

const F_SETSIG: libc::c_int = 10;
const F_SETOWN_EX: libc::c_int = 15;
const F_OWNER_TID: libc::c_int = 0;

#[repr(C)]
struct OwnerEx {
    kind: libc::c_int,
    pid: libc::pid_t,
}

/// What signals one thread. Held only for its `Drop`: closing the event
/// or deleting the timer stops that thread's signals.
#[derive(Debug)]
#[allow(dead_code, reason = "the handles are held for their Drop")]
pub enum Armed {
    /// A perf event (closed on drop).
    Perf(OwnedFd),
    /// A POSIX timer on the thread's CPU clock.
    Timer(TimerId),
}

/// A POSIX timer id, deleted on drop.
#[derive(Debug)]
pub struct TimerId(libc::timer_t);

// SAFETY: a timer id is a plain handle; timer_delete may be called from any thread.
unsafe impl Send for TimerId {}

impl Drop for TimerId {
    fn drop(&mut self) {
        // SAFETY: the id came from timer_create and is deleted once.
        unsafe { libc::timer_delete(self.0) };
    }
}

fn os_error(what: &str) -> std::io::Error {
    let e = std::io::Error::last_os_error();
    std::io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Opens a sampling event of `mode` on thread `tid`, every `period` units,
/// delivering [`SIGNAL`] to that thread.
pub fn perf(tid: i32, mode: CounterMode, period: u64) -> Result<Armed> {
    let mut attr = event_attr(mode);
    attr.__bindgen_anon_1.sample_period = first_period(tid, period);
    attr.set_disabled(1);
    let fd = open_event(attr, tid, mode)?;
    let owner = OwnerEx {
        kind: F_OWNER_TID,
        pid: tid,
    };
    // SAFETY: fcntl/ioctl on our own fd with valid arguments.
    unsafe {
        if libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, libc::O_ASYNC | libc::O_NONBLOCK) != 0 {
            return Err(os_error("F_SETFL O_ASYNC").into());
        }
        if libc::fcntl(fd.as_raw_fd(), F_SETSIG, SIGNAL) != 0 {
            return Err(os_error("F_SETSIG").into());
        }
        if libc::fcntl(fd.as_raw_fd(), F_SETOWN_EX, &owner as *const OwnerEx) != 0 {
            return Err(os_error("F_SETOWN_EX").into());
        }
        if sys::ioctls::REFRESH(fd.as_raw_fd(), 1) != 0 {
            return Err(os_error("PERF_EVENT_IOC_REFRESH").into());
        }
    }
    Ok(Armed::Perf(fd))
}

/// The distance to a thread's first sample: a random draw like every
/// later one (see [`jittered`]), so threads armed together do not sample
/// in step.
fn first_period(tid: i32, period: u64) -> u64 {
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    jittered(
        period,
        (clock ^ (tid as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)).wrapping_mul(0xff51_afd7_ed55_8ccd),
    )
}

/// Arms a one-shot timer on thread `tid`'s CPU clock, delivering
/// [`SIGNAL`] to that thread after a random draw around `period_ns`
/// (the handler arms each next one).
pub fn timer(tid: i32, period_ns: u64) -> Result<Armed> {
    // The kernel's per-thread CPU clock id: MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED).
    let clock = ((!tid) << 3) | 6;
    // SAFETY: zeroed sigevent, then the fields SIGEV_THREAD_ID needs.
    let mut event: libc::sigevent = unsafe { std::mem::zeroed() };
    event.sigev_notify = libc::SIGEV_THREAD_ID;
    event.sigev_signo = SIGNAL;
    event.sigev_notify_thread_id = tid;
    let mut id: libc::timer_t = std::ptr::null_mut();
    // SAFETY: valid clock id, event and out pointer.
    if unsafe { libc::timer_create(clock as libc::clockid_t, &mut event, &mut id) } != 0 {
        return Err(os_error("timer_create").into());
    }
    let timer = TimerId(id);
    let spec = one_shot(first_period(tid, period_ns));
    // SAFETY: a timer we own and a valid spec.
    if unsafe { libc::timer_settime(timer.0, 0, &spec, std::ptr::null_mut()) } != 0 {
        return Err(os_error("timer_settime").into());
    }
    Ok(Armed::Timer(timer))
}
