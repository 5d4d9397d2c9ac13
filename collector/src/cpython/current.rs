//! The calling thread's Python stack, read by the sampler's signal
//! handler on that very thread (the Python agent): the code objects of
//! its frames, innermost first, with no allocation, no lock and no
//! fault, named later by a [`super::Walker`] on the collecting thread
//! ([`super::Walker::name_codes`]).
//!
//! The thread is stopped in the handler, so its frame stack holds still;
//! only the instant it was stopped at can be mid-change (a frame being
//! pushed or popped, a new chunk of the frame stack being linked). Its
//! thread state comes from CPython's own thread-local
//! (`PyGILState_GetThisThreadState`, a `pthread_getspecific`) and is
//! copied with `process_vm_readv`, as is its current frame's address.
//! Frames inside the used part of the chunk the thread state names are
//! read in place, once that chunk's header (copied) says its size covers
//! the used part: such memory is the thread's own and cannot be unmapped
//! while it is stopped. Every other frame (generators', coroutines',
//! older chunks') is copied, so a pointer torn by the instant of the
//! signal costs a failed copy, never a fault.
//!
//! CPython 3.9 and 3.10 have no such chunk: each frame is an object of
//! its own, linked to its caller by `f_back`, and each is copied.
//!
//! A read costs one or two copies and one more per frame outside the
//! chunk (3.9, 3.10: per frame): no thread switch, no wake-up of
//! another thread (the sampling thread this replaces cost ~60 µs of a
//! core a tick at 99 Hz on CPython 3.11 on this project's VM, ~30 µs of
//! it its own wake-up: BENCHMARKS.md, "The Python agent").

#![allow(unsafe_code)]

use super::layout::{FrameKind, Layout};
use super::memory::{word_at, Memory};

/// `PyGILState_GetThisThreadState`: the calling thread's
/// `PyThreadState` (0 where it has none).
pub type ThisThreadState = unsafe extern "C" fn() -> usize;

/// What a read of the calling thread's stack found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CurrentStack {
    /// The thread has no Python thread state (a thread C code started).
    NotPython,
    /// A pointer led nowhere (the signal came mid-change).
    Torn,
    /// This many code-object addresses were written, innermost first.
    Frames(usize),
}

/// `sizeof` the header of a `_PyStackChunk` (`previous`, `size`, `top`).
const CHUNK_HEADER: usize = 24;
/// The largest chunk believed (CPython's are 16 KiB, doubled for a frame
/// that needs more).
const MAX_CHUNK: usize = 1 << 30;
/// Bytes of a thread state and of a frame copied at most (every layout
/// needs fewer: [`Layout::thread_len`], [`Layout::frame_len`]).
const MAX_THREAD_LEN: usize = 320;
const MAX_FRAME_LEN: usize = 96;

/// Reads the calling thread's Python stack; `Copy`, so that a signal
/// handler holds its own.
#[derive(Debug, Clone, Copy)]
pub struct CurrentThreadReader {
    layout: Layout,
    memory: Memory,
    this_thread_state: ThisThreadState,
}

impl CurrentThreadReader {
    /// A reader of CPython `version`'s stacks in this process (a child of
    /// `fork` makes its own: the copies name the process); `None` for a
    /// version without a layout.
    pub fn new(version: (u8, u8), this_thread_state: ThisThreadState) -> Option<CurrentThreadReader> {
        let layout = Layout::of(version.0, version.1)?;
        (layout.thread_len() <= MAX_THREAD_LEN && layout.frame_len() <= MAX_FRAME_LEN).then_some(
            CurrentThreadReader {
                layout,
                memory: Memory::this_process(),
                this_thread_state,
            },
        )
    }

