//! # flameshift-dashboard
//!
//! The web UI served by the analyzer at `/`: pages and embedded static
//! assets over the analyzer's JSON API.
//!
//! This crate is a placeholder until the dashboard lands (issue 8); today it
//! only re-exports the analyzer it will sit on.
//!
//! ```
//! use flameshift_dashboard::analyzer::profile::Profile;
//! assert!(Profile::default().sample_types.is_empty());
//! ```

pub use flameshift_analyzer as analyzer;
