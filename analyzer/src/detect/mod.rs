//! Regression detection: pure functions over data (DESIGN.md, Detection).
//!
//! - [`costs`]: per-window cost per request series of each endpoint and
//!   function, built from stack rows and request counts;
//! - [`compare`]: the deploy comparison with its filters;
//! - [`drift`]: change points inside one deploy;
//! - [`changepoint`]: E-Divisive and PELT, on any series;
//! - [`stats`]: the tests and estimators;
//! - [`regression`]: the record every layer reports.

pub mod changepoint;
pub mod compare;
pub mod costs;
pub mod drift;
pub mod gate;
pub mod regression;
pub mod settings;
pub mod stats;

pub use compare::{compare_deploys, Comparison, Reason, Suppressed};
pub use costs::{CostTable, CostTableBuilder};
pub use regression::{Metric, Regression, Source, State};
pub use settings::DetectSettings;
