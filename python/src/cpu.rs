//! CPU time of any thread of this process, by its thread id: what weighs
//! each sample (the CPU the thread used since its previous sample).

#![allow(unsafe_code)]

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

/// The calling thread's id.
pub fn current_tid() -> i32 {
    thread_local! {
        static TID: i32 = {
            // SAFETY: gettid takes no arguments and cannot fail.
            unsafe { libc::gettid() }
        };
    }
    TID.with(|tid| *tid)
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
        assert_eq!(thread_cpu_ns(tid), None);
    }
}
