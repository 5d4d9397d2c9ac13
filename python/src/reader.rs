//! What reads the interpreter's stacks ([`Reader`]: the agent's own
//! reader, or py-spy) and how their frames are named and numbered
//! ([`frame_name`], [`FrameIds`]).

use std::sync::Mutex;

use py_spy::config::LockingStrategy;
use py_spy::{Config, PythonSpy};
use rustc_hash::FxHashMap;

use flameshift_collector::cpython::naming::{frame_name, short_file};
use flameshift_collector::cpython::{Thread, Walker};

use flameshift_collector::cpython::pthread::PthreadTids;

/// A Python frame: its name ([`frame_name`]), file, line.
pub type FrameKey = (String, String, i32);

/// Every frame seen, by id (frames are few: a program's functions and
/// lines).
#[derive(Debug, Default)]
pub struct FrameIds {
    ids: FxHashMap<FrameKey, u32>,
    /// The frames, by id.
    pub frames: Vec<FrameKey>,
}

impl FrameIds {
    /// `frame`'s id (a new one the first time).
    pub fn id(&mut self, frame: FrameKey) -> u32 {
        if let Some(&id) = self.ids.get(&frame) {
            return id;
        }
        let id = self.frames.len() as u32;
        self.frames.push(frame.clone());
        self.ids.insert(frame, id);
        id
    }
}

/// What reads the stacks: the agent's own reader (CPython 3.9 to 3.13,
/// a few copies per thread) or py-spy (every version it knows, several
/// copies per frame).
pub enum Reader {
    /// The agent's own reader.
    Own {
        /// It.
        walker: Box<Walker>,
        /// The threads of the last read (kept to spare an allocation).
        threads: Vec<Thread>,
    },
    /// py-spy, used as a library.
    PySpy {
        /// It.
        spy: Box<PythonSpy>,
        /// A thread's kernel id from its `pthread_t`, for versions whose
        /// thread states keep no other (3.9, 3.10).
        pthread_tids: Option<PthreadTids>,
    },
}

/// py-spy, reading this process.
pub fn py_spy_reader() -> Result<PythonSpy, String> {
    let config = Config {
        blocking: LockingStrategy::NonBlocking,
        native: false,
        // Every thread, not only the GIL holder: a thread in C code
        // without the GIL is still read.
        gil_only: false,
        include_idle: true,
        // The line a function starts at (in the code object py-spy
        // reads anyway), not the line running: reading the line table
        // of every frame on every tick costs more syscalls than the
        // rest of the frame.
        lineno: py_spy::config::LineNo::First,
        // One name lookup per thread, once: names are not used.
        collect_thread_names: false,
        ..Config::default()
    };
    let pid = std::process::id() as py_spy::Pid;
    PythonSpy::new(pid, &config).map_err(|e| format!("cannot read this interpreter's frames: {e}"))
}

/// A read that failed as a whole: the thread list could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadFailed;

impl Reader {
    /// What it is called in `flameshift.stats()`.
    pub fn name(&self) -> &'static str {
        match self {
            Reader::Own { .. } => "flameshift-thread",
            Reader::PySpy { .. } => "py-spy",
        }
    }

    /// Every Python thread's stack now, innermost frame first, as frame
    /// ids of `frames` (`None`: torn while read; empty: not read, where
    /// `wanted` says the thread is not; py-spy reads them all); `Err`
    /// when the read failed as a whole.
    pub fn read(
        &mut self,
        frames: &Mutex<FrameIds>,
        import_paths: &[String],
        wanted: &dyn Fn(i32) -> bool,
        out: &mut Vec<(i32, Option<Vec<u32>>)>,
    ) -> Result<(), ReadFailed> {
        out.clear();
        let intern = |frames: &mut FrameIds, qualname: &str, filename: &str, line: i32| {
            let name = frame_name(qualname, short_file(filename, import_paths));
            frames.id((name, filename.to_owned(), line))
        };
        match self {
            Reader::Own { walker, threads } => {
                walker.threads(threads).map_err(|_| ReadFailed)?;
                for thread in threads.iter() {
                    let mut stack = Vec::new();
                    if !wanted(thread.tid) {
                        out.push((thread.tid, Some(stack)));
                        continue;
                    }
                    let read = walker.stack(
                        thread,
                        &mut |f| {
                            let mut frames = frames.lock().unwrap_or_else(|e| e.into_inner());
                            intern(&mut frames, f.qualname, f.filename, f.line)
                        },
                        &mut stack,
                    );
                    out.push((thread.tid, read.is_ok().then_some(stack)));
                }
            }
            Reader::PySpy { spy, pthread_tids } => {
                let traces = spy.get_stack_traces().map_err(|_| ReadFailed)?;
                let mut frames = frames.lock().unwrap_or_else(|e| e.into_inner());
                for trace in traces {
                    let tid = match trace.os_thread_id {
                        Some(tid) => i32::try_from(tid).ok(),
                        None => pthread_tids.and_then(|p| p.tid(trace.thread_id)),
                    };
                    let Some(tid) = tid else {
                        continue;
                    };
                    let stack = trace
                        .frames
                        .iter()
                        .map(|f| intern(&mut frames, &f.name, &f.filename, f.line))
                        .collect();
                    out.push((tid, Some(stack)));
                }
            }
        }
        Ok(())
    }
}
