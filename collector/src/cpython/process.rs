//! CPython in another process, found from outside: the library or
//! executable among its mappings that defines `_PyRuntime` (libpython,
//! or a python executable linked statically), where it was loaded, and
//! from its symbols the runtime state, the version (`Py_Version`, 3.11
//! and later) and the types of code objects and strings. The first
//! interpreter of the runtime is the one read (subinterpreters are not).

use std::collections::HashMap;
use std::sync::Arc;

use object::{Object, ObjectSegment, ObjectSymbol};

use super::layout::Layout;
use super::memory::Memory;
use super::walker::{Interpreter, ThreadHead};

/// A process whose interpreter was found.
#[derive(Debug, Clone, Copy)]
pub struct Found {
    /// What a [`super::Walker`] needs.
    pub interpreter: Interpreter,
    /// The process's memory.
    pub memory: Memory,
}

/// Why a process's Python frames are not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotRead {
    /// Neither its executable nor a library it loaded defines
    /// `_PyRuntime`.
    #[error("process {0} runs no CPython (no `_PyRuntime` in its executable or libraries)")]
    NotPython(u32),
    /// A CPython whose layout flameshift does not know.
    #[error("process {pid} runs CPython {}.{} (from {path}): Python frames are read on 3.9 to 3.13; its stacks stay native", version.0, version.1)]
    Unsupported {
        /// The process.
        pid: u32,
        /// The version found.
        version: (u8, u8),
        /// Where it was found.
        path: String,
    },
    /// A CPython whose version could not be read (before 3.11 there is
    /// no `Py_Version`, and the file's name did not say).
    #[error("process {pid} runs a CPython of unknown version (from {path}): Python frames are read on 3.9 to 3.13; its stacks stay native")]
    UnknownVersion {
        /// The process.
        pid: u32,
        /// Where it was found.
        path: String,
    },
    /// The interpreter is not initialised yet (or is finalised).
    #[error("process {0} has not started its interpreter yet")]
    NotStarted(u32),
    /// Its memory may not be read.
    #[error("cannot read the memory of process {pid} ({error}): run flameshift as root or as the process's user with CAP_SYS_PTRACE, or allow reading another process's memory with `sysctl kernel.yama.ptrace_scope=0`")]
    Denied {
        /// The process.
        pid: u32,
        /// The error of the copy.
        error: String,
    },
    /// It exited.
    #[error("process {0} exited")]
    Gone(u32),
    /// What the layout reads is not that process's threads.
    #[error("process {pid} runs CPython {}.{}, but its thread list does not read as its threads (a build with another layout?): its stacks stay native", version.0, version.1)]
    LayoutMismatch {
        /// The process.
        pid: u32,
        /// The version found.
        version: (u8, u8),
    },
}

impl NotRead {
    /// Whether trying again later may succeed (the interpreter starts
    /// after the process does).
    pub fn is_transient(&self) -> bool {
        matches!(self, NotRead::NotStarted(_) | NotRead::LayoutMismatch { .. })
    }
}

/// What a binary defines, at its link-time addresses.
#[derive(Debug, Clone, Default)]
struct Symbols {
    runtime: Option<u64>,
    code_type: Option<u64>,
    string_type: Option<u64>,
    version: Option<u64>,
    /// Each loadable segment: its address, file offset.
    segments: Vec<(u64, u64, u64)>,
}

impl Symbols {
    fn read(path: &str) -> Option<Symbols> {
        let data = std::fs::read(path).ok()?;
        let file = object::File::parse(&*data).ok()?;
        let mut symbols = Symbols::default();
        for symbol in file.dynamic_symbols().chain(file.symbols()) {
            let slot = match symbol.name() {
                Ok("_PyRuntime") => &mut symbols.runtime,
                Ok("PyCode_Type") => &mut symbols.code_type,
                Ok("PyUnicode_Type") => &mut symbols.string_type,
                Ok("Py_Version") => &mut symbols.version,
                _ => continue,
            };
            if symbol.address() != 0 {
                slot.get_or_insert(symbol.address());
            }
        }
        symbols.segments = file
            .segments()
            .map(|s| {
                let (offset, size) = s.file_range();
                (s.address(), offset, size)
            })
            .collect();
        Some(symbols)
    }

