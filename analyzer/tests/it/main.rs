//! Integration tests of the analyzer: a real server on 127.0.0.1:0 driven
//! with reqwest, and the store reopened over real data directories.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod bad_input;
mod clickhouse;
#[path = "../../../tests/support/clickhouse_server.rs"]
mod clickhouse_server;
mod detection;
mod disk_full;
mod earlier_data;
mod otlp;
mod push;
mod round_trip;
mod store;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use flameshift_analyzer::profile::{format, LabelSetId, Period, Profile, SampleType};
use flameshift_analyzer::server::{self, ServeConfig};
use flameshift_analyzer::store::{Backend, ClickHouseConfig, DiskStore, Endpoint, Store, StoreConfig};
use tokio::sync::oneshot;

/// Where a test keeps its data: every conformance test runs on each.
#[derive(Clone)]
pub(crate) enum Place {
    /// The embedded store in a temporary directory.
    Dir(Arc<tempfile::TempDir>),
    /// A fresh database on the test binary's ClickHouse server, or on
    /// its two-shard cluster.
    ClickHouse(Endpoint),
}

impl Place {
    pub(crate) fn dir() -> Place {
        Place::Dir(Arc::new(tempfile::tempdir().unwrap()))
    }

    pub(crate) fn clickhouse() -> Place {
        Place::ClickHouse(clickhouse_server::ClickHouseServer::shared().fresh_database())
    }

    pub(crate) fn cluster() -> Place {
        let cluster = clickhouse_server::ClickHouseServer::shared_cluster();
        Place::ClickHouse(clickhouse_server::ClickHouseServer::fresh_cluster_database(
            cluster,
        ))
    }

    /// Opens the place's store; the embedded one compacts at `compact_at_files`.
    pub(crate) fn backend(&self, compact_at_files: usize) -> Backend {
        match self {
            Place::Dir(dir) => {
                let mut config = StoreConfig::new(dir.path());
                config.compact_at_files = compact_at_files;
                Backend::disk(config).unwrap()
            }
            Place::ClickHouse(endpoint) => {
                let mut config = ClickHouseConfig::new(endpoint.clone());
                config.insert_interval = std::time::Duration::ZERO;
                config.sql_log = clickhouse_server::sql_log();
                Backend::clickhouse(config).unwrap()
            }
        }
    }

    /// A server over this place with test-friendly defaults.
    pub(crate) async fn server(&self) -> TestServer {
        TestServer::start(test_config(), self.backend(8)).await
    }
}

/// Runs each named `async fn(Place)` as a test on the embedded store, on
/// one ClickHouse server and on a two-shard ClickHouse cluster.
#[macro_export]
macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        mod disk {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Place::dir()).await
                }
            )*
        }
        mod clickhouse {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Place::clickhouse()).await
                }
            )*
        }
        mod cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Place::cluster()).await
                }
            )*
        }
    };
}

/// A server running in this process.
pub(crate) struct TestServer {
    pub(crate) url: String,
    pub(crate) store: Arc<dyn Store>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<flameshift_analyzer::Result<()>>,
}

impl TestServer {
    pub(crate) async fn start(config: ServeConfig, backend: Backend) -> TestServer {
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = oneshot::channel();
        let store = backend.store.clone();
        let handle = tokio::spawn(server::serve(
            config,
            backend.store,
            backend.regressions,
            async {
                let _ = stop_rx.await;
            },
            move |running| {
                let _ = ready_tx.send(running.addr);
            },
        ));
        let addr = ready_rx.await.expect("server started");
        TestServer {
            url: format!("http://{addr}"),
            store,
            shutdown: Some(stop_tx),
            handle,
        }
    }

    /// A server over the embedded store in `dir` with test-friendly defaults.
    pub(crate) async fn on(dir: &Path) -> TestServer {
        TestServer::start(test_config(), disk(dir)).await
    }

    /// Stops without requiring a clean flush (e.g. on a full disk).
    pub(crate) async fn stop_allowing_errors(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.handle).await;
    }

    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.handle)
            .await
            .expect("server task")
            .expect("server stopped cleanly");
    }
}

/// The embedded store in `dir`.
pub(crate) fn disk(dir: &Path) -> Backend {
    Backend::disk(StoreConfig::new(dir)).unwrap()
}

/// Test-friendly defaults: any port, no periodic flush.
pub(crate) fn test_config() -> ServeConfig {
    let mut config = ServeConfig::new();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.flush_interval = Duration::from_secs(3600);
    config
}

/// One sample to put in a test profile.
pub(crate) struct S<'a> {
    pub(crate) stack: &'a [&'a str],
    pub(crate) labels: &'a [(&'a str, &'a str)],
    pub(crate) count: i64,
    pub(crate) ns: i64,
}

/// A gzipped pprof CPU profile (samples/count, cpu/nanoseconds) of `samples`.
pub(crate) fn pprof(samples: &[S<'_>]) -> Vec<u8> {
    let mut p = Profile::new(vec![
        SampleType::new("samples", "count"),
        SampleType::new("cpu", "nanoseconds"),
    ]);
    p.period = Some(Period {
        kind: SampleType::new("cpu", "nanoseconds"),
        value: 10_000_000,
    });
    for s in samples {
        let stack = p.stack_from_names(s.stack.iter().copied());
        let labels: Vec<_> = s.labels.iter().map(|(k, v)| p.str_label(k, v)).collect();
        let set = if labels.is_empty() {
            LabelSetId::EMPTY
        } else {
            p.intern_labels(labels)
        };
        p.push_sample(stack, set, &[s.count, s.ns]);
    }
    let mut out = Vec::new();
    format::pprof::write(&p, &mut out).unwrap();
    out
}

/// reqwest is built with rustls but no default crypto provider (the
/// workspace picks ring explicitly): the tests' clients install it.
pub(crate) fn install_tls_provider() {
    #[allow(deprecated, reason = "ring, as flameshift's own client uses")]
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub(crate) fn client() -> reqwest::Client {
    install_tls_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

pub(crate) async fn post(url: &str, body: Vec<u8>) -> (u16, serde_json::Value) {
    let response = client().post(url).body(body).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

pub(crate) async fn get(url: &str) -> (u16, serde_json::Value) {
    let response = client().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

pub(crate) async fn get_text(url: &str) -> (u16, String) {
    let response = client().get(url).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
