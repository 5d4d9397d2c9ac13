//! # flameshift-analyzer
//!
//! Ingest, durable storage and queries behind `flameshift serve`: uploads
//! (pprof from the agent, `flameshift record`, Go services and Pyroscope
//! clients; request statistics; deploy events) are validated, appended
//! to a write-ahead log and fsynced before they are acknowledged, kept in
//! an in-memory head, and flushed to Parquet tables partitioned by service
//! and day. Queries sum the rows of the Parquet files (row groups outside
//! the time range skipped) and of the head: flame graphs, differential
//! flame graphs, top functions and cost per request series, per service,
//! deploy, endpoint, time range and label.
//!
//! ```
//! use flameshift_analyzer::ingest::{Upload, UploadKind};
//! use flameshift_analyzer::store::{DiskStore, Selection, Store, StoreConfig};
//! use flameshift_analyzer::query;
//!
//! let dir = tempfile::tempdir()?;
//! let store = DiskStore::open(StoreConfig::new(dir.path()))?;
//! let now = 1_764_000_000_000;
//! store.ingest(Upload {
//!     kind: UploadKind::Pyroscope,
//!     params: [("name", "shop.cpu{deploy=v1,endpoint=GET /cart}"), ("from", "1764000000")]
//!         .into_iter()
//!         .map(|(k, v)| (k.to_owned(), v.to_owned()))
//!         .collect(),
//!     received_ms: now,
//!     key: None,
//!     body: b"main;handle;render 30\nmain;handle;parse 70\n".to_vec(),
//! })?;
//! let selection = Selection { service: "shop".into(), ..Selection::default() };
//! let top = query::top_functions(&store, &selection, query::TopOrder::SelfCost, 10)?;
//! assert_eq!(top.functions[0].name, "parse");
//! assert_eq!(top.functions[0].self_share, 0.7);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod access;
mod error;
pub mod ingest;
pub mod model;
pub mod query;
pub mod regressions;
pub mod store;

pub use error::{Error, Result};
pub use flameshift_detect as detect;
pub use flameshift_profile as profile;
pub mod server;
