//! # flameshift-dashboard
//!
//! The web UI served by `flameshift serve` at `/`: one page and its
//! static assets, embedded in the binary (no Node build step), over the
//! analyzer's JSON API. The page keeps its state in the URL fragment
//! (`/#/services/shop`, `/#/flame?service=shop&deploy=v2`), so every view
//! can be linked to.
//!
//! ```
//! let ui = flameshift_dashboard::router();
//! // Give it to the analyzer: `ServeConfig { ui: Some(ui), .. }`.
//! # let _ = ui;
//! ```

mod assets;

pub use assets::{router, ASSETS};
