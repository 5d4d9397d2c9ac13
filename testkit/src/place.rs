//! Where a test keeps its data: the embedded store in a temporary
//! directory, or a fresh database on a real ClickHouse server or cluster.

use std::sync::Arc;

use flameshift_analyzer::store::{Backend, ClickHouseConfig, Endpoint, StoreConfig};

use crate::clickhouse::{sql_log, ClickHouseServer};
use crate::server::{test_config, TestServer};

/// Where a test keeps its data: every conformance test runs on each.
#[derive(Clone)]
pub enum Place {
    /// The embedded store in a temporary directory.
    Dir(Arc<tempfile::TempDir>),
    /// A fresh database on the test binary's ClickHouse server, or on
    /// its two-shard cluster.
    ClickHouse(Endpoint),
}

impl Place {
    /// A fresh temporary directory.
    pub fn dir() -> Place {
        Place::Dir(Arc::new(tempfile::tempdir().unwrap()))
    }

    /// A fresh database on the test binary's shared ClickHouse server.
    pub fn clickhouse() -> Place {
        Place::ClickHouse(ClickHouseServer::shared().fresh_database())
    }

    /// A fresh database on the test binary's shared two-shard cluster.
    pub fn cluster() -> Place {
        Place::ClickHouse(ClickHouseServer::fresh_cluster_database(
            ClickHouseServer::shared_cluster(),
        ))
    }

    /// Opens the place's store for a test: the embedded one compacts at
    /// `compact_at_files`; ClickHouse inserts at once and logs its SQL
    /// where `FLAMESHIFT_CLICKHOUSE_SQL_LOG` says.
    pub fn backend(&self, compact_at_files: usize) -> Backend {
        match self {
            Place::Dir(dir) => {
                let mut config = StoreConfig::new(dir.path());
                config.compact_at_files = compact_at_files;
                Backend::disk(config).unwrap()
            }
            Place::ClickHouse(endpoint) => {
                let mut config = ClickHouseConfig::new(endpoint.clone());
                config.insert_interval = std::time::Duration::ZERO;
                config.sql_log = sql_log();
                Backend::clickhouse(config).unwrap()
            }
        }
    }

    /// Opens the place's store with the defaults `serve` runs with (for
    /// benchmarks: ClickHouse batches its inserts); each call is a node
    /// of its own.
    pub fn backend_as_served(&self) -> Backend {
        match self {
            Place::Dir(dir) => Backend::disk(StoreConfig::new(dir.path())).unwrap(),
            Place::ClickHouse(endpoint) => {
                Backend::clickhouse(ClickHouseConfig::new(endpoint.clone())).unwrap()
            }
        }
    }

    /// A server over this place with test-friendly defaults.
    pub async fn server(&self) -> TestServer {
        TestServer::start(test_config(), self.backend(8)).await
    }
}