    /// How far from its link-time addresses the binary was loaded, given
    /// one of its mappings (start, file offset).
    fn bias(&self, start: u64, pgoff: u64) -> Option<u64> {
        let &(address, offset, _) = self
            .segments
            .iter()
            .find(|&&(_, offset, size)| offset <= pgoff && pgoff < offset + size.max(1))
            .or_else(|| self.segments.first())?;
        Some(start.wrapping_sub(address.wrapping_sub(offset).wrapping_add(pgoff)))
    }
}

/// Finds interpreters, keeping what each binary defines by its device
/// and inode (the workers of one server share their libpython; the same
/// path in two containers may be two files).
#[derive(Debug, Default)]
pub struct Finder {
    binaries: HashMap<Arc<str>, Option<Arc<Symbols>>>,
}

/// A mapping of a file: start, file offset, path, `device inode`.
type Mapping = (u64, u64, Arc<str>, Arc<str>);

/// The file-backed mappings of `pid`, from `/proc/PID/maps`.
fn mappings(pid: u32) -> Result<Vec<Mapping>, NotRead> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/maps")).map_err(|error| {
        if error.kind() == std::io::ErrorKind::PermissionDenied {
            NotRead::Denied {
                pid,
                error: error.to_string(),
            }
        } else {
            NotRead::Gone(pid)
        }
    })?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (range, _perms, offset) = (fields.next()?, fields.next()?, fields.next()?);
            let (device, inode) = (fields.next()?, fields.next()?);
            let path = fields.next()?;
            if !path.starts_with('/') {
                return None;
            }
            let start = u64::from_str_radix(range.split_once('-')?.0, 16).ok()?;
            Some((
                start,
                u64::from_str_radix(offset, 16).ok()?,
                Arc::from(path),
                Arc::from(format!("{device} {inode}")),
            ))
        })
        .collect())
}

/// The version a file's name gives (`libpython3.10.so.1.0`, `python3.9`).
fn version_in_name(path: &str) -> Option<(u8, u8)> {
    let name = path.rsplit('/').next()?;
    let at = name.find("python")? + "python".len();
    let (major, rest) = name[at..].split_once('.')?;
    let minor: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((major.parse().ok()?, minor.parse().ok()?))
}

impl Finder {
    /// The interpreter of `pid`.
    pub fn find(&mut self, pid: u32) -> Result<Found, NotRead> {
        let mappings = mappings(pid)?;
        // libpython first (where an executable links it, the executable
        // only refers to `_PyRuntime`), then the executable.
        let mut candidates: Vec<&Mapping> = mappings
            .iter()
            .filter(|(_, _, path, _)| {
                path.rsplit('/')
                    .next()
                    .is_some_and(|n| n.starts_with("libpython"))
            })
            .collect();
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
        candidates.extend(
            mappings
                .iter()
                .filter(|(_, _, path, _)| exe.as_deref().is_some_and(|e| e == std::path::Path::new(&**path))),
        );
        let mut seen: Vec<&str> = Vec::new();
        for &(start, pgoff, ref path, ref file) in candidates {
            if seen.contains(&&**path) {
                continue;
            }
            seen.push(path);
            // Through the process's own root: a process in a container
            // sees its files under other paths than ours.
            let symbols = self
                .binaries
                .entry(file.clone())
                .or_insert_with(|| {
                    Symbols::read(&format!("/proc/{pid}/root{path}"))
                        .or_else(|| Symbols::read(path))
                        .map(Arc::new)
                })
                .clone();
            let Some(symbols) = symbols else { continue };
            let Some(runtime) = symbols.runtime else { continue };
            let Some(bias) = symbols.bias(start, pgoff) else {
                continue;
            };
            return interpreter_at(pid, &symbols, runtime, bias, path);
        }
        Err(NotRead::NotPython(pid))
    }
}

