//! Integration tests of the analyzer: a real server on 127.0.0.1:0 driven
//! with reqwest, and the store reopened over real data directories.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod bad_input;
mod detection;
mod disk_full;
mod earlier_data;
mod round_trip;
mod store;

use std::path::Path;
use std::time::Duration;

use flameshift_analyzer::profile::{format, LabelSetId, Period, Profile, SampleType};
use flameshift_analyzer::server::{self, ServeConfig};
use flameshift_analyzer::store::{DiskStore, Store, StoreConfig};
use tokio::sync::oneshot;

/// A server running in this process.
pub(crate) struct TestServer {
    pub(crate) url: String,
    pub(crate) store: std::sync::Arc<DiskStore>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<flameshift_analyzer::Result<()>>,
}

impl TestServer {
    pub(crate) async fn start(config: ServeConfig) -> TestServer {
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = oneshot::channel();
        let handle = tokio::spawn(server::serve(
            config,
            async {
                let _ = stop_rx.await;
            },
            move |running| {
                let _ = ready_tx.send((running.addr, running.store.clone()));
            },
        ));
        let (addr, store) = ready_rx.await.expect("server started");
        TestServer {
            url: format!("http://{addr}"),
            store,
            shutdown: Some(stop_tx),
            handle,
        }
    }

    /// A server over `dir` with test-friendly defaults (no periodic flush).
    pub(crate) async fn on(dir: &Path) -> TestServer {
        TestServer::start(config(dir)).await
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

pub(crate) fn config(dir: &Path) -> ServeConfig {
    let mut config = ServeConfig::new(StoreConfig::new(dir));
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

pub(crate) fn client() -> reqwest::Client {
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
