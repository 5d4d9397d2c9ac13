//! The signal handler: async-signal-safe by construction. It allocates
//! nothing, takes no lock and cannot panic: it reads the interrupted
//! registers from the signal context, walks frame pointers with every
//! read bounded (above the interrupted stack pointer, below it + 8 MiB,
//! strictly upwards) — directly where the address lies in the thread's
//! own stack mapping ([`super::stacks`]), else with `process_vm_readv` on
//! this process, which fails with `EFAULT` instead of faulting; reads the
//! thread's current label-set id from a const thread-local; writes the
//! raw addresses into the lock-free [`SampleBuffer`]; and arms the next
//! sample a random distance away (uniform in ½–1½ periods, so that work
//! repeating at about the sampling period is not always caught at the
//! same phase): a new period and `PERF_EVENT_IOC_REFRESH` for perf
//! events, a one-shot `timer_settime` for CPU-clock timers. A perf
//! sample weighs the nominal period, the mean of the draws; a timer
//! sample the thread's CPU time since its previous one (timers fire on
//! scheduler ticks, 4 ms apart at 250 Hz, whatever period was asked).
//! `errno` is preserved. For the Python agent ([`PYTHON`]) it reads the
//! thread's Python frames instead of its native ones
//! ([`crate::cpython::current`], as async-signal-safe).

#![allow(unsafe_code)]

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

use perf_event_open_sys as sys;

use super::buffer::{SampleBuffer, MAX_FRAMES};
use crate::cpython::current::{CurrentStack, CurrentThreadReader};

/// The signal every sampled thread receives.
pub const SIGNAL: libc::c_int = libc::SIGPROF;

/// How far above the interrupted stack pointer a frame may be.
const MAX_STACK: u64 = 8 << 20;

/// `si_code` of a perf event whose refresh limit ran out.
const POLL_HUP: libc::c_int = 6;
/// `si_code` of a POSIX timer.
const SI_TIMER: libc::c_int = -2;

/// Where samples go; null while no sampler runs.
pub static BUFFER: AtomicPtr<SampleBuffer> = AtomicPtr::new(std::ptr::null_mut());
/// Cost one signal stands for, in the sampler's unit.
pub static PERIOD: AtomicU64 = AtomicU64::new(0);
/// Whether perf events should be re-armed (false while stopping).
pub static REARM: AtomicBool = AtomicBool::new(false);
/// Samples whose stack walk stopped at an unreadable frame pointer.
pub static WALK_FAULTS: AtomicU64 = AtomicU64::new(0);
/// Where the Python agent has the handler read each thread's Python
/// stack (code-object addresses) instead of its native frames; null:
/// native frames. Set to a reader that is never freed.
pub static PYTHON: AtomicPtr<CurrentThreadReader> = AtomicPtr::new(std::ptr::null_mut());
/// Python reads: signals of threads without a Python thread state, and
/// reads torn by the instant of the signal (neither makes a sample).
pub static PYTHON_NOT_PYTHON: AtomicU64 = AtomicU64::new(0);
/// See [`PYTHON_NOT_PYTHON`].
pub static PYTHON_TORN: AtomicU64 = AtomicU64::new(0);
static PID: AtomicU64 = AtomicU64::new(0);

/// Installs the handler (once per process; later calls only note the
/// process id, which a child of `fork` changes).
pub fn install() -> std::io::Result<()> {
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    // Every start: the child of a fork reads its own memory, not its parent's.
    PID.store(u64::from(std::process::id()), Ordering::Relaxed);
    if INSTALLED.swap(true, Ordering::AcqRel) {
        return Ok(());
    }
    // SAFETY: a zeroed sigaction with our handler, SA_SIGINFO (three
    // arguments), SA_RESTART (interrupted syscalls resume) and an empty
    // mask is valid; `handle` is async-signal-safe.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handle as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(SIGNAL, &action, std::ptr::null_mut()) != 0 {
            INSTALLED.store(false, Ordering::Release);
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

thread_local! {
    // This thread's id (0 until its first sample) and random state: plain
    // const-initialised thread-locals without destructors, safe to touch
    // from a signal handler.
    static TID: Cell<u32> = const { Cell::new(0) };
    static RANDOM: Cell<u64> = const { Cell::new(0) };
    // (sampler generation, this thread's CPU clock) at its last timer sample.
    static LAST_TIMER_SAMPLE: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// Counts sampler starts, so that a thread's last timer sample taken
/// under an earlier sampler is not mistaken for this one's.
pub static GENERATION: AtomicU64 = AtomicU64::new(0);

/// The CPU time of a timer sample: what the thread ran since its previous
/// timer sample (POSIX CPU-clock timers fire on scheduler ticks, so at
/// frequencies above the kernel's tick rate a sample stands for more
/// than the period asked for); `period` for the first.
fn timer_weight(period: u64) -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime is async-signal-safe; `now` is ours.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } != 0 {
        return period;
    }
    let now = now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64;
    let generation = GENERATION.load(Ordering::Relaxed);
    LAST_TIMER_SAMPLE
        .try_with(|last| {
            let weight = match last.get() {
                (g, at) if g == generation && now > at => now - at,
                _ => period,
            };
            last.set((generation, now));
            weight
        })
        .unwrap_or(period)
}