/// The interpreter of `pid`, whose binary `path` (loaded `bias` away
/// from its addresses) defines `_PyRuntime` at `runtime`.
fn interpreter_at(
    pid: u32,
    symbols: &Symbols,
    runtime: u64,
    bias: u64,
    path: &str,
) -> Result<Found, NotRead> {
    let memory = Memory::of(pid);
    let at = |addr: u64| addr.wrapping_add(bias) as usize;
    let read_error = |error: std::io::Error| match error.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => NotRead::Denied {
            pid,
            error: error.to_string(),
        },
        Some(libc::ESRCH) => NotRead::Gone(pid),
        _ => NotRead::NotStarted(pid),
    };
    let version = match symbols.version {
        Some(addr) => {
            let mut word = [0u8; 4];
            memory.read_checked(at(addr), &mut word).map_err(read_error)?;
            let hex = u32::from_ne_bytes(word);
            ((hex >> 24) as u8, (hex >> 16) as u8)
        }
        None => match version_in_name(path) {
            Some(version) => version,
            None => {
                return Err(NotRead::UnknownVersion {
                    pid,
                    path: path.to_owned(),
                })
            }
        },
    };
    let unsupported = || NotRead::Unsupported {
        pid,
        version,
        path: path.to_owned(),
    };
    let layout = Layout::of(version.0, version.1).ok_or_else(unsupported)?;
    let (Some(code_type), Some(string_type)) = (symbols.code_type, symbols.string_type) else {
        return Err(unsupported());
    };
    let mut word = [0u8; 8];
    memory
        .read_checked(at(runtime) + layout.runtime_interpreters, &mut word)
        .map_err(read_error)?;
    let state = usize::from_ne_bytes(word);
    if state == 0 {
        return Err(NotRead::NotStarted(pid));
    }
    let found = Found {
        interpreter: Interpreter {
            version,
            state,
            thread_head: ThreadHead::Field,
            code_type: at(code_type),
            string_type: at(string_type),
        },
        memory,
    };
    check_threads(pid, &found)?;
    Ok(found)
}

/// Whether the thread list reads as `pid`'s own threads: each thread id
/// read is one of its tasks (a thread that exited meanwhile aside).
fn check_threads(pid: u32, found: &Found) -> Result<(), NotRead> {
    let mismatch = NotRead::LayoutMismatch {
        pid,
        version: found.interpreter.version,
    };
    let mut walker = super::Walker::new(found.interpreter, found.memory).ok_or(mismatch.clone())?;
    let mut threads = Vec::new();
    walker.threads(&mut threads).map_err(|_| mismatch.clone())?;
    let known = threads
        .iter()
        .filter(|t| t.tid > 0 && std::path::Path::new(&format!("/proc/{pid}/task/{}", t.tid)).exists())
        .count();
    if threads.is_empty() || known * 2 < threads.len() {
        return Err(mismatch);
    }
    Ok(())
}

/// The interpreter of `pid` (one look; [`Finder`] keeps binaries' symbols
/// across processes).
pub fn find(pid: u32) -> Result<Found, NotRead> {
    Finder::default().find(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_come_from_file_names_where_no_symbol_says() {
        assert_eq!(version_in_name("/usr/lib/libpython3.10.so.1.0"), Some((3, 10)));
        assert_eq!(
            version_in_name("/root/.pyenv/versions/3.9.18/bin/python3.9"),
            Some((3, 9))
        );
        assert_eq!(version_in_name("/usr/bin/python3"), None);
        assert_eq!(version_in_name("/usr/bin/env"), None);
    }

    #[test]
    fn a_binary_loaded_anywhere_has_its_bias_from_any_mapping() {
        let symbols = Symbols {
            segments: vec![(0, 0, 0x1000), (0x2000, 0x1000, 0x3000), (0x6000, 0x5000, 0x100)],
            ..Symbols::default()
        };
        // Text mapped at 0x7f00_0000_1000 from file offset 0x1000.
        assert_eq!(
            symbols.bias(0x7f00_0000_1000, 0x1000),
            Some(0x7f00_0000_1000 - 0x2000)
        );
        assert_eq!(
            symbols.bias(0x7f00_0000_1000 - 0x2000, 0),
            Some(0x7f00_0000_1000 - 0x2000)
        );
        // A non-PIE executable at its link address.
        let fixed = Symbols {
            segments: vec![(0x400000, 0, 0x1000)],
            ..Symbols::default()
        };
        assert_eq!(fixed.bias(0x400000, 0), Some(0));
    }

    #[test]
    fn a_process_without_python_is_named_as_such() {
        assert_eq!(
            find(std::process::id()).unwrap_err(),
            NotRead::NotPython(std::process::id())
        );
        assert_eq!(find(u32::MAX - 1).unwrap_err(), NotRead::Gone(u32::MAX - 1));
        let denied = NotRead::Denied {
            pid: 7,
            error: "Operation not permitted (os error 1)".into(),
        };
        assert!(denied.to_string().contains("ptrace_scope"));
    }
}
