//! flameshift's reader of CPython's stacks (3.9 to 3.13), in its own
//! process (the Python agent) or another (`record`, `attach`): a few
//! copies per thread instead of several per frame.
//!
//! Per thread and tick: its `PyThreadState` (one copy, which also gives
//! the next thread), its innermost frame's address (3.11, 3.12: one more
//! copy), the chunk of the thread's frame stack in use (3.11+: one copy
//! of a few kilobytes, which holds every frame of plain calls; frames of
//! generators and coroutines live in their objects and are copied one
//! by one, as every frame of 3.9 and 3.10 is). A code object is known
//! by its address: its header (names' addresses, first line) and names
//! are read the first time it is seen
//! (the headers of a stack's new code objects in one copy of many
//! ranges), and every second the headers of those seen are read again,
//! so that a code object freed and another made at its address is read
//! anew. py-spy, which copies each frame,
//! code object and name separately, spends 6.5 times as much a tick on
//! a 30-frame stack at 99 Hz, 10 times at 999 Hz (BENCHMARKS.md, "The
//! Python agent").

#![allow(unsafe_code)]

use rustc_hash::FxHashMap;

use super::layout::{FrameKind, Layout, ThreadId, OBJECT_TYPE, STRING_LENGTH, STRING_STATE};
use super::memory::{i32_at, word_at, Memory};
use super::pthread::PthreadTids;

/// Where an interpreter's first thread is found.
#[derive(Debug, Clone, Copy)]
pub enum ThreadHead {
    /// In this process: `PyInterpreterState_ThreadHead` (a read of one
    /// field, safe without the GIL), called on the state.
    Function(unsafe extern "C" fn(usize) -> usize),
    /// In another process: the word at `Layout::interpreter_threads` of
    /// the state.
    Field,
}

/// What a reader knows of an interpreter: for the Python agent, found
/// with the GIL held when it starts; for `record` and `attach`, from
/// the target's symbols ([`super::process`]).
#[derive(Debug, Clone, Copy)]
pub struct Interpreter {
    /// `sys.version_info[:2]`.
    pub version: (u8, u8),
    /// The interpreter state (`PyInterpreterState_Get()`).
    pub state: usize,
    /// Where its first thread is found.
    pub thread_head: ThreadHead,
    /// `&PyCode_Type`: what a code object's type is.
    pub code_type: usize,
    /// `&PyUnicode_Type`: what a string's type is.
    pub string_type: usize,
}

/// A Python thread as read at one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thread {
    /// Its kernel thread id.
    pub tid: i32,
    /// Its innermost frame (0: no Python code running).
    frame: usize,
    /// Its frame stack's chunk in use, and the end of its used part.
    chunk: (usize, usize),
}

/// A stack whose read failed: its thread changed it (or exited) while
/// it was copied, and a pointer led nowhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Torn;

/// A frame as the profile names it, which the caller interns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedFrame<'a> {
    /// `co_qualname`.
    pub qualname: &'a str,
    /// `co_filename`.
    pub filename: &'a str,
    /// `co_firstlineno`.
    pub line: i32,
}

/// A code object's names (where its qualified name and file name are)
/// and first line.
type CodeKey = (usize, usize, i32);

/// A code object whose names were read.
#[derive(Debug, Clone, Copy)]
struct Code {
    key: CodeKey,
    /// What the caller interned its frame as.
    id: u32,
    /// Seen in a stack since the last sweep.
    seen: bool,
}

/// How often the code objects known by address are checked.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The most code objects whose names are kept; past it the cache starts
/// over (a program that makes code without end, through `exec`).
const MAX_CODES: usize = 100_000;
/// The most frames of one stack followed (a cycle in a torn read ends).
const MAX_DEPTH: usize = 4_096;
/// The largest frame-stack chunk copied whole.
const MAX_CHUNK: usize = 1 << 20;
/// The longest name read.
const MAX_NAME: usize = 4_096;

