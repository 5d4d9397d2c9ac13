//! Where CPython keeps what a stack read needs, per version (x86_64 and
//! other 64-bit Linux targets): offsets in `PyThreadState`, the
//! interpreter's frames (`_PyInterpreterFrame`; 3.9 and 3.10:
//! `PyFrameObject`), code objects and strings. Taken from each version's
//! headers (`offsetof` on `Include/cpython/pystate.h`,
//! `Include/internal/pycore_frame.h` (3.9, 3.10:
//! `Include/cpython/frameobject.h`), `Include/cpython/code.h`,
//! `Include/cpython/unicodeobject.h`, `Include/internal/pycore_runtime.h`
//! and `pycore_interp.h` of 3.9.18, 3.10.13, 3.11.7, 3.12.1 and 3.13.0,
//! compiled with `Py_BUILD_CORE`; 3.9's and 3.10's by
//! `scripts/cpython-offsets.c`); these structures keep their layout
//! within a minor version (extensions built against one patch release
//! run on the others). The agent checks them on the running interpreter
//! before it uses them ([`super::walker::Walker::check`]); a reader of
//! another process checks that the threads it finds are that process's.

/// Where a thread's innermost frame is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CurrentFrame {
    /// 3.11, 3.12: `tstate->cframe->current_frame`.
    ThroughCFrame {
        /// `PyThreadState.cframe`.
        cframe: usize,
        /// `_PyCFrame.current_frame`.
        current_frame: usize,
    },
    /// 3.9, 3.10: `tstate->frame`; 3.13: `tstate->current_frame`.
    Direct(usize),
}

/// How a thread state names its thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadId {
    /// 3.11+: `PyThreadState.native_thread_id`, the kernel's id.
    Native(usize),
    /// 3.9, 3.10: `PyThreadState.thread_id`, the thread's `pthread_t`
    /// only (its kernel id is read from the C library's thread
    /// descriptor, [`super::pthread`]).
    Pthread(usize),
}

/// How a stack's frames split into calls of the evaluator
/// (`_PyEval_EvalFrameDefault`, one native frame each), and which frames
/// run no Python code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Calls {
    /// 3.9, 3.10: each frame is a call of its own (frames are heap
    /// objects linked by `f_back`).
    EveryFrame,
    /// 3.11: `_PyInterpreterFrame.is_entry` (one byte) marks the first
    /// frame of a call; every frame runs Python code.
    EntryFlag(usize),
    /// 3.12+: a call starts with a frame that runs no Python code, whose
    /// `_PyInterpreterFrame.owner` (one byte, at `owner`) is `cstack`
    /// (`FRAME_OWNED_BY_CSTACK`).
    CStackFrames {
        /// `_PyInterpreterFrame.owner`.
        owner: usize,
        /// `FRAME_OWNED_BY_CSTACK`.
        cstack: u8,
    },
}

/// What one frame is, to a reader of a stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A frame of Python code; `entry` when it is the first (outermost)
    /// of its call of the evaluator.
    Python {
        /// The outermost frame of its evaluator call.
        entry: bool,
    },
    /// The mark of a C call into the evaluator (3.12+): no code of its own.
    CStack,
}

/// Offsets (bytes) of one CPython version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// `_PyRuntimeState.interpreters.head`: the first interpreter, from
    /// `_PyRuntime` (what a reader of another process starts from).
    pub runtime_interpreters: usize,
    /// `PyInterpreterState.threads.head` (3.9, 3.10: `tstate_head`): its
    /// first thread.
    pub interpreter_threads: usize,
    /// `PyThreadState.next`.
    pub thread_next: usize,
    /// How the thread is named.
    pub thread_id: ThreadId,
    /// The thread's innermost frame.
    pub current_frame: CurrentFrame,
    /// `PyThreadState.datastack_chunk` and `datastack_top` (3.11+): the
    /// chunk frames are pushed on and the end of its used part. `None`:
    /// every frame is an object of its own (3.9, 3.10).
    pub thread_chunk: Option<(usize, usize)>,
    /// `_PyInterpreterFrame.f_code` (3.13: `f_executable`; 3.9, 3.10:
    /// `PyFrameObject.f_code`).
    pub frame_code: usize,
    /// `_PyInterpreterFrame.previous` (3.9, 3.10: `PyFrameObject.f_back`).
    pub frame_previous: usize,
    /// How frames split into calls of the evaluator.
    pub calls: Calls,
    /// `PyCodeObject.co_firstlineno`.
    pub code_first_line: usize,
    /// `PyCodeObject.co_filename`.
    pub code_filename: usize,
    /// `PyCodeObject.co_name`.
    pub code_name: usize,
    /// `PyCodeObject.co_qualname` (3.9, 3.10 have none: `co_name`'s).
    pub code_qualname: usize,
    /// `sizeof(PyASCIIObject)`: where an ASCII string's characters are.
    pub ascii_header: usize,
    /// `sizeof(PyCompactUnicodeObject)`: where other strings' are.
    pub compact_header: usize,
}

