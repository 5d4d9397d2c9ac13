//! # flameshift-analyzer
//!
//! Ingest, durable storage, queries, regression detection and the HTTP API
//! behind `flameshift serve`. It depends on [`flameshift_profile`] for the
//! data model and its formats.
//!
//! This crate is a placeholder until the analyzer lands (issue 5); today it
//! only re-exports the profile model it will store.
//!
//! ```
//! use flameshift_analyzer::profile::Profile;
//! let profile = Profile::default();
//! assert_eq!(profile.total(0), 0);
//! ```

pub use flameshift_profile as profile;
