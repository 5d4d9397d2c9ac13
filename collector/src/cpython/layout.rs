//! Where CPython keeps what a stack read needs, per version (x86_64 and
//! other 64-bit Linux targets): offsets in `PyThreadState`, the
//! interpreter's frames (`_PyInterpreterFrame`), code objects and
//! strings. Taken from each version's headers (`offsetof` on
//! `Include/cpython/pystate.h`, `Include/internal/pycore_frame.h`,
//! `Include/cpython/code.h`, `Include/cpython/unicodeobject.h`,
//! `Include/internal/pycore_runtime.h` and `pycore_interp.h` of 3.11.7,
//! 3.12.1 and 3.13.0, compiled with `Py_BUILD_CORE`); these structures keep their layout within a
//! minor version (extensions built against one patch release run on the
//! others). The agent checks them on the running interpreter before it
//! uses them ([`super::walker::Walker::check`]); a reader of another
//! process checks that the threads it finds are that process's.

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
    /// 3.13: `tstate->current_frame`.
    Direct(usize),
}

/// Offsets (bytes) of one CPython version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// `_PyRuntimeState.interpreters.head`: the first interpreter, from
    /// `_PyRuntime` (what a reader of another process starts from).
    pub runtime_interpreters: usize,
    /// `PyInterpreterState.threads.head`: its first thread.
    pub interpreter_threads: usize,
    /// `PyThreadState.next`.
    pub thread_next: usize,
    /// `PyThreadState.native_thread_id` (the thread's kernel id).
    pub thread_native_id: usize,
    /// The thread's innermost frame.
    pub current_frame: CurrentFrame,
    /// `PyThreadState.datastack_chunk`: the chunk frames are pushed on.
    pub thread_chunk: usize,
    /// `PyThreadState.datastack_top`: the end of its used part.
    pub thread_chunk_top: usize,
    /// `_PyInterpreterFrame.f_code` (3.13: `f_executable`).
    pub frame_code: usize,
    /// `_PyInterpreterFrame.previous`.
    pub frame_previous: usize,
    /// `_PyInterpreterFrame.owner` (one byte).
    pub frame_owner: usize,
    /// `_PyInterpreterFrame.is_entry` (3.11, one byte): the frame is the
    /// first of its call of the evaluator (`_PyEval_EvalFrameDefault`).
    /// 3.12 and later mark that call with a frame of `cstack_owner`.
    pub frame_is_entry: Option<usize>,
    /// The owner of a frame that stands for a C call into the
    /// interpreter, not Python code (`FRAME_OWNED_BY_CSTACK`, 3.12+).
    pub cstack_owner: Option<u8>,
    /// `PyCodeObject.co_firstlineno`.
    pub code_first_line: usize,
    /// `PyCodeObject.co_filename`.
    pub code_filename: usize,
    /// `PyCodeObject.co_name`.
    pub code_name: usize,
    /// `PyCodeObject.co_qualname`.
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
            thread_native_id: 0,
            current_frame: CurrentFrame::Direct(0),
            thread_chunk: 0,
            thread_chunk_top: 0,
            frame_code: 0,
            frame_previous: 8,
            frame_owner: 70,
            frame_is_entry: None,
            cstack_owner: Some(3),
            code_first_line: 68,
            code_filename: 112,
            code_name: 120,
            code_qualname: 128,
            ascii_header: 40,
            compact_header: 56,
        };
        match (major, minor) {
            (3, 11) => Some(Layout {
                interpreter_threads: 16,
                thread_native_id: 160,
                current_frame: CurrentFrame::ThroughCFrame {
                    cframe: 56,
                    current_frame: 8,
                },
                thread_chunk: 296,
                thread_chunk_top: 304,
                frame_code: 32,
                frame_previous: 48,
                frame_owner: 69,
                frame_is_entry: Some(68),
                // Every frame of 3.11 runs Python code.
                cstack_owner: None,
                code_first_line: 72,
                ascii_header: 48,
                compact_header: 72,
                ..common
            }),
            (3, 12) => Some(Layout {
                thread_native_id: 144,
                current_frame: CurrentFrame::ThroughCFrame {
                    cframe: 56,
                    current_frame: 0,
                },
                thread_chunk: 232,
                thread_chunk_top: 240,
                ..common
            }),
            (3, 13) => Some(Layout {
                runtime_interpreters: 632,
                interpreter_threads: 7344,
                thread_native_id: 160,
                current_frame: CurrentFrame::Direct(72),
                thread_chunk: 232,
                thread_chunk_top: 240,
                ..common
            }),
            _ => None,
        }
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
        [
            self.thread_next,
            self.thread_native_id,
            frame,
            self.thread_chunk,
            self.thread_chunk_top,
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
            + 8
    }

    /// Bytes of a frame a read needs.
    pub fn frame_len(&self) -> usize {
        (self.frame_code.max(self.frame_previous) + 8).max(self.frame_owner + 1)
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
    fn the_versions_read_here_are_311_to_313() {
        for minor in [11, 12, 13] {
            let layout = Layout::of(3, minor).unwrap();
            assert!(layout.thread_len() <= 312, "3.{minor}: {}", layout.thread_len());
            assert!(layout.frame_len() <= 80);
            assert_eq!(layout.code_len(), 136);
        }
        for (major, minor) in [(3, 9), (3, 10), (3, 14), (2, 7)] {
            assert_eq!(Layout::of(major, minor), None);
        }
    }
}