    /// The calling thread's code objects, innermost first, into `out`
    /// (frames past its length are not read). Async-signal-safe.
    pub fn read(&self, out: &mut [u64]) -> CurrentStack {
        // SAFETY: CPython's function reads one thread-local; it takes no
        // lock and needs no GIL.
        let tstate = unsafe { (self.this_thread_state)() };
        if tstate == 0 {
            return CurrentStack::NotPython;
        }
        let layout = &self.layout;
        let mut state = [0u8; MAX_THREAD_LEN];
        let state = &mut state[..layout.thread_len()];
        if !self.memory.read(tstate, state) {
            return CurrentStack::Torn;
        }
        let Some(mut at) = layout.innermost_frame(state, &self.memory) else {
            return CurrentStack::Torn;
        };
        let (chunk, top) = layout.chunk_in_use(state);
        let in_place = self.chunk_in_use(chunk, top);
        let frame_len = layout.frame_len();
        let mut frame = [0u8; MAX_FRAME_LEN];
        let frame = &mut frame[..frame_len];
        let mut n = 0;
        while at != 0 && n < out.len() {
            let inside = in_place.is_some_and(|(from, to)| {
                at >= from && at.checked_add(frame_len).is_some_and(|end| end <= to)
            });
            if inside {
                // SAFETY: [from, to) is the used part of this thread's own
                // frame-stack chunk, whose header says it is that large: it
                // is mapped, and only this thread (stopped here) changes it.
                unsafe { std::ptr::copy_nonoverlapping(at as *const u8, frame.as_mut_ptr(), frame_len) };
            } else if !self.memory.read(at, frame) {
                return CurrentStack::Torn;
            }
            if layout.frame_kind(frame) != FrameKind::CStack {
                out[n] = word_at(frame, layout.frame_code) as u64;
                n += 1;
            }
            at = word_at(frame, layout.frame_previous);
        }
        CurrentStack::Frames(n)
    }

    /// The used part of the chunk at `chunk` (frames from past its
    /// header to `top`), if its header, copied, says it is that large.
    fn chunk_in_use(&self, chunk: usize, top: usize) -> Option<(usize, usize)> {
        let from = chunk.checked_add(CHUNK_HEADER)?;
        if chunk == 0 || top < from {
            return None;
        }
        let mut header = [0u8; CHUNK_HEADER];
        if !self.memory.read(chunk, &mut header) {
            return None;
        }
        let size = word_at(&header, 8);
        (size <= MAX_CHUNK && top - chunk <= size).then_some((from, top))
    }
}

#[cfg(test)]
mod tests {
    //! The reader on a thread state laid out by hand (CPython 3.12's
    //! layout), made current by a stand-in for CPython's thread-local.

    use super::*;
    use std::cell::Cell;

    thread_local! {
        static TSTATE: Cell<usize> = const { Cell::new(0) };
    }

    unsafe extern "C" fn this_thread_state() -> usize {
        TSTATE.with(Cell::get)
    }

    fn put(block: &mut [u8], offset: usize, value: usize) {
        block[offset..offset + 8].copy_from_slice(&value.to_ne_bytes());
    }

    /// A thread running `inner` called from `outer` (in its chunk,
    /// through a C call's entry frame), resumed from a generator's frame
    /// (in its own object). Code objects are only addresses here.
    struct Fixture {
        chunk: Vec<u8>,
        generator: Vec<u8>,
        cframe: Vec<u8>,
        thread: Vec<u8>,
    }

    const INNER: usize = 0x1111;
    const OUTER: usize = 0x2222;
    const PRODUCE: usize = 0x3333;

    fn fixture() -> Fixture {
        let mut generator = vec![0u8; 80];
        put(&mut generator, 0, PRODUCE);
        generator[70] = 1;
        let mut chunk = vec![0u8; CHUNK_HEADER + 3 * 80];
        let base = chunk.as_ptr() as usize;
        let len = chunk.len();
        put(&mut chunk, 8, len);
        let (outer, entry, inner) = (base + 24, base + 104, base + 184);
        put(&mut chunk, 24, OUTER);
        put(&mut chunk, 24 + 8, generator.as_ptr() as usize);
        put(&mut chunk, 104 + 8, outer);
        chunk[104 + 70] = 3;
        put(&mut chunk, 184, INNER);
        put(&mut chunk, 184 + 8, entry);
        let mut cframe = vec![0u8; 16];
        put(&mut cframe, 0, inner);
        let mut thread = vec![0u8; 288];
        put(&mut thread, 56, cframe.as_ptr() as usize);
        put(&mut thread, 232, base);
        put(&mut thread, 240, base + len);
        Fixture {
            chunk,
            generator,
            cframe,
            thread,
        }
    }

    fn read(fixture: &Fixture, out: &mut [u64]) -> CurrentStack {
        TSTATE.with(|t| t.set(fixture.thread.as_ptr() as usize));
        let reader = CurrentThreadReader::new((3, 12), this_thread_state).unwrap();
        let read = reader.read(out);
        TSTATE.with(|t| t.set(0));
        read
    }

