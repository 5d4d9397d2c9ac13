//! # flameshift-collector
//!
//! Everything that runs in or next to a profiled service:
//!
//! - the external sampler behind `flameshift record -- CMD` and `attach`
//!   ([`recorder`]): perf events on every CPU that follow the command and
//!   its children (instructions where the machine has a PMU, `cpu-clock`
//!   otherwise), frame-pointer or DWARF ([`unwind`]) stacks, the mappings
//!   each process had at each sample, symbols, lines and inlined functions
//!   ([`symbolize`]);
//! - the first pieces of the in-process agent: per-thread CPU
//!   [`counters`] and [`labels`] that follow async tasks.
//!
//! It depends only on [`flameshift_profile`] (no polars, inferno or axum),
//! so that it stays small enough to link into any service. `unsafe` is
//! confined to `perf::event`, `perf::ring`, `counters` and the `poll` call
//! in `recorder`, each block with a `SAFETY` comment.
//!
//! ```no_run
//! use flameshift_collector::recorder::{record, RecordOptions};
//! let recording = record(&["sleep".into(), "1".into()], &RecordOptions::default())?;
//! println!("{} samples", recording.profile.samples().len());
//! # Ok::<(), flameshift_collector::Error>(())
//! ```

pub mod agent;
pub mod counters;
mod error;
pub mod export;
pub mod http;
pub mod labels;
#[cfg(feature = "tower")]
pub mod layer;
pub mod perf;
pub mod recorder;
pub mod requests;
pub mod sampler;
pub mod symbolize;
pub mod unwind;

pub use error::{Error, Result};
pub use flameshift_profile as profile;
