//! # flameshift-collector
//!
//! Everything that runs in or next to a profiled service: per-thread CPU
//! counters, the counter-overflow sampler, labels that follow async tasks,
//! the tower layer and the exporter. It depends only on
//! [`flameshift_profile`] so that it stays small enough to link into any
//! service (no polars, no inferno, no axum in its default features).
//!
//! This crate is a placeholder until the agent lands (issue 3); today it
//! only re-exports the profile model it will produce.
//!
//! ```
//! use flameshift_collector::profile::Profile;
//! let profile = Profile::default();
//! assert!(profile.samples().is_empty());
//! ```

pub use flameshift_profile as profile;
