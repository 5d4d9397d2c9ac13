//! `flameshift serve`: the analyzer, until Ctrl-C or SIGTERM.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use flameshift_analyzer::access::Keys;
use flameshift_analyzer::ingest::Limits;
use flameshift_analyzer::server::{self, ServeConfig};
use flameshift_analyzer::store::{Backend, ClickHouseConfig, StoreConfig, StoreLocation};

use crate::args::StoreArgs;
use crate::parse::{self, Retention};
use crate::signals::shutdown_signal;
use crate::webhook::Webhooks;

/// Run the analyzer: ingest uploads, store them durably, answer queries.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where to listen (loopback by default; 0.0.0.0:7411 accepts other
    /// hosts) and where to keep the data.
    #[command(flatten)]
    place: StoreArgs,
    /// The data directory (created if missing): short for `--store dir://PATH`.
    #[arg(long, default_value = "./flameshift-data")]
    data: PathBuf,
    /// Serve https with this certificate chain (PEM, leaf first); with
    /// --tls-key. SIGHUP reloads both files.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// OpenTelemetry profiles: the resource attribute that names the
    /// deploy.
    #[arg(long, value_name = "KEY", default_value = "service.version")]
    otlp_deploy_attribute: String,
    /// OpenTelemetry profiles: count wall-clock profiles (period `wall`,
    /// what OpenTelemetry's Python SDK samples) as CPU time. Right for
    /// CPU-bound single-threaded programs; threads that wait count too.
    #[arg(long)]
    otlp_wall_as_cpu: bool,
    /// A label that names the endpoint of samples that come without an
    /// `endpoint` label (repeatable, first found wins; e.g. `http.route`
    /// for OpenTelemetry, or a Pyroscope tag): pprof labels, OTLP sample
    /// attributes and Pyroscope tags alike. `endpoint` is always read
    /// after these. Samples with none are the whole service's.
    #[arg(long, value_name = "NAME", value_parser = parse::label_name)]
    endpoint_label: Vec<String>,
    /// Width of the time buckets samples and request statistics are summed
    /// in (`10s`; whole seconds). Detection windows (`window_ms` of
    /// --detect-settings) are whole buckets: a finer bucket allows shorter
    /// windows, for producers that push often, at the cost of more rows.
    #[arg(long, default_value = "10s", value_parser = parse::duration)]
    bucket: Duration,
    /// Require `Authorization: Bearer TOKEN` on every route but /healthz
    /// (one token that may do everything; see --auth for more).
    #[arg(long, env = "FLAMESHIFT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Tokens with scopes (ingest, read, admin) and services, from a JSON
    /// access file that holds their SHA-256 hashes (docs/operations.md,
    /// "Access"; `flameshift token new` makes entries). SIGHUP reads it
    /// again. Takes the place of --token (and of FLAMESHIFT_TOKEN).
    #[arg(long, value_name = "FILE")]
    auth: Option<PathBuf>,
    /// Delete samples and request statistics older than this (`14d`, `12h`; `forever` keeps all).
    #[arg(long, default_value = "14d", value_parser = parse::retention)]
    retention: Retention,
    /// Largest accepted request body (`64MiB`; a bare number is bytes).
    #[arg(long, default_value = "64MiB", value_parser = parse::size)]
    max_body: u64,
    /// How often the store's housekeeping runs (the embedded store writes
    /// what is only in its write-ahead log to Parquet; ClickHouse drops
    /// expired days).
    #[arg(long, default_value = "10s", value_parser = parse::duration)]
    flush_interval: Duration,
    /// With `--store clickhouse://`: uploads arriving within this time of
    /// the start of the node's last insert wait and go to ClickHouse
    /// together (the node has two inserting threads).
    #[arg(long, default_value = "1s", value_parser = parse::duration)]
    insert_interval: Duration,
    /// How often regression detection runs (with a shared store, on the
    /// node that holds the detection lease).
    #[arg(long, default_value = "60s", value_parser = parse::duration)]
    detect_interval: Duration,
    /// Detection thresholds: a JSON object with any of the settings in
    /// docs (e.g. `{"min_relative": 0.05}`); the rest keep their defaults.
    #[arg(long, value_name = "FILE")]
    detect_settings: Option<PathBuf>,
    /// POST each new regression to this URL (repeatable); the JSON has a
    /// one-line `text` that chat tools display.
    #[arg(long, value_name = "URL")]
    webhook: Vec<String>,
}

