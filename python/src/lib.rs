//! `flameshift._native`: the Rust half of the `flameshift` Python package
//! (built with maturin; the Python half is in `pysrc/flameshift/`).
//!
//! It runs the same agent as a Rust service's (`flameshift-collector`:
//! request statistics, the bounded upload queue, the one HTTP client),
//! with the interpreter's stacks as its samples (read by each thread in
//! a signal handler, [`signal_stacks`]; by a sampling thread through
//! py-spy where the agent has no layout of the version, [`stacks`]), and gives
//! the middleware what it needs per request: the calling thread's
//! counter (instructions where a PMU counter opens, else its CPU time),
//! which endpoint a thread serves, and where to record a finished
//! request. Nothing here raises into the application but `start`, whose
//! error the Python side logs once.
//!
//! The Python bindings (`bindings`) are built with the
//! `extension-module` feature, which maturin sets; without it the crate
//! is plain Rust, which its tests use (a test binary cannot link an
//! extension module).
//!
//! ```python
//! import flameshift
//! flameshift.start(service="shop", deploy="v42", analyzer="http://127.0.0.1:7411")
//! ```

#[cfg(feature = "extension-module")]
mod bindings;
pub mod cpu;
pub mod endpoints;
#[cfg(feature = "extension-module")]
mod middleware;
pub mod profile;
pub mod reader;
pub mod request;
pub mod runtime;
pub mod signal_stacks;
pub mod stacks;