/// `PyObject.ob_type`.
pub const OBJECT_TYPE: usize = 8;
/// `PyASCIIObject.length`.
pub const STRING_LENGTH: usize = 16;
/// `PyASCIIObject.state`: `interned:2, kind:3, compact:1, ascii:1`.
pub const STRING_STATE: usize = 32;

impl Layout {
    /// The layout of CPython `major.minor`, if this agent reads its
    /// frames itself (else py-spy does).
    pub fn of(major: u8, minor: u8) -> Option<Layout> {
        let common = Layout {
            runtime_interpreters: 40,
            interpreter_threads: 72,
            thread_next: 8,
            thread_id: ThreadId::Native(0),
            current_frame: CurrentFrame::Direct(0),
            thread_chunk: None,
            frame_code: 0,
            frame_previous: 8,
            calls: Calls::CStackFrames { owner: 70, cstack: 3 },
            code_first_line: 68,
            code_filename: 112,
            code_name: 120,
            code_qualname: 128,
            ascii_header: 40,
            compact_header: 56,
        };
        // 3.9 and 3.10 agree on every offset read (their frames are
        // `PyFrameObject`s: `PyObject_VAR_HEAD`, then `f_back`, `f_code`).
        let linked = Layout {
            runtime_interpreters: 32,
            interpreter_threads: 8,
            thread_id: ThreadId::Pthread(176),
            current_frame: CurrentFrame::Direct(24),
            frame_code: 32,
            frame_previous: 24,
            calls: Calls::EveryFrame,
            code_first_line: 40,
            code_filename: 104,
            code_name: 112,
            code_qualname: 112,
            ascii_header: 48,
            compact_header: 72,
            ..common
        };
        match (major, minor) {
            (3, 9 | 10) => Some(linked),
            (3, 11) => Some(Layout {
                interpreter_threads: 16,
                thread_id: ThreadId::Native(160),
                current_frame: CurrentFrame::ThroughCFrame {
                    cframe: 56,
                    current_frame: 8,
                },
                thread_chunk: Some((296, 304)),
                frame_code: 32,
                frame_previous: 48,
                calls: Calls::EntryFlag(68),
                code_first_line: 72,
                ascii_header: 48,
                compact_header: 72,
                ..common
            }),
            (3, 12) => Some(Layout {
                thread_id: ThreadId::Native(144),
                current_frame: CurrentFrame::ThroughCFrame {
                    cframe: 56,
                    current_frame: 0,
                },
                thread_chunk: Some((232, 240)),
                ..common
            }),
            (3, 13) => Some(Layout {
                runtime_interpreters: 632,
                interpreter_threads: 7344,
                thread_id: ThreadId::Native(160),
                current_frame: CurrentFrame::Direct(72),
                thread_chunk: Some((232, 240)),
                ..common
            }),
            _ => None,
        }
    }

    /// What the frame copied in `frame` is.
    pub fn frame_kind(&self, frame: &[u8]) -> FrameKind {
        match self.calls {
            Calls::EveryFrame => FrameKind::Python { entry: true },
            Calls::EntryFlag(at) => FrameKind::Python {
                entry: frame[at] != 0,
            },
            Calls::CStackFrames { owner, cstack } if frame[owner] == cstack => FrameKind::CStack,
            Calls::CStackFrames { .. } => FrameKind::Python { entry: false },
        }
    }