/// A period drawn uniformly from ½·`nominal` to 1½·`nominal` with the
/// 64 random bits `random`: the draws average `nominal`.
pub fn jittered(nominal: u64, random: u64) -> u64 {
    let low = nominal / 2;
    let span = nominal | 1; // [low, low + nominal]
    (low + random % (span + 1)).max(1)
}

/// The next of this thread's random numbers (xorshift64*, seeded from
/// the thread id and the clock of the sample that first needs it).
fn next_random(tid: u32, seed: u64) -> u64 {
    RANDOM
        .try_with(|state| {
            let mut x = state.get();
            if x == 0 {
                x = (u64::from(tid) << 32 ^ seed) | 1;
            }
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            state.set(x);
            x.wrapping_mul(0x2545_f491_4f6c_dd1d)
        })
        .unwrap_or(seed)
}

/// This thread's id, asked of the kernel once.
fn current_tid() -> u32 {
    let cached = TID.try_with(Cell::get).unwrap_or(0);
    if cached != 0 {
        return cached;
    }
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) } as u32;
    let _ = TID.try_with(|t| t.set(tid));
    tid
}

/// Reads 16 bytes at `addr` of this process without ever faulting.
fn read_pair(addr: u64) -> Option<[u64; 2]> {
    let mut pair = [0u64; 2];
    let local = libc::iovec {
        iov_base: pair.as_mut_ptr().cast(),
        iov_len: 16,
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: 16,
    };
    // SAFETY: `local` points at our 16-byte array; the kernel validates
    // `remote` and returns an error instead of faulting.
    let n = unsafe {
        libc::process_vm_readv(
            PID.load(Ordering::Relaxed) as libc::pid_t,
            &local,
            1,
            &remote,
            1,
            0,
        )
    };
    (n == 16).then_some(pair)
}

/// Walks frame pointers from `fp`; `out[0]` is the interrupted `ip`.
/// Returns the number of frames.
pub fn walk(ip: u64, mut fp: u64, sp: u64, out: &mut [u64; MAX_FRAMES]) -> usize {
    out[0] = ip;
    let mut n = 1;
    let limit = sp.saturating_add(MAX_STACK);
    // Frames below the top of the thread's own stack mapping are read directly.
    let mapped_to = super::stacks::top_of(sp).unwrap_or(0);
    while n < MAX_FRAMES {
        if fp < sp || fp >= limit || !fp.is_multiple_of(8) {
            break;
        }
        let pair = if fp.saturating_add(16) <= mapped_to {
            // SAFETY: [sp, mapped_to) is this thread's stack mapping, live
            // while the thread runs, and fp is 8-aligned inside it.
            Some(unsafe { [*(fp as *const u64), *((fp + 8) as *const u64)] })
        } else {
            read_pair(fp)
        };
        let Some([next_fp, ret]) = pair else {
            WALK_FAULTS.fetch_add(1, Ordering::Relaxed);
            break;
        };
        if ret == 0 {
            break;
        }
        out[n] = ret;
        n += 1;
        if next_fp <= fp {
            break;
        }
        fp = next_fp;
    }
    n
}

/// The interrupted instruction, frame and stack pointers.
///
/// # Safety
/// `context` must be the `ucontext_t` the kernel passed to the handler.
#[cfg(target_arch = "x86_64")]
unsafe fn registers(context: *const libc::c_void) -> (u64, u64, u64) {
    // SAFETY: the caller passes the kernel's ucontext_t.
    let uc = unsafe { &*context.cast::<libc::ucontext_t>() };
    let gregs = &uc.uc_mcontext.gregs;
    (
        gregs[libc::REG_RIP as usize] as u64,
        gregs[libc::REG_RBP as usize] as u64,
        gregs[libc::REG_RSP as usize] as u64,
    )
}

/// # Safety
/// `context` must be the `ucontext_t` the kernel passed to the handler.
#[cfg(target_arch = "aarch64")]
unsafe fn registers(context: *const libc::c_void) -> (u64, u64, u64) {
    // SAFETY: the caller passes the kernel's ucontext_t.
    let uc = unsafe { &*context.cast::<libc::ucontext_t>() };
    (uc.uc_mcontext.pc, uc.uc_mcontext.regs[29], uc.uc_mcontext.sp)
}

/// # Safety
/// Nothing is read on other architectures.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
unsafe fn registers(_context: *const libc::c_void) -> (u64, u64, u64) {
    (0, 0, 0)
}

/// `si_code`, `si_fd` (perf events) and the kernel's timer id (timers) of
/// a siginfo.
///
/// # Safety
/// `info` must be the siginfo the kernel passed to the handler.
unsafe fn signal_fields(info: *const libc::siginfo_t) -> (libc::c_int, libc::c_int, libc::c_int) {
    // SAFETY: the kernel's siginfo is at least 128 bytes; for SIGPOLL-style
    // signals si_fd is the int at byte 24 (after si_band), for timers
    // si_timerid is the int at byte 16, on 64-bit Linux.
    unsafe {
        let code = (*info).si_code;
        let base = info.cast::<u8>();
        let fd = base.add(24).cast::<libc::c_int>().read_unaligned();
        let timer = base.add(16).cast::<libc::c_int>().read_unaligned();
        (code, fd, timer)
    }
}