/// Reads the stacks of one interpreter's threads.
#[derive(Debug)]
pub struct Walker {
    interpreter: Interpreter,
    layout: Layout,
    memory: Memory,
    /// Kernel ids of threads named by their `pthread_t` (3.9, 3.10).
    pthread_tids: Option<PthreadTids>,
    codes: FxHashMap<usize, Code>,
    swept: std::time::Instant,
    state: Vec<u8>,
    chunk: Vec<u8>,
    frame: Vec<u8>,
    code_addrs: Vec<(usize, usize)>,
    entries: Vec<usize>,
    misses: Vec<(usize, usize)>,
    headers: Vec<u8>,
}

impl Walker {
    /// A reader of `interpreter`'s stacks in `memory`; `None` for a
    /// version it has no layout of, or one that names threads by their
    /// `pthread_t` where this C library's descriptors do not show their
    /// kernel ids ([`super::pthread`]).
    pub fn new(interpreter: Interpreter, memory: Memory) -> Option<Walker> {
        let layout = Layout::of(interpreter.version.0, interpreter.version.1)?;
        let pthread_tids = match layout.thread_id {
            ThreadId::Native(_) => None,
            ThreadId::Pthread(_) => Some(PthreadTids::of(memory)?),
        };
        Some(Walker {
            interpreter,
            layout,
            memory,
            pthread_tids,
            codes: FxHashMap::default(),
            swept: std::time::Instant::now(),
            state: vec![0; layout.thread_len()],
            chunk: Vec::new(),
            frame: vec![0; layout.frame_len()],
            code_addrs: Vec::new(),
            entries: Vec::new(),
            misses: Vec::new(),
            headers: Vec::new(),
        })
    }

    /// The interpreter's threads now; `Torn` when the list changed while
    /// it was read.
    pub fn threads(&mut self, out: &mut Vec<Thread>) -> Result<(), Torn> {
        self.sweep();
        out.clear();
        let state = self.interpreter.state;
        let mut at = match self.interpreter.thread_head {
            // SAFETY: `head` is CPython's `PyInterpreterState_ThreadHead`,
            // which returns one field of the interpreter state (alive as
            // long as the process); it takes no lock and needs no GIL.
            ThreadHead::Function(head) => unsafe { head(state) },
            ThreadHead::Field => self
                .memory
                .word(state.wrapping_add(self.layout.interpreter_threads))
                .ok_or(Torn)?,
        };
        while at != 0 {
            if out.len() >= MAX_DEPTH || !self.memory.read(at, &mut self.state) {
                return Err(Torn);
            }
            let state = &self.state;
            let frame = self.layout.innermost_frame(state, &self.memory).ok_or(Torn)?;
            let tid = match self.layout.thread_id {
                ThreadId::Native(at) => word_at(state, at) as i32,
                // A thread whose descriptor no longer reads (it exited)
                // is 0: named by no sample, weighed by no clock.
                ThreadId::Pthread(at) => self
                    .pthread_tids
                    .and_then(|tids| tids.tid(word_at(state, at) as u64))
                    .unwrap_or(0),
            };
            out.push(Thread {
                tid,
                frame,
                chunk: self.layout.chunk_in_use(state),
            });
            at = word_at(state, self.layout.thread_next);
        }
        Ok(())
    }

    /// Where the last stack read splits into calls of the evaluator
    /// (`_PyEval_EvalFrameDefault`, one native frame each): the index in
    /// it of each call's outermost frame, innermost call first. What
    /// `record` needs to put each call's Python frames in place of its
    /// native frame.
    pub fn entries(&self) -> &[usize] {
        &self.entries
    }

