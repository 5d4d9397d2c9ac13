//! CPython's stacks, read from memory without stopping the interpreter
//! or taking its lock: by the Python agent in its own process, and by
//! `record` and `attach` in processes they sample.
//!
//! - [`layout`]: where each version (3.9–3.13) keeps what a read needs;
//! - [`memory`]: copies through `process_vm_readv`, which fail instead
//!   of faulting when a pointer leads nowhere;
//! - [`walker`]: a thread list and each thread's frames, code objects
//!   known by address;
//! - [`current`]: the calling thread's own frames, from a signal handler
//!   (named later by a [`Walker`]);
//! - [`process`]: the interpreter of another process, found from its
//!   libpython's or executable's symbols;
//! - [`naming`]: how a Python frame is named in profiles.
//!
//! ```no_run
//! use flameshift_collector::cpython::{process, Walker};
//! let pid = 4242;
//! let found = process::find(pid).map_err(|e| e.to_string())?;
//! let mut walker = Walker::new(found.interpreter, found.memory).ok_or("no layout")?;
//! let mut threads = Vec::new();
//! walker.threads(&mut threads).map_err(|_| "torn")?;
//! let mut names = Vec::new();
//! let mut stack = Vec::new();
//! walker
//!     .stack(&threads[0], &mut |f| { names.push(f.qualname.to_owned()); names.len() as u32 - 1 }, &mut stack)
//!     .map_err(|_| "torn")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod current;
pub mod layout;
pub mod memory;
pub mod naming;
pub mod process;
pub mod pthread;
pub mod walker;

pub use memory::Memory;
pub use walker::{Interpreter, NamedFrame, Thread, ThreadHead, Torn, Walker};
