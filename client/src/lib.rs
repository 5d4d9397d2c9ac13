//! # flameshift-client
//!
//! The one client of the analyzer's HTTP API (`flameshift serve`): every
//! program of flameshift that talks to the analyzer — the agent, `record`
//! and `attach`, `flameshift regressions`, the demo, webhooks, the Python
//! agent — goes through this crate, and so does the server's router for
//! its paths.
//!
//! - [`routes`]: every route's path, and the one percent-encoder;
//! - [`http`]: the HTTP client (reqwest over rustls with ring; system
//!   roots plus `--ca-cert` / `FLAMESHIFT_CA_CERT`; proxies from the
//!   environment), its [`http::RetryPolicy`] (backoff with jitter,
//!   `Retry-After`, deadlines, no retry on 4xx) and typed errors;
//! - [`upload`]: shipping profiles and request statistics, each upload
//!   with its `Idempotency-Key`;
//! - [`api`]: typed queries (detection, regressions, deploy events).
//!
//! It depends only on [`flameshift_profile`] (the wire types), so that the
//! agent linked into a service stays small.
//!
//! ```no_run
//! use flameshift_client::upload::{Destination, Exporter};
//! use flameshift_profile::{Profile, SampleType};
//!
//! let mut profile = Profile::new(vec![SampleType::new("cpu", "nanoseconds")]);
//! let stack = profile.stack_from_names(["main", "work"]);
//! profile.push_sample(stack, flameshift_profile::LabelSetId::EMPTY, &[10_000_000]);
//! let exporter = Exporter::new(Destination::new("http://127.0.0.1:7411", "shop", "v1"))?;
//! let receipt = exporter.upload_profile(&profile)?;
//! # Ok::<(), flameshift_client::Error>(())
//! ```

pub mod api;
mod error;
pub mod http;
pub mod routes;
pub mod upload;

pub use error::{Error, Result};
