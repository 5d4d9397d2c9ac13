//! The interpreter's stacks, read by the agent itself from this
//! process's memory without the GIL ([`walker`]), where the layout of
//! the running CPython is known ([`layout`]) and checked; other versions
//! are read through py-spy.

pub mod layout;
pub mod memory;
pub mod walker;

pub use walker::{Interpreter, NamedFrame, Thread, Torn, Walker};
