//! The agent's own threads, started with every asynchronous signal
//! blocked, so that a signal sent to the process (`kill PID`: SIGTERM,
//! SIGINT, SIGHUP, SIGUSR1) is delivered to one of the application's
//! threads, never to the agent's. The kernel picks any thread that does
//! not block a process-directed signal; a server's handler run on the
//! agent's thread would act from the wrong place (uWSGI's worker calls
//! `exit` from its SIGINT handler, which then finalizes the interpreter
//! on that thread and waits forever for the main thread). Synchronous
//! signals (a fault: SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS)
//! stay deliverable to the thread that raised them.
//!
//! ```
//! let handle = flameshift_collector::quiet_thread::spawn("flameshift-example", || 6 * 7).unwrap();
//! assert_eq!(handle.join().unwrap(), 42);
//! ```

#![allow(unsafe_code)]

use std::thread::JoinHandle;

/// Starts a thread named `name` running `f` with asynchronous signals
/// blocked. The calling thread's mask is blocked only while the thread
/// is made (it inherits it from the start: no window in which a signal
/// could land on it) and restored after.
pub fn spawn<F, T>(name: &str, f: F) -> std::io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let builder = std::thread::Builder::new().name(name.to_owned());
    // SAFETY: sigset_t values owned here, filled by the libc calls.
    unsafe {
        let mut quiet: libc::sigset_t = std::mem::zeroed();
        let mut before: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut quiet);
        for fault in [
            libc::SIGSEGV,
            libc::SIGBUS,
            libc::SIGFPE,
            libc::SIGILL,
            libc::SIGTRAP,
            libc::SIGSYS,
        ] {
            libc::sigdelset(&mut quiet, fault);
        }
        let blocked = libc::pthread_sigmask(libc::SIG_BLOCK, &quiet, &mut before) == 0;
        let spawned = builder.spawn(f);
        if blocked {
            libc::pthread_sigmask(libc::SIG_SETMASK, &before, std::ptr::null_mut());
        }
        spawned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(signal: libc::c_int) -> bool {
        // SAFETY: reads the calling thread's mask into a set owned here.
        unsafe {
            let mut mask: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut mask);
            libc::sigismember(&mask, signal) == 1
        }
    }

    #[test]
    fn the_thread_blocks_what_a_process_is_sent_and_its_maker_is_left_as_it_was() {
        let before = [libc::SIGTERM, libc::SIGINT, libc::SIGPROF].map(blocked);
        let seen = spawn("flameshift-test", || {
            (
                [
                    libc::SIGTERM,
                    libc::SIGINT,
                    libc::SIGHUP,
                    libc::SIGUSR1,
                    libc::SIGPROF,
                ]
                .map(blocked),
                [libc::SIGSEGV, libc::SIGBUS, libc::SIGFPE].map(blocked),
                std::thread::current().name().map(str::to_owned),
            )
        })
        .unwrap()
        .join()
        .unwrap();
        assert_eq!(seen.0, [true; 5]);
        assert_eq!(seen.1, [false; 3]);
        assert_eq!(seen.2.as_deref(), Some("flameshift-test"));
        assert_eq!([libc::SIGTERM, libc::SIGINT, libc::SIGPROF].map(blocked), before);
    }
}
