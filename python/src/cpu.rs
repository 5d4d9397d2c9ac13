//! CPU time of any thread of this process, by its thread id: what weighs
//! each sample (the CPU the thread used since its previous sample).

#![allow(unsafe_code)]

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// The CPU time thread `tid` of this process has used, in ns; `None`
/// once it has exited.
pub fn thread_cpu_ns(tid: i32) -> Option<u64> {
    // The kernel's clock id of a thread's CPU time (CPUCLOCK_SCHED with
    // CPUCLOCK_PERTHREAD_MASK), as glibc's pthread_getcpuclockid makes it.
    let clock = (!tid << 3) | 6;
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own; an id naming no
    // thread of this process is refused with EINVAL, not undefined.
    let ok = unsafe { libc::clock_gettime(clock as libc::clockid_t, &mut now) } == 0;
    ok.then(|| now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64)
}

/// Whether thread `tid` of this process is runnable: running, or
/// waiting for a core (state `R` in `/proc/self/task/TID/stat`), not
/// blocked (on I/O, a lock, the GIL) or gone.
pub fn is_runnable(tid: i32) -> bool {
    let Ok(stat) = std::fs::read(format!("/proc/self/task/{tid}/stat")) else {
        return false;
    };
    // `pid (comm) S ...`: the state follows the last `)` (a thread's
    // name may hold parentheses and spaces).
    let Some(close) = stat.iter().rposition(|&b| b == b')') else {
        return false;
    };
    stat.get(close + 2) == Some(&b'R')
}

/// Forks so far in this process's line: a thread id cached before a
/// `fork` is the parent's, not the child's.
static FORKS: AtomicU64 = AtomicU64::new(0);

extern "C" fn count_fork_in_child() {
    FORKS.fetch_add(1, Ordering::Relaxed);
}

/// The calling thread's id (cached per thread, and read again in the
/// child of a `fork`, whose thread has another id).
pub fn current_tid() -> i32 {
    static AT_FORK: std::sync::Once = std::sync::Once::new();
    AT_FORK.call_once(|| {
        // SAFETY: registers a handler that only bumps an atomic, which
        // is async-signal-safe as a child handler must be. Without it
        // (an error) ids would be read anew below only if FORKS moved.
        unsafe { libc::pthread_atfork(None, None, Some(count_fork_in_child)) };
    });
    thread_local! {
        static TID: Cell<(u64, i32)> = const { Cell::new((u64::MAX, 0)) };
    }
    let forks = FORKS.load(Ordering::Relaxed);
    TID.with(|cached| match cached.get() {
        (generation, tid) if generation == forks => tid,
        _ => {
            // SAFETY: gettid takes no arguments and cannot fail.
            let tid = unsafe { libc::gettid() };
            cached.set((forks, tid));
            tid
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_threads_cpu_time_is_read_by_its_id_and_gone_after_it_exits() {
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let worker = std::thread::spawn(move || {
            let start = std::time::Instant::now();
            let mut x = 1u64;
            while start.elapsed() < std::time::Duration::from_millis(50) {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
            tx.send((current_tid(), x)).unwrap();
            done_rx.recv().unwrap();
        });
        let (tid, _) = rx.recv().unwrap();
        let used = thread_cpu_ns(tid).unwrap();
        assert!(used >= 40_000_000, "the worker burned ~50 ms: {used} ns");
        assert!(thread_cpu_ns(current_tid()).is_some());
        done_tx.send(()).unwrap();
        worker.join().unwrap();
        // `join` returns when the thread's code is done; the kernel task
        // goes a moment later (a fresh-clone CI run read it once more).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while thread_cpu_ns(tid).is_some() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(thread_cpu_ns(tid), None);
    }

    #[test]
    fn a_spinning_thread_is_runnable_and_a_sleeping_one_is_not() {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let spinner = {
            let (stop, tx) = (stop.clone(), tx.clone());
            std::thread::spawn(move || {
                tx.send(current_tid()).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        };
        let sleeper = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                tx.send(current_tid()).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            })
        };
        let (a, b) = (rx.recv().unwrap(), rx.recv().unwrap());
        std::thread::sleep(std::time::Duration::from_millis(50));
        let spinning = [a, b]
            .into_iter()
            .find(|&t| thread_cpu_ns(t).unwrap() > 20_000_000)
            .unwrap();
        let sleeping = if spinning == a { b } else { a };
        assert!(is_runnable(spinning));
        assert!(!is_runnable(sleeping));
        assert!(is_runnable(current_tid()));
        stop.store(true, Ordering::Relaxed);
        spinner.join().unwrap();
        sleeper.join().unwrap();
        assert!(!is_runnable(spinning), "an exited thread is not runnable");
    }

    #[test]
    fn a_forked_child_knows_its_own_thread_id_not_its_parents() {
        let parent = current_tid();
        let (read, write) = {
            let mut fds = [0; 2];
            // SAFETY: pipe writes two descriptors into the array we own.
            assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
            (fds[0], fds[1])
        };
        // SAFETY: the child only calls gettid/write and _exit.
        let child = unsafe { libc::fork() };
        if child == 0 {
            let tid = current_tid();
            // SAFETY: writes 4 bytes we own, then leaves without unwinding.
            unsafe {
                libc::write(write, (&raw const tid).cast(), 4);
                libc::_exit(0);
            }
        }
        let mut tid = 0i32;
        // SAFETY: reads 4 bytes into the integer we own; waits for the child.
        unsafe {
            assert_eq!(libc::read(read, (&raw mut tid).cast(), 4), 4);
            libc::waitpid(child, std::ptr::null_mut(), 0);
        }
        assert_eq!(
            tid, child,
            "the child's only thread has the child's pid as its id"
        );
        assert_ne!(tid, parent);
        assert_eq!(current_tid(), parent);
    }
}