    #[test]
    fn the_calling_threads_code_objects_come_innermost_first_past_entry_frames_and_into_generators() {
        let f = fixture();
        let mut out = [0u64; 16];
        assert_eq!(read(&f, &mut out), CurrentStack::Frames(3));
        assert_eq!(&out[..3], &[INNER as u64, OUTER as u64, PRODUCE as u64]);
        // A shorter buffer keeps the innermost frames.
        let mut two = [0u64; 2];
        assert_eq!(read(&f, &mut two), CurrentStack::Frames(2));
        assert_eq!(two, [INNER as u64, OUTER as u64]);
        assert!(!f.generator.is_empty() && !f.cframe.is_empty() && !f.chunk.is_empty());
    }

    #[test]
    fn a_thread_without_python_state_is_not_python() {
        let reader = CurrentThreadReader::new((3, 13), this_thread_state).unwrap();
        assert_eq!(reader.read(&mut [0u64; 4]), CurrentStack::NotPython);
        assert!(CurrentThreadReader::new((3, 8), this_thread_state).is_none());
    }

    #[test]
    fn frames_linked_as_objects_are_each_copied_3_9_and_3_10() {
        // `PyFrameObject`s: `f_back` at 24, `f_code` at 32; the thread
        // state's `frame` at 24.
        let mut outer = vec![0u8; 48];
        put(&mut outer, 32, OUTER);
        let mut inner = vec![0u8; 48];
        put(&mut inner, 24, outer.as_ptr() as usize);
        put(&mut inner, 32, INNER);
        let mut thread = vec![0u8; 192];
        put(&mut thread, 24, inner.as_ptr() as usize);
        let reader = CurrentThreadReader::new((3, 10), this_thread_state).unwrap();
        TSTATE.with(|t| t.set(thread.as_ptr() as usize));
        let mut out = [0u64; 8];
        assert_eq!(reader.read(&mut out), CurrentStack::Frames(2));
        assert_eq!(&out[..2], &[INNER as u64, OUTER as u64]);
        // A torn `f_back` is a failed copy.
        put(&mut inner, 24, 0x1000);
        assert_eq!(reader.read(&mut out), CurrentStack::Torn);
        TSTATE.with(|t| t.set(0));
    }

    #[test]
    fn torn_pointers_are_a_failed_read_never_a_fault() {
        let mut out = [0u64; 16];
        for garbage in [8, usize::MAX - 10, usize::MAX / 2, 0x1000] {
            // The generator's frame leads nowhere.
            let mut f = fixture();
            put(&mut f.generator, 8, garbage);
            assert_eq!(read(&f, &mut out), CurrentStack::Torn, "previous = {garbage:#x}");
            // The current frame's address leads nowhere.
            let mut f = fixture();
            put(&mut f.cframe, 0, garbage);
            assert_eq!(read(&f, &mut out), CurrentStack::Torn);
            // The chunk named by the thread is not mapped: its frames are
            // copied, and the copies tell.
            let mut f = fixture();
            put(&mut f.thread, 232, garbage);
            assert_eq!(read(&f, &mut out), CurrentStack::Frames(3));
            // A top past what the chunk's header says it holds: copied too.
            let mut f = fixture();
            let top = f.chunk.as_ptr() as usize + (usize::MAX / 4);
            put(&mut f.thread, 240, top);
            assert_eq!(read(&f, &mut out), CurrentStack::Frames(3));
            // The thread state itself unreadable.
            TSTATE.with(|t| t.set(garbage));
            let reader = CurrentThreadReader::new((3, 12), this_thread_state).unwrap();
            assert_eq!(reader.read(&mut out), CurrentStack::Torn);
            TSTATE.with(|t| t.set(0));
        }
    }

    #[test]
    fn a_cycle_of_frames_ends_at_the_buffers_end() {
        let mut f = fixture();
        // Outer's caller is inner again: a torn read's cycle.
        let inner = f.chunk.as_ptr() as usize + 184;
        put(&mut f.chunk, 24 + 8, inner);
        let mut out = [0u64; 7];
        assert_eq!(read(&f, &mut out), CurrentStack::Frames(7));
    }
}
