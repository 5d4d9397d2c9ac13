//! # flameshift-detect
//!
//! Regression detection and the statistics behind it: pure functions over
//! data, no I/O, no storage engine (docs/detection.md).
//!
//! - [`callpath`]: where a function's rise concentrates, by the callers
//!   above it;
//! - [`costs`]: per-window cost series of each endpoint and function,
//!   built from stack rows and request counts, and the measure each
//!   endpoint is compared on (per request, share, per second);
//! - [`compare`]: the deploy comparison with its filters;
//! - [`drift`]: change points inside one deploy;
//! - [`changepoint`]: the robust method (level changes, drifts, seasons,
//!   outliers), E-Divisive and PELT, on any series;
//! - [`gate`]: the CI gate's comparison of baseline and candidate runs;
//! - [`sensitivity`]: the smallest rise each test could have seen;
//! - [`stats`]: the tests and estimators;
//! - [`regression`]: the record every layer reports;
//! - [`suspects`]: the commits that may have caused a regression, ranked
//!   by what they changed in the function, its callers, its file;
//! - `sim` (feature `sim`): a fleet simulator with known truth, for the
//!   benchmarks and tests.
//!
//! A deploy comparison: twelve 10-second windows of each deploy, in which
//! `render` costs 200 µs per request in `v1` and 230 µs in `v2`.
//!
//! ```
//! use std::sync::Arc;
//! use flameshift_detect::costs::{CostTableBuilder, Weight};
//! use flameshift_detect::{compare_deploys, DetectSettings, Metric};
//! use flameshift_profile::wire::Unit;
//!
//! let deploys: Vec<Arc<str>> = vec!["v1".into(), "v2".into()];
//! let endpoint: Arc<str> = "GET /feed".into();
//! let mut table = CostTableBuilder::new("shop", Unit::CpuNs, &deploys);
//! for (d, deploy) in deploys.iter().enumerate() {
//!     for w in 0..12 {
//!         let window_ms = (d * 12 + w) as i64 * 10_000;
//!         let requests = 1_000;
//!         table.add_requests(window_ms, deploy, &endpoint, requests);
//!         let noise = 1.0 + ((w * 7) % 5) as f64 / 100.0 - 0.02; // ±2% window to window
//!         let render_us = if d == 0 { 200.0 } else { 230.0 };
//!         for (stack, us) in [("main;handle;parse", 300.0), ("main;handle;render", render_us)] {
//!             let frames: Vec<Arc<str>> = stack.split(';').map(Arc::from).collect();
//!             let ns = (us * 1_000.0 * noise * requests as f64) as i64;
//!             let weight = Weight { weight: ns, count: ns / 1_000_000 }; // one sample per ms
//!             table.add_stack(window_ms, deploy, &endpoint, &frames, weight);
//!         }
//!     }
//! }
//! let settings = DetectSettings { window_ms: 10_000, ..DetectSettings::default() };
//! let comparison = compare_deploys(&table.finish(), 0, 1, &settings, 0);
//! let found = &comparison.regressions[0];
//! assert_eq!(comparison.regressions.len(), 1);
//! assert_eq!((found.function.as_deref(), found.metric), (Some("render"), Metric::SelfCost));
//! let relative = found.relative.expect("render cost something before");
//! assert!(relative.low < 0.15 && 0.15 < relative.high, "{relative:?}");
//! // Its price: ~30 µs more per request at 100 requests a second.
//! let capacity = found.capacity.expect("CPU time is priced in cores");
//! assert_eq!(capacity.peak_rps, Some(100.0));
//! assert!((capacity.cores_at_peak - 0.003).abs() < 0.0006, "{capacity:?}");
//! assert!((capacity.core_hours_per_day - 0.072).abs() < 0.015, "{capacity:?}");
//! ```

mod error;

pub mod callpath;
pub mod changepoint;
pub mod compare;
pub mod costs;
pub mod drift;
pub mod gate;
pub mod regression;
#[cfg(any(test, feature = "sim"))]
mod rng;
pub mod sensitivity;
pub mod settings;
#[cfg(feature = "sim")]
pub mod sim;
pub mod stats;
pub mod suspects;

pub use compare::{compare_deploys, Comparison, Reason, Suppressed};
pub use costs::{CostTable, CostTableBuilder, Weight};
pub use error::{Error, Result};
pub use regression::{Metric, Regression, Source, State};
pub use settings::DetectSettings;