    /// The chunk of the frame stack a thread state (copied) names, and
    /// the end of its used part; `(0, 0)` where frames have no chunk.
    pub fn chunk_in_use(&self, state: &[u8]) -> (usize, usize) {
        self.thread_chunk.map_or((0, 0), |(chunk, top)| {
            (
                super::memory::word_at(state, chunk),
                super::memory::word_at(state, top),
            )
        })
    }

    /// A thread's innermost frame (0: no Python code running), from a
    /// copy of its `PyThreadState` (3.11, 3.12: one more copy, through
    /// its `_PyCFrame`); `None` when that copy fails.
    pub fn innermost_frame(&self, state: &[u8], memory: &super::memory::Memory) -> Option<usize> {
        match self.current_frame {
            CurrentFrame::Direct(offset) => Some(super::memory::word_at(state, offset)),
            CurrentFrame::ThroughCFrame {
                cframe,
                current_frame,
            } => match super::memory::word_at(state, cframe) {
                0 => Some(0),
                cframe => memory.word(cframe.wrapping_add(current_frame)),
            },
        }
    }

    /// Bytes of a `PyThreadState` a read needs.
    pub fn thread_len(&self) -> usize {
        let frame = match self.current_frame {
            CurrentFrame::ThroughCFrame { cframe, .. } => cframe,
            CurrentFrame::Direct(at) => at,
        };
        let (ThreadId::Native(id) | ThreadId::Pthread(id)) = self.thread_id;
        let (chunk, top) = self.thread_chunk.unwrap_or_default();
        [self.thread_next, id, frame, chunk, top]
            .into_iter()
            .max()
            .unwrap_or(0)
            + 8
    }

    /// Bytes of a frame a read needs.
    pub fn frame_len(&self) -> usize {
        let flag = match self.calls {
            Calls::EveryFrame => 0,
            Calls::EntryFlag(at) | Calls::CStackFrames { owner: at, .. } => at + 1,
        };
        (self.frame_code.max(self.frame_previous) + 8).max(flag)
    }

    /// Bytes of a code object a read needs.
    pub fn code_len(&self) -> usize {
        [
            self.code_filename,
            self.code_name,
            self.code_qualname,
            self.code_first_line,
            OBJECT_TYPE,
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
            + 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_versions_read_here_are_39_to_313() {
        for minor in [9, 10, 11, 12, 13] {
            let layout = Layout::of(3, minor).unwrap();
            assert!(layout.thread_len() <= 312, "3.{minor}: {}", layout.thread_len());
            assert!(layout.frame_len() <= 80);
            assert!(layout.code_len() <= 136);
            assert_eq!(layout.thread_chunk.is_none(), minor < 11, "3.{minor}");
            assert_eq!(matches!(layout.thread_id, ThreadId::Pthread(_)), minor < 11);
        }
        for (major, minor) in [(3, 8), (3, 14), (2, 7)] {
            assert_eq!(Layout::of(major, minor), None);
        }
    }

    #[test]
    fn frames_split_into_evaluator_calls_as_each_version_marks_them() {
        let mut frame = [0u8; 80];
        let linked = Layout::of(3, 10).unwrap();
        assert_eq!(linked.frame_kind(&frame), FrameKind::Python { entry: true });
        let flagged = Layout::of(3, 11).unwrap();
        assert_eq!(flagged.frame_kind(&frame), FrameKind::Python { entry: false });
        frame[68] = 1;
        assert_eq!(flagged.frame_kind(&frame), FrameKind::Python { entry: true });
        let owned = Layout::of(3, 12).unwrap();
        assert_eq!(owned.frame_kind(&frame), FrameKind::Python { entry: false });
        frame[70] = 3;
        assert_eq!(owned.frame_kind(&frame), FrameKind::CStack);
        // No chunk before 3.11: every frame is copied on its own.
        let mut state = [0xffu8; 320];
        assert_eq!(linked.chunk_in_use(&state), (0, 0));
        state[232..248].fill(0);
        assert_eq!(owned.chunk_in_use(&state), (0, 0));
    }
}
