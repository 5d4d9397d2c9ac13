//! A `flameshift serve` in the test's process, on 127.0.0.1:0.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use flameshift_analyzer::server::{self, ServeConfig};
use flameshift_analyzer::store::{Backend, Store, StoreConfig};
use tokio::sync::oneshot;

/// A server running in this process.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`, or `https://localhost:PORT` when the
    /// config serves TLS.
    pub url: String,
    /// The store it serves from.
    pub store: Arc<dyn Store>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<flameshift_analyzer::Result<()>>,
}

impl TestServer {
    /// Starts `config` over `backend` and waits until it listens.
    pub async fn start(config: ServeConfig, backend: Backend) -> TestServer {
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = oneshot::channel();
        let store = backend.store.clone();
        let tls = config.tls.is_some();
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
        let addr: std::net::SocketAddr = ready_rx.await.expect("server started");
        let url = if tls {
            // The test certificates name localhost.
            format!("https://localhost:{}", addr.port())
        } else {
            format!("http://{addr}")
        };
        TestServer {
            url,
            store,
            shutdown: Some(stop_tx),
            handle,
        }
    }

    /// A server over the embedded store in `dir` with test-friendly defaults.
    pub async fn on(dir: &Path) -> TestServer {
        TestServer::start(test_config(), disk(dir)).await
    }

    /// Stops without requiring a clean flush (e.g. on a full disk).
    pub async fn stop_allowing_errors(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.handle).await;
    }

    /// Stops, and panics unless the server stopped cleanly.
    pub async fn stop(mut self) {
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
pub fn disk(dir: &Path) -> Backend {
    Backend::disk(StoreConfig::new(dir)).unwrap()
}

/// Test-friendly defaults: any port, no periodic flush or detection.
pub fn test_config() -> ServeConfig {
    let mut config = ServeConfig::new();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.flush_interval = Duration::from_secs(3600);
    config.detect_interval = Duration::from_secs(3600);
    config
}
