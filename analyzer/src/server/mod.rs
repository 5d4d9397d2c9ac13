//! The HTTP server of `flameshift serve`: the `/api/v1` routes of
//! docs/wire-format.md, Pyroscope's `/ingest`, `/healthz` and `/metrics`, bearer
//! tokens with scopes and services ([`access`](crate::access); `SIGHUP`
//! reads an access file again), a body limit, the store's periodic housekeeping
//! ([`Store::maintain`]: the embedded store's flush to Parquet), and a
//! graceful shutdown that runs it once more; detection runs periodically
//! and on `POST /api/v1/detect`, its findings under
//! `GET /api/v1/regressions`. It speaks http, or https with
//! [`ServeConfig::tls`] (`tls`). The server is given its store and its
//! regression book; it opens neither.

mod access;
mod handlers;
mod metrics;
mod params;
mod regressions;
mod response;
mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use flameshift_client::routes;

pub use metrics::Metrics;
pub use params::parse_duration_ms;
use response::ApiError;
pub use tls::TlsFiles;

use crate::access::{Grant, Keys};
use crate::detect::DetectSettings;
use crate::ingest::Limits;
use crate::regressions::{Detector, Notifier, RegressionBook};
use crate::store::Store;
use crate::{Error, Result};

/// How `flameshift serve` runs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on (loopback unless told otherwise).
    pub listen: SocketAddr,
    /// Limits on uploads and the time buckets they are summed in.
    pub limits: Limits,
    /// Bearer token every route but `/healthz` requires, if set: one
    /// token with every scope (`serve --token`). [`ServeConfig::keys`]
    /// wins when both are set.
    pub token: Option<String>,
    /// Tokens with scopes and services (`serve --auth FILE`); `SIGHUP`
    /// reads their file again.
    pub keys: Option<Arc<Keys>>,
    /// Serve https with this certificate and key (reloaded on `SIGHUP`).
    pub tls: Option<TlsFiles>,
    /// How OpenTelemetry profiles are read.
    pub otlp: OtlpConfig,
    /// Largest accepted request body, bytes.
    pub max_body_bytes: usize,
    /// How often the store's housekeeping runs (the embedded store's
    /// flush to Parquet).
    pub flush_interval: Duration,
    /// Detection thresholds.
    pub detect: DetectSettings,
    /// How often detection runs (it also runs on `POST /api/v1/detect`).
    pub detect_interval: Duration,
    /// Told about each new regression (webhooks).
    pub notifier: Option<Arc<dyn Notifier>>,
    /// Pages served outside `/api` (the dashboard), without the token:
    /// they are static, and every query they make carries it.
    pub ui: Option<Router>,
}

impl ServeConfig {
    /// Defaults: `127.0.0.1:7411`, 64 MiB bodies, flush every 10 s,
    /// detection every 60 s with the default thresholds.
    pub fn new() -> ServeConfig {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7411)),
            limits: Limits::default(),
            token: None,
            keys: None,
            tls: None,
            otlp: OtlpConfig::default(),
            max_body_bytes: 64 << 20,
            flush_interval: Duration::from_secs(10),
            detect: DetectSettings::default(),
            detect_interval: Duration::from_secs(60),
            notifier: None,
            ui: None,
        }
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig::new()
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    store: Arc<dyn Store>,
    detector: Arc<Detector>,
    limits: Arc<Limits>,
    metrics: Arc<Metrics>,
    /// `None`: every request is let in, as `anonymous`.
    keys: Option<Arc<Keys>>,
    anonymous: Arc<Grant>,
    audit: Arc<access::Audit>,
    otlp: Arc<OtlpConfig>,
}

/// How OpenTelemetry profiles are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpConfig {
    /// The resource attribute that names the deploy (`service.version`).
    pub deploy_attribute: String,
    /// Count wall-clock profiles as CPU time (for SDKs that only sample
    /// wall-clock stacks, on CPU-bound programs).
    pub wall_as_cpu: bool,
}

impl Default for OtlpConfig {
    fn default() -> OtlpConfig {
        OtlpConfig {
            deploy_attribute: "service.version".to_owned(),
            wall_as_cpu: false,
        }
    }
}

