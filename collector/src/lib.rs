//! # flameshift-collector
//!
//! Everything that runs in or next to a profiled service:
//!
//! - the in-process [`agent`]: the signal-driven [`sampler`] on every
//!   thread (instructions where the machine has a PMU, task-clock or a
//!   thread-CPU-clock timer otherwise), [`labels`] that follow async tasks,
//!   the tower/axum `layer` that counts and meters
//!   requests per endpoint (features `tower`, `axum`; [`counters`] and
//!   [`requests`] behind it), and its request statistics in the wire
//!   format ([`export`]), shipped to `flameshift serve` by
//!   `flameshift_client`;
//! - [`cpython`]: CPython's stacks read from memory, in the agent's own
//!   process (the Python agent) or in another (`record`, `attach`);
//! - with the `record` feature, the external sampler behind `flameshift
//!   record -- CMD` and `attach` (`recorder`): perf events on every CPU
//!   that follow the command and its children, frame-pointer or DWARF
//!   (`unwind`) stacks, symbols, lines and inlined functions.
//!
//! It depends only on [`flameshift_profile`] and the analyzer's client
//! (`flameshift_client`: no Parquet, inferno or a runtime; axum only
//! behind the `axum` feature), so that it stays small
//! enough to link into any service. `unsafe` is confined to `perf::event`,
//! `perf::ring`, `counters`, the sampler's `arm`, `buffer` and `handler`,
//! and the `poll` call in `recorder`, each block with a `SAFETY` comment.
//!
//! The agent in an axum service (feature `axum`; build with frame pointers):
//!
//! ```ignore
//! use flameshift_collector::agent::{Agent, AgentConfig};
//! use flameshift_collector::layer::{AxumRoute, CpuLayer};
//!
//! // FLAMESHIFT_ANALYZER=http://127.0.0.1:7411 in the environment, or .analyzer(url)
//! let agent = Agent::start(AgentConfig::new("checkout", env!("CARGO_PKG_VERSION")))?;
//! let app = axum::Router::new()
//!     .route("/users/{id}", axum::routing::get(user))
//!     .layer(CpuLayer::new(agent.request_stats(), AxumRoute));
//! axum::serve(listener, app).await?;
//! agent.shutdown(); // ships the last interval
//! ```
//!
//! # Features
//!
//! - `tower`: the `layer` module's tower `Layer`;
//! - `axum`: endpoint names from axum's matched route template;
//! - `record`: the external recorder behind `flameshift record` and
//!   `attach` (`recorder`, `perf`, `unwind`: the perf ring buffer and
//!   the DWARF unwinder). Services that link the agent leave it off.

pub mod agent;
pub mod counters;
pub mod cpython;
mod error;
pub mod export;
pub mod labels;
#[cfg(feature = "tower")]
pub mod layer;
#[cfg(feature = "record")]
pub mod perf;
#[cfg(feature = "record")]
pub mod python_frames;
pub mod quiet_thread;
#[cfg(feature = "record")]
pub mod recorder;
pub mod requests;
pub mod sampler;
mod symbolize;
#[cfg(feature = "record")]
mod unwind;

pub use error::{Error, Result};
pub use flameshift_client as client;
pub use flameshift_profile as profile;