/// A timer setting that fires once, `ns` from now.
pub fn one_shot(ns: u64) -> libc::itimerspec {
    libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: (ns / 1_000_000_000) as libc::time_t,
            tv_nsec: (ns % 1_000_000_000) as libc::c_long,
        },
    }
}

/// Arms the next sample of the signalled counter `period` units away.
fn arm_next(code: libc::c_int, fd: libc::c_int, timer: libc::c_int, period: u64) {
    if code == SI_TIMER {
        let spec = one_shot(period);
        // SAFETY: the kernel's id of the timer that signalled (the raw
        // system call takes the kernel's id, not glibc's handle); a timer
        // deleted meanwhile fails with EINVAL.
        unsafe {
            libc::syscall(
                libc::SYS_timer_settime,
                libc::c_long::from(timer),
                0 as libc::c_long,
                &spec as *const libc::itimerspec,
                std::ptr::null_mut::<libc::itimerspec>(),
            )
        };
    } else if code == POLL_HUP {
        // SAFETY: `fd` is the perf event that signalled; on a closed fd
        // both fail harmlessly with EBADF.
        unsafe {
            libc::ioctl(fd, sys::bindings::PERIOD as _, &period as *const u64);
            sys::ioctls::REFRESH(fd, 1);
        }
    }
}

extern "C" fn handle(_signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: errno is thread-local; saved and restored around our syscalls.
    let saved_errno = unsafe { *libc::__errno_location() };
    let buffer = BUFFER.load(Ordering::Acquire);
    if !buffer.is_null() && !context.is_null() && !info.is_null() {
        // SAFETY: the kernel passed `info` and `context` for this signal.
        let (code, fd, timer) = unsafe { signal_fields(info) };
        // SAFETY: as above.
        let (ip, fp, sp) = unsafe { registers(context) };
        let mut frames = [0u64; MAX_FRAMES];
        let python = PYTHON.load(Ordering::Acquire);
        let depth = if python.is_null() {
            walk(ip, fp, sp, &mut frames)
        } else {
            // SAFETY: PYTHON only ever points at a reader that is never freed.
            match unsafe { &*python }.read(&mut frames) {
                CurrentStack::Frames(n) => n,
                CurrentStack::NotPython => {
                    PYTHON_NOT_PYTHON.fetch_add(1, Ordering::Relaxed);
                    0
                }
                CurrentStack::Torn => {
                    PYTHON_TORN.fetch_add(1, Ordering::Relaxed);
                    0
                }
            }
        };
        let tid = current_tid();
        let labels = crate::labels::current_for_signal();
        let period = PERIOD.load(Ordering::Relaxed);
        let weight = match code {
            SI_TIMER => timer_weight(period),
            _ => period,
        };
        // A Python stack not read makes no sample (its CPU is left out,
        // not put on the thread's next sample).
        if depth > 0 {
            // SAFETY: BUFFER is only set to a buffer that outlives the
            // sampler (it is leaked, never freed).
            unsafe { &*buffer }.push(tid, labels, weight, &frames[..depth]);
        }
        if REARM.load(Ordering::Relaxed) {
            arm_next(code, fd, timer, jittered(period, next_random(tid, sp ^ ip)));
        }
    }
    // SAFETY: see above.
    unsafe { *libc::__errno_location() = saved_errno };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn frame_pointer() -> u64 {
        let fp: u64;
        #[cfg(target_arch = "x86_64")]
        // SAFETY: reads a register.
        unsafe {
            std::arch::asm!("mov {}, rbp", out(reg) fp)
        };
        #[cfg(not(target_arch = "x86_64"))]
        {
            fp = 0;
        }
        fp
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn walks_this_threads_frame_pointers() {
        PID.store(u64::from(std::process::id()), Ordering::Relaxed);
        let fp = frame_pointer();
        let sp = fp - 64;
        let mut out = [0u64; MAX_FRAMES];
        let n = walk(0x1234, fp, sp, &mut out);
        assert_eq!(out[0], 0x1234);
        assert!(n >= 3, "a test thread has several frames, got {n}");
    }

    #[test]
    fn bad_frame_pointers_end_the_walk_without_faulting() {
        PID.store(u64::from(std::process::id()), Ordering::Relaxed);
        let mut out = [0u64; MAX_FRAMES];
        assert_eq!(walk(1, 0, 0, &mut out), 1, "null frame pointer");
        assert_eq!(walk(1, 0x10, 0x8, &mut out), 1, "unmapped address");
        let faults = WALK_FAULTS.load(Ordering::Relaxed);
        assert!(faults >= 1);
        assert_eq!(walk(1, 0x1001, 0x1000, &mut out), 1, "misaligned");
        assert_eq!(walk(1, 0x10, 0x1000, &mut out), 1, "below the stack pointer");
    }
}