/// The router over a store.
pub fn router(store: Arc<dyn Store>, detector: Arc<Detector>, config: &ServeConfig) -> Router {
    let max_body_bytes = config.max_body_bytes;
    let state = AppState {
        store,
        detector,
        limits: Arc::new(config.limits.clone()),
        metrics: Arc::new(Metrics::default()),
        keys: config_keys(config),
        anonymous: Arc::new(Grant::everything("anonymous")),
        audit: Arc::new(access::Audit::default()),
        otlp: Arc::new(config.otlp.clone()),
    };
    Router::new()
        .route(routes::PROFILES, post(handlers::post_profile))
        .route(routes::REQUESTS, post(handlers::post_requests))
        .route(routes::DEPLOYS, post(handlers::post_deploy))
        .route(routes::PYROSCOPE_INGEST, post(handlers::post_pyroscope))
        .route(routes::PYROSCOPE_PUSH, post(handlers::post_push))
        .route(routes::OTLP_PROFILES, post(handlers::post_otlp))
        .route(routes::SERVICES, get(handlers::services))
        .route(routes::SERVICE_DEPLOYS, get(handlers::deploys))
        .route(routes::FLAMEGRAPH, get(handlers::flamegraph))
        .route(routes::DIFF, get(handlers::diff))
        .route(routes::FUNCTIONS, get(handlers::functions))
        .route(routes::SERIES, get(handlers::series))
        .route(routes::ENDPOINTS, get(handlers::endpoints))
        .route(routes::REGRESSIONS, get(regressions::list))
        .route(routes::REGRESSION, post(regressions::set_state))
        .route(routes::DETECT, post(regressions::detect))
        .route(routes::SENSITIVITY, get(regressions::sensitivity))
        .route(routes::METRICS, get(handlers::metrics))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), access::guard))
        .route(routes::HEALTHZ, get(handlers::healthz))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such route; the API is under /api/v1")
}

/// The tokens a config asks for: its access file's, or `--token` as
/// one token with every scope, or none.
fn config_keys(config: &ServeConfig) -> Option<Arc<Keys>> {
    config
        .keys
        .clone()
        .or_else(|| config.token.as_deref().map(|t| Arc::new(Keys::single(t))))
}

/// Reads the access file again on each `SIGHUP`; a file that does not
/// load leaves the old tokens in force.
async fn reload_keys_on_sighup(keys: Arc<Keys>, mut hangups: tokio::signal::unix::Signal) {
    while hangups.recv().await.is_some() {
        match keys.reload() {
            Ok(count) => tracing::info!(tokens = count, "SIGHUP: access file reloaded"),
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: access file not reloaded; the old tokens stay in force")
            }
        }
    }
}

/// A running server.
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Whether it speaks https.
    pub tls: bool,
}

impl Running {
    /// Its base URL, `http://ADDR` or `https://ADDR`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }
}

/// Serves `store` (with regression state in `regressions`) until
/// `shutdown` completes; then stops accepting, finishes in-flight
/// requests, and runs the store's housekeeping once more (the embedded
/// store flushes). `ready` is called with the bound address once the
/// server accepts connections.
pub async fn serve(
    config: ServeConfig,
    store: Arc<dyn Store>,
    regressions: Arc<dyn RegressionBook>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    ready: impl FnOnce(&Running),
) -> Result<()> {
    let certificates = config
        .tls
        .clone()
        .map(tls::Certificates::load)
        .transpose()?
        .map(Arc::new);
    // Listening for SIGHUP before the server is up: a reload asked for
    // once it answers is never the signal's default (the end).
    let key_reloads = match config.keys.clone().filter(|k| k.file().is_some()) {
        Some(keys) => {
            let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                .map_err(|e| Error::io("listen for SIGHUP", e))?;
            Some(tokio::spawn(reload_keys_on_sighup(keys, hangups)))
        }
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| Error::io(format!("listen on {}", config.listen), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("read the bound address", e))?;
    ready(&Running {
        addr,
        tls: certificates.is_some(),
    });
    // A node that missed three detection runs is taken for dead.
    let lease_ttl = (config.detect_interval * 3).max(std::time::Duration::from_secs(3));
    let detector = Arc::new(
        Detector::new(regressions, config.detect.clone(), config.notifier.clone()).with_lease_ttl(lease_ttl),
    );
    tracing::info!(node = %detector.node().id, "detection runs here while this node holds the lease");
    let mut app = router(store.clone(), detector.clone(), &config);
    if let Some(ui) = config.ui.clone() {
        app = ui.merge(app);
    }
    let detecting = {
        let (store, detector) = (store.clone(), detector.clone());
        let interval = config.detect_interval;
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let (store, detector) = (store.clone(), detector.clone());
                let run =
                    tokio::task::spawn_blocking(move || detector.run(&*store, None, handlers::now_ms()));
                if let Ok(Err(e)) = run.await {
                    tracing::error!(error = %e, "detection failed; will retry");
                }
            }
        })
    };
    let flusher = {
        let store = store.clone();
        let interval = config.flush_interval;
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let store = store.clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || store.maintain()).await {
                    tracing::error!(error = %e, "periodic store housekeeping failed; will retry");
                }
            }
        })
    };
    tracing::info!(%addr, "flameshift analyzer listening");
    let served = match certificates {
        Some(certificates) => tls::serve(listener, app, certificates, shutdown).await,
        None => axum::serve(listener, app).with_graceful_shutdown(shutdown).await,
    };
    flusher.abort();
    detecting.abort();
    if let Some(reloads) = key_reloads {
        reloads.abort();
    }
    let flushed = tokio::task::spawn_blocking(move || store.maintain())
        .await
        .map_err(|e| Error::io("flush on shutdown", std::io::Error::other(e.to_string())))?;
    served.map_err(|e| Error::io("serve", e))?;
    flushed?;
    tracing::info!("flameshift analyzer stopped; the store's housekeeping ran");
    Ok(())
}