/// How to open a store, beside where.
#[derive(Debug, Clone)]
pub struct BackendOptions {
    /// What to keep.
    pub retention: Retention,
    /// ClickHouse: the least time between one inserting thread's inserts.
    pub insert_interval: Duration,
}

/// Opens the store `location` names (with credentials from the
/// environment when its URL has none) and its regression book.
pub fn open_backend(location: &str, options: &BackendOptions, limits: &Limits) -> anyhow::Result<Backend> {
    let retention_ms = match options.retention {
        Retention::Forever => None,
        Retention::For(d) => Some(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
    };
    let backend = match StoreLocation::parse(location)? {
        StoreLocation::Dir(dir) => {
            let mut store = StoreConfig::new(&dir);
            store.retention_ms = retention_ms;
            store.limits = limits.clone();
            Backend::disk(store).with_context(|| format!("opening the data directory {}", dir.display()))?
        }
        StoreLocation::ClickHouse(mut endpoint) => {
            if endpoint.user.is_none() {
                endpoint.user = std::env::var("FLAMESHIFT_CLICKHOUSE_USER").ok();
            }
            if endpoint.password.is_none() {
                endpoint.password = std::env::var("FLAMESHIFT_CLICKHOUSE_PASSWORD").ok();
            }
            let mut config = ClickHouseConfig::new(endpoint);
            config.retention_ms = retention_ms;
            config.insert_interval = options.insert_interval;
            config.sql_log = std::env::var_os("FLAMESHIFT_CLICKHOUSE_SQL_LOG").map(PathBuf::from);
            Backend::clickhouse(config)?
        }
    };
    Ok(backend)
}

/// Runs the analyzer until Ctrl-C or SIGTERM, then flushes and exits.
pub fn run(options: ServeArgs) -> anyhow::Result<ExitCode> {
    if options.token.as_deref() == Some("") {
        bail!("--token is empty");
    }
    let location = options
        .place
        .store
        .clone()
        .unwrap_or_else(|| format!("dir://{}", options.data.display()));
    let mut config = ServeConfig::new();
    config.limits.endpoint_labels = options.endpoint_label.clone();
    if options.bucket.subsec_nanos() != 0 || options.bucket.is_zero() {
        bail!("--bucket {:?}: a whole number of seconds", options.bucket);
    }
    config.limits.bucket_ms = i64::try_from(options.bucket.as_millis()).unwrap_or(i64::MAX);
    let backend_options = BackendOptions {
        retention: options.retention,
        insert_interval: options.insert_interval,
    };
    let backend = open_backend(&location, &backend_options, &config.limits)?;
    config.listen = options.place.listen;
    config.token = options.token;
    if let Some(path) = &options.auth {
        let keys = Keys::load(path)?;
        tracing::info!(file = %path.display(), "access file loaded");
        if config.token.take().is_some() {
            tracing::warn!("--token (or FLAMESHIFT_TOKEN) is ignored: the access file holds the tokens");
        }
        config.keys = Some(Arc::new(keys));
    }
    config.otlp = server::OtlpConfig {
        deploy_attribute: options.otlp_deploy_attribute,
        wall_as_cpu: options.otlp_wall_as_cpu,
    };
    if let (Some(cert), Some(key)) = (options.tls_cert, options.tls_key) {
        config.tls = Some(server::TlsFiles { cert, key });
    }
    config.max_body_bytes = usize::try_from(options.max_body).unwrap_or(usize::MAX);
    config.ui = Some(flameshift_dashboard::router());
    config.flush_interval = options.flush_interval;
    config.detect_interval = options.detect_interval;
    if let Some(path) = &options.detect_settings {
        let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        config.detect = serde_json::from_slice(&text)
            .with_context(|| format!("{} is not a JSON object of detection settings", path.display()))?;
    }
    if !options.webhook.is_empty() {
        for url in &options.webhook {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bail!("--webhook {url:?}: not an http:// or https:// URL");
            }
        }
        config.notifier = Some(Arc::new(
            Webhooks::start(options.webhook.clone(), Duration::from_secs(1))
                .context("starting webhook deliveries")?,
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime
        .block_on(async move {
            let shutdown = async {
                shutdown_signal().await;
                tracing::info!("shutting down");
            };
            server::serve(config, backend.store, backend.regressions, shutdown, |running| {
                #[allow(clippy::print_stderr, reason = "the address is the command's output")]
                {
                    eprintln!("flameshift: listening on {}", running.url());
                }
            })
            .await
        })
        .with_context(|| format!("serving from {location}"))?;
    Ok(ExitCode::SUCCESS)
}
