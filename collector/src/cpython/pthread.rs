//! The kernel's id of a thread known by its `pthread_t`: all CPython 3.9
//! and 3.10 keep of a thread (`PyThreadState.thread_id`, from
//! `pthread_self()`), where 3.11 and later also keep the kernel's id.
//! Without it a thread of those versions could not be weighed by its CPU
//! time (the Python agent) nor matched with the kernel's samples
//! (`record`, `attach`). py-spy finds it by unwinding a paused thread's
//! registers; this reads it where the C library keeps it.
//!
//! With glibc and musl a `pthread_t` is the address of the thread's
//! descriptor, which holds the thread's kernel id at an offset fixed by
//! the C library's build. The offset is found once, by looking in this
//! process: the 4-byte words of two live threads' descriptors (the
//! calling thread's and one started to be looked at) that hold their own
//! kernel ids; the first offset where both do is it. Another process on
//! the same machine (`record`, `attach`) is read at the same offset, and
//! its thread list is then checked against its tasks
//! ([`super::process`]): a process with another C library (a container's
//! musl) reads as a mismatch, not as wrong ids. Descriptors are read with
//! copies that fail rather than fault (a thread may have exited, its
//! descriptor unmapped), and an id read is given only if that thread of
//! that process is alive.

#![allow(unsafe_code)]

use std::sync::OnceLock;

use super::memory::Memory;

/// How far into a descriptor the kernel's id is looked for (glibc 2.36
/// keeps it at 720 bytes on x86-64, musl at 56).
const LOOK_BYTES: usize = 4096;

/// Maps a thread's `pthread_t` to its kernel id, in one process.
#[derive(Debug, Clone, Copy)]
pub struct PthreadTids {
    offset: usize,
    memory: Memory,
}

impl PthreadTids {
    /// The ids of the threads of the process `memory` reads; `None` when
    /// this process's C library does not show where it keeps them (two
    /// threads did not agree on one place).
    pub fn of(memory: Memory) -> Option<PthreadTids> {
        static OFFSET: OnceLock<Option<usize>> = OnceLock::new();
        let offset = (*OFFSET.get_or_init(find_offset))?;
        Some(PthreadTids { offset, memory })
    }

    /// The kernel id of the live thread whose `pthread_t` is `pthread`.
    pub fn tid(&self, pthread: u64) -> Option<i32> {
        let address = usize::try_from(pthread).ok()?.checked_add(self.offset)?;
        let mut word = [0u8; 4];
        self.memory.read_checked(address, &mut word).ok()?;
        let tid = i32::from_ne_bytes(word);
        if tid <= 0 {
            return None;
        }
        // SAFETY: signal 0 sends nothing: tgkill only says whether `tid`
        // is a thread of that process (EPERM: it is, and may not be
        // signalled by this one).
        let sent = unsafe { libc::tgkill(self.memory.pid() as libc::pid_t, tid, 0) };
        let alive = sent == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        alive.then_some(tid)
    }
}

/// Where this process's thread descriptors keep their kernel ids.
fn find_offset() -> Option<usize> {
    let memory = Memory::this_process();
    let own = tid_offsets(memory, own_pthread(), own_tid());
    if own.is_empty() {
        return None;
    }
    let (sent, seen) = std::sync::mpsc::channel();
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let other = crate::quiet_thread::spawn("flameshift-pthread-probe", move || {
        let _ = sent.send((own_pthread(), own_tid()));
        let _ = wait.recv();
    })
    .ok()?;
    let offsets = seen
        .recv()
        .ok()
        .map(|(pthread, tid)| tid_offsets(memory, pthread, tid));
    drop(done);
    let _ = other.join();
    own.into_iter()
        .find(|o| offsets.as_ref().is_some_and(|v| v.contains(o)))
}

/// The calling thread's `pthread_t`.
fn own_pthread() -> usize {
    // SAFETY: pthread_self takes no arguments and cannot fail.
    let me = unsafe { libc::pthread_self() };
    me as usize
}

/// The calling thread's kernel id.
fn own_tid() -> i32 {
    // SAFETY: gettid takes no arguments and cannot fail.
    unsafe { libc::gettid() }
}

/// The offsets in the descriptor at `pthread` that hold `tid`, read in
/// 64-byte pieces up to where the memory ends.
fn tid_offsets(memory: Memory, pthread: usize, tid: i32) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut piece = [0u8; 64];
    for start in (0..LOOK_BYTES).step_by(piece.len()) {
        if memory.read_checked(pthread + start, &mut piece).is_err() {
            break;
        }
        for (i, word) in piece.chunks_exact(4).enumerate() {
            if i32::from_ne_bytes([word[0], word[1], word[2], word[3]]) == tid {
                offsets.push(start + i * 4);
            }
        }
    }
    offsets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_threads_pthread_t_gives_its_kernel_id_while_it_lives() {
        let tids = PthreadTids::of(Memory::this_process()).expect("the descriptor's layout is found");
        assert_eq!(tids.tid(own_pthread() as u64), Some(own_tid()));
        let (sent, seen) = std::sync::mpsc::channel();
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            sent.send((own_pthread(), own_tid())).unwrap();
            wait.recv().unwrap();
        });
        let (pthread, tid) = seen.recv().unwrap();
        assert_ne!(tid, own_tid());
        assert_eq!(tids.tid(pthread as u64), Some(tid));
        done.send(()).unwrap();
        thread.join().unwrap();
        // Gone (its id no longer names a thread of this process), or its
        // descriptor reused by a thread started since: never the dead one.
        for _ in 0..1000 {
            // SAFETY: signal 0 only asks whether the thread exists.
            if unsafe { libc::tgkill(libc::getpid(), tid, 0) } != 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_ne!(tids.tid(pthread as u64), Some(tid));
        assert_eq!(tids.tid(0), None);
        assert_eq!(tids.tid(8), None);
        // Another process's threads are not this one's.
        let other = PthreadTids::of(Memory::of(1)).unwrap();
        assert_eq!(other.tid(own_pthread() as u64), None);
    }
}