    /// `thread`'s stack, innermost frame first, as the ids `intern`
    /// gives each frame (called once per code object, not per read).
    pub fn stack(
        &mut self,
        thread: &Thread,
        intern: &mut dyn FnMut(NamedFrame<'_>) -> u32,
        out: &mut Vec<u32>,
    ) -> Result<(), Torn> {
        out.clear();
        self.code_addrs.clear();
        self.entries.clear();
        let layout = self.layout;
        let (chunk, top) = thread.chunk;
        let chunk_len = top.wrapping_sub(chunk);
        let chunk_read = chunk != 0 && top > chunk && chunk_len <= MAX_CHUNK && {
            self.chunk.resize(chunk_len, 0);
            self.memory.read(chunk, &mut self.chunk)
        };
        let mut at = thread.frame;
        while at != 0 {
            if self.code_addrs.len() >= MAX_DEPTH {
                return Err(Torn);
            }
            // Where the frame lies in the chunk copied, if it does (a torn
            // read's pointer can be anything: no arithmetic may wrap).
            let in_chunk = at
                .checked_sub(chunk)
                .and_then(|from| Some(from..from.checked_add(layout.frame_len())?))
                .filter(|range| chunk_read && range.end <= self.chunk.len());
            let frame: &[u8] = if let Some(range) = in_chunk {
                &self.chunk[range]
            } else {
                if !self.memory.read(at, &mut self.frame) {
                    return Err(Torn);
                }
                &self.frame
            };
            match layout.frame_kind(frame) {
                FrameKind::Python { entry } => {
                    self.code_addrs
                        .push((word_at(frame, layout.frame_code), layout.code_len()));
                    if entry {
                        self.entries.push(self.code_addrs.len() - 1);
                    }
                }
                FrameKind::CStack => {
                    // The frames read so far were one call's: the next
                    // ones are its caller's.
                    if let Some(last) = self.code_addrs.len().checked_sub(1) {
                        if self.entries.last() != Some(&last) {
                            self.entries.push(last);
                        }
                    }
                }
            }
            at = word_at(frame, layout.frame_previous);
        }
        self.name(intern, out)
    }

    /// The code objects at `codes` (a stack the calling thread read of
    /// itself, [`super::current`]), as the ids `intern` gives each frame:
    /// `Torn` when one of them is not a code object (any more).
    pub fn name_codes(
        &mut self,
        codes: &[u64],
        intern: &mut dyn FnMut(NamedFrame<'_>) -> u32,
        out: &mut Vec<u32>,
    ) -> Result<(), Torn> {
        self.sweep();
        out.clear();
        let code_len = self.layout.code_len();
        self.code_addrs.clear();
        self.code_addrs
            .extend(codes.iter().map(|&code| (code as usize, code_len)));
        self.name(intern, out)
    }

    /// The code objects of `self.code_addrs`, named.
    fn name(
        &mut self,
        intern: &mut dyn FnMut(NamedFrame<'_>) -> u32,
        out: &mut Vec<u32>,
    ) -> Result<(), Torn> {
        let layout = self.layout;
        // Code objects known by their address are taken without a read
        // (the sweep checks them every second); the others' headers are
        // read in one copy and their names once.
        self.misses.clear();
        for &(code, _) in &self.code_addrs {
            if !self.codes.contains_key(&code) && !self.misses.iter().any(|&(c, _)| c == code) {
                self.misses.push((code, layout.code_len()));
            }
        }
        if !self.misses.is_empty() {
            let code_len = layout.code_len();
            self.headers.resize(self.misses.len() * code_len, 0);
            if self.memory.read_many(&self.misses, &mut self.headers) < self.misses.len() {
                return Err(Torn);
            }
            for i in 0..self.misses.len() {
                let code = self.misses[i].0;
                let key = self
                    .key(&self.headers[i * code_len..(i + 1) * code_len])
                    .ok_or(Torn)?;
                let name = self.string(key.0).ok_or(Torn)?;
                let filename = self.string(key.1).ok_or(Torn)?;
                let id = intern(NamedFrame {
                    qualname: &name,
                    filename: &filename,
                    line: key.2,
                });
                if self.codes.len() >= MAX_CODES {
                    self.codes.clear();
                }
                self.codes.insert(code, Code { key, id, seen: true });
            }
        }
        for &(code, _) in &self.code_addrs {
            let known = self.codes.get_mut(&code).ok_or(Torn)?;
            known.seen = true;
            out.push(known.id);
        }
        Ok(())
    }

    /// A code object's names and first line, from its header; `None`
    /// when what was read is not a code object.
    fn key(&self, header: &[u8]) -> Option<CodeKey> {
        let layout = self.layout;
        if word_at(header, OBJECT_TYPE) != self.interpreter.code_type {
            return None;
        }
        let qualname = match word_at(header, layout.code_qualname) {
            0 => word_at(header, layout.code_name),
            qualname => qualname,
        };
        Some((
            qualname,
            word_at(header, layout.code_filename),
            i32_at(header, layout.code_first_line),
        ))
    }

    /// Every second: the code objects seen since the last sweep are read
    /// again, and kept only where they still have the names they had (a
    /// code object freed and another made at its address is read anew);
    /// those not seen are forgotten. So a name is trusted by address for
    /// at most a second after its code object is gone.
    fn sweep(&mut self) {
        if self.swept.elapsed() < SWEEP_EVERY {
            return;
        }
        self.swept = std::time::Instant::now();
        self.codes.retain(|_, code| std::mem::take(&mut code.seen));
        let code_len = self.layout.code_len();
        let ranges: Vec<(usize, usize)> = self.codes.keys().map(|&code| (code, code_len)).collect();
        let mut headers = vec![0u8; ranges.len() * code_len];
        let mut from = 0;
        while from < ranges.len() {
            let copied = from
                + self
                    .memory
                    .read_many(&ranges[from..], &mut headers[from * code_len..]);
            for (i, &(code, _)) in ranges.iter().enumerate().take(copied).skip(from) {
                let key = self.key(&headers[i * code_len..(i + 1) * code_len]);
                if key != self.codes.get(&code).map(|c| c.key) {
                    self.codes.remove(&code);
                }
            }
            // The range at `copied` is not mapped: its code object is gone.
            if let Some(&(code, _)) = ranges.get(copied) {
                self.codes.remove(&code);
            }
            from = copied + 1;
        }
    }

    /// The string object at `at` (compact, as names and file names are).
    fn string(&self, at: usize) -> Option<String> {
        let layout = self.layout;
        let mut header = vec![0u8; layout.compact_header];
        if !self.memory.read(at, &mut header) || word_at(&header, OBJECT_TYPE) != self.interpreter.string_type
        {
            return None;
        }
        let length = word_at(&header, STRING_LENGTH);
        let state = i32_at(&header, STRING_STATE) as u32;
        let (kind, compact, ascii) = ((state >> 2) & 7, (state >> 5) & 1 == 1, (state >> 6) & 1 == 1);
        if !compact || length > MAX_NAME || !matches!(kind, 1 | 2 | 4) {
            return None;
        }
        let data = if ascii {
            layout.ascii_header
        } else {
            layout.compact_header
        };
        let mut chars = vec![0u8; length * kind as usize];
        if !self.memory.read(at.wrapping_add(data), &mut chars) {
            return None;
        }
        Some(match kind {
            1 => chars.iter().map(|&c| char::from(c)).collect(),
            2 => chars
                .chunks_exact(2)
                .map(|c| char::from_u32(u32::from(u16::from_ne_bytes([c[0], c[1]]))).unwrap_or('\u{fffd}'))
                .collect(),
            _ => chars
                .chunks_exact(4)
                .map(|c| char::from_u32(u32::from_ne_bytes([c[0], c[1], c[2], c[3]])).unwrap_or('\u{fffd}'))
                .collect(),
        })
    }

    /// Whether this reader reads `tid`'s stack as `expected` (innermost
    /// first: qualified name and file of each frame), which the caller
    /// took from the interpreter itself while `tid` holds still (it holds
    /// the GIL and waits for this check). The layout is used only when
    /// it passes; the error says what differed.
    pub fn check(&mut self, tid: i32, expected: &[(String, String)]) -> Result<(), String> {
        let mut threads = Vec::new();
        self.threads(&mut threads)
            .map_err(|_| "the thread list could not be read".to_owned())?;
        let thread = threads
            .iter()
            .find(|t| t.tid == tid)
            .ok_or_else(|| format!("thread {tid} is not among the {} threads read", threads.len()))?;
        let mut names: Vec<(String, String)> = Vec::new();
        let mut ids = Vec::new();
        self.stack(
            thread,
            &mut |frame| {
                names.push((frame.qualname.to_owned(), frame.filename.to_owned()));
                names.len() as u32 - 1
            },
            &mut ids,
        )
        .map_err(|_| "the calling thread's stack could not be read".to_owned())?;
        // Those ids were this check's own: the cache starts over.
        self.codes.clear();
        let read: Vec<&(String, String)> = ids.iter().map(|&id| &names[id as usize]).collect();
        let expected: Vec<&(String, String)> = expected.iter().collect();
        if read == expected {
            Ok(())
        } else {
            Err(format!("read {read:?} where the interpreter has {expected:?}"))
        }
    }
}

#[cfg(test)]
mod tests {
    //! The reader on an interpreter's structures laid out by hand in
    //! this test's memory (CPython 3.12's layout): what it follows, and
    //! what a torn read does (an error, never a fault or a panic).

    use super::*;

    /// A block of memory at a stable address.
    struct Block(Box<[u8]>);

    impl Block {
        fn new(len: usize) -> Block {
            Block(vec![0; len].into_boxed_slice())
        }
        fn at(&self) -> usize {
            self.0.as_ptr() as usize
        }
        fn put(&mut self, offset: usize, value: usize) {
            self.0[offset..offset + 8].copy_from_slice(&value.to_ne_bytes());
        }
    }

    static CODE_TYPE: u8 = 0;
    static STRING_TYPE: u8 = 0;

    extern "C" fn head(state: usize) -> usize {
        state
    }

    /// A compact ASCII string of 3.12 (its characters past a 40-byte
    /// header).
    fn ascii(text: &str) -> Block {
        ascii_after(40, text)
    }

    /// A compact ASCII string whose characters follow a `header`-byte
    /// `PyASCIIObject`.
    fn ascii_after(header: usize, text: &str) -> Block {
        let mut s = Block::new(header + text.len() + 1);
        s.put(OBJECT_TYPE, &STRING_TYPE as *const u8 as usize);
        s.put(STRING_LENGTH, text.len());
        s.put(STRING_STATE, (1 << 2) | (1 << 5) | (1 << 6));
        s.0[header..header + text.len()].copy_from_slice(text.as_bytes());
        s
    }

    fn code(name: &Block, file: &Block, line: usize) -> Block {
        let mut c = Block::new(136);
        c.put(OBJECT_TYPE, &CODE_TYPE as *const u8 as usize);
        c.put(68, line);
        c.put(112, file.at());
        c.put(120, name.at());
        c.put(128, name.at());
        c
    }

    /// A thread running `inner` called from `outer` (on the thread's
    /// frame stack, through a C call's entry frame), itself resumed from
    /// a generator's frame (in its own object).
    struct Fixture {
        strings: Vec<Block>,
        codes: Vec<Block>,
        chunk: Block,
        generator: Block,
        cframe: Block,
        thread: Block,
    }

    fn fixture() -> Fixture {
        let file = ascii("/srv/app.py");
        let names = ["inner", "outer", "Feed.produce"].map(ascii);
        let codes: Vec<Block> = names
            .iter()
            .zip([10, 20, 30])
            .map(|(n, line)| code(n, &file, line))
            .collect();
        let mut strings = vec![file];
        strings.extend(names);
        let mut generator = Block::new(80);
        generator.put(0, codes[2].at());
        generator.0[70] = 1;
        // The chunk: header, then outer's frame, an entry frame, inner's.
        let mut chunk = Block::new(24 + 3 * 80);
        let base = chunk.at();
        let (outer, entry, inner) = (base + 24, base + 104, base + 184);
        chunk.put(24, codes[1].at());
        chunk.put(24 + 8, generator.at());
        chunk.put(104 + 8, outer);
        chunk.0[104 + 70] = 3;
        chunk.put(184, codes[0].at());
        chunk.put(184 + 8, entry);
        let mut cframe = Block::new(16);
        cframe.put(0, inner);
        let mut thread = Block::new(288);
        thread.put(144, 4242);
        thread.put(56, cframe.at());
        thread.put(232, base);
        thread.put(240, base + chunk.0.len());
        Fixture {
            strings,
            codes,
            chunk,
            generator,
            cframe,
            thread,
        }
    }

    fn walker(fixture: &Fixture) -> Walker {
        Walker::new(
            Interpreter {
                version: (3, 12),
                state: fixture.thread.at(),
                thread_head: ThreadHead::Function(head),
                code_type: &CODE_TYPE as *const u8 as usize,
                string_type: &STRING_TYPE as *const u8 as usize,
            },
            Memory::this_process(),
        )
        .unwrap()
    }

    fn read(walker: &mut Walker) -> Result<Vec<String>, Torn> {
        read_with(walker, &mut Vec::new())
    }

    /// A read whose frames are interned in `names` (ids: its indices).
    fn read_with(walker: &mut Walker, names: &mut Vec<String>) -> Result<Vec<String>, Torn> {
        let mut threads = Vec::new();
        walker.threads(&mut threads)?;
        assert_eq!(threads.len(), 1);
        assert_eq!(threads[0].tid, 4242);
        let mut ids = Vec::new();
        walker.stack(
            &threads[0],
            &mut |f| {
                names.push(format!("{} {}:{}", f.qualname, f.filename, f.line));
                names.len() as u32 - 1
            },
            &mut ids,
        )?;
        Ok(ids.iter().map(|&id| names[id as usize].clone()).collect())
    }

    #[test]
    fn a_stack_is_read_through_entry_frames_and_into_generators() {
        let f = fixture();
        let mut walker = walker(&f);
        assert_eq!(
            read(&mut walker).unwrap(),
            [
                "inner /srv/app.py:10",
                "outer /srv/app.py:20",
                "Feed.produce /srv/app.py:30"
            ]
        );
        // Known by address the second time: the names are not read again.
        let mut ids = Vec::new();
        let mut threads = Vec::new();
        walker.threads(&mut threads).unwrap();
        walker
            .stack(&threads[0], &mut |_| panic!("names read again"), &mut ids)
            .unwrap();
        assert_eq!(ids.len(), 3);
        assert!(!f.strings.is_empty() && !f.cframe.0.is_empty());
    }

    #[test]
    fn torn_pointers_are_a_failed_read_never_a_fault() {
        for garbage in [8, usize::MAX - 10, usize::MAX / 2, 0x1000] {
            let mut f = fixture();
            // The generator's frame now leads nowhere.
            f.generator.put(8, garbage);
            assert_eq!(read(&mut walker(&f)), Err(Torn), "previous = {garbage:#x}");
            // Inner's frame points into the chunk's end, or past it.
            let mut f = fixture();
            let end = f.chunk.at() + f.chunk.0.len();
            f.chunk.put(184 + 8, end - 40);
            let _ = read(&mut walker(&f));
            // A code pointer to something that is not a code object.
            let mut f = fixture();
            f.chunk.put(184, f.strings[0].at());
            assert_eq!(read(&mut walker(&f)), Err(Torn));
            // A garbage thread list.
            let mut f = fixture();
            f.thread.put(8, garbage);
            let mut threads = Vec::new();
            assert_eq!(walker(&f).threads(&mut threads), Err(Torn));
        }
    }

    #[test]
    fn frames_of_3_10_are_objects_linked_by_f_back_each_its_own_evaluator_call() {
        // `PyASCIIObject` is 48 bytes on 3.10 (it has `wstr`).
        let file = ascii_after(48, "/srv/app.py");
        let names = ["inner", "outer"].map(|name| ascii_after(48, name));
        let codes: Vec<Block> = names
            .iter()
            .zip([10, 20])
            .map(|(name, line)| {
                let mut c = Block::new(120);
                c.put(OBJECT_TYPE, &CODE_TYPE as *const u8 as usize);
                c.put(40, line);
                c.put(104, file.at());
                c.put(112, name.at());
                c
            })
            .collect();
        let mut outer = Block::new(40);
        outer.put(32, codes[1].at());
        let mut inner = Block::new(40);
        inner.put(24, outer.at());
        inner.put(32, codes[0].at());
        // The thread: this test's own, named by its `pthread_t`.
        let mut thread = Block::new(192);
        thread.put(24, inner.at());
        // SAFETY: pthread_self takes nothing and cannot fail.
        thread.put(176, unsafe { libc::pthread_self() } as usize);
        let mut walker = Walker::new(
            Interpreter {
                version: (3, 10),
                state: thread.at(),
                thread_head: ThreadHead::Function(head),
                code_type: &CODE_TYPE as *const u8 as usize,
                string_type: &STRING_TYPE as *const u8 as usize,
            },
            Memory::this_process(),
        )
        .unwrap();
        let mut threads = Vec::new();
        walker.threads(&mut threads).unwrap();
        // SAFETY: gettid takes nothing and cannot fail.
        assert_eq!(threads[0].tid, unsafe { libc::gettid() });
        let mut names = Vec::new();
        let mut ids = Vec::new();
        walker
            .stack(
                &threads[0],
                &mut |f| {
                    names.push(format!("{} {}:{}", f.qualname, f.filename, f.line));
                    names.len() as u32 - 1
                },
                &mut ids,
            )
            .unwrap();
        let read: Vec<&str> = ids.iter().map(|&id| names[id as usize].as_str()).collect();
        assert_eq!(read, ["inner /srv/app.py:10", "outer /srv/app.py:20"]);
        assert_eq!(walker.entries(), [0, 1]);
        // A thread whose descriptor does not read is nobody's (0), its
        // stack still read.
        thread.put(176, 8);
        walker.threads(&mut threads).unwrap();
        assert_eq!(threads[0].tid, 0);
        // A torn `f_back`: a failed read.
        outer.put(24, 0x1000);
        assert_eq!(walker.stack(&threads[0], &mut |_| 0, &mut ids), Err(Torn));
        assert!(!names.is_empty() && !file.0.is_empty());
    }

    #[test]
    fn a_code_object_replaced_at_its_address_is_read_anew_after_a_sweep() {
        let mut f = fixture();
        let mut walker = walker(&f);
        let mut names = Vec::new();
        assert_eq!(
            read_with(&mut walker, &mut names).unwrap()[0],
            "inner /srv/app.py:10"
        );
        // Another function's code object where inner's was.
        let renamed = ascii("replacement");
        f.codes[0].put(120, renamed.at());
        f.codes[0].put(128, renamed.at());
        // Trusted by address until the sweep...
        assert_eq!(
            read_with(&mut walker, &mut names).unwrap()[0],
            "inner /srv/app.py:10"
        );
        walker.swept -= SWEEP_EVERY;
        // ...which finds its names changed.
        assert_eq!(
            read_with(&mut walker, &mut names).unwrap(),
            [
                "replacement /srv/app.py:10",
                "outer /srv/app.py:20",
                "Feed.produce /srv/app.py:30"
            ]
        );
    }
}
