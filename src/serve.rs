//! `flameshift serve`: the analyzer, until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use flameshift_analyzer::server::{self, parse_duration_ms, ServeConfig};
use flameshift_analyzer::store::StoreConfig;

use crate::webhook::Webhooks;

/// What the command line said.
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub data: PathBuf,
    pub token: Option<String>,
    pub retention: String,
    pub max_body: usize,
    pub flush_interval: String,
    pub detect_interval: String,
    pub detect_settings: Option<PathBuf>,
    pub webhooks: Vec<String>,
}

fn duration(what: &str, text: &str) -> anyhow::Result<i64> {
    parse_duration_ms(text)
        .with_context(|| format!("{what} {text:?} is not a duration such as 10s, 12h or 14d"))
}

/// Runs the analyzer until Ctrl-C or SIGTERM, then flushes and exits.
pub fn serve(options: ServeOptions) -> anyhow::Result<()> {
    let mut store = StoreConfig::new(&options.data);
    store.retention_ms = match options.retention.as_str() {
        "forever" | "none" => None,
        text => Some(duration("--retention", text)?),
    };
    if options.token.as_deref() == Some("") {
        bail!("--token is empty");
    }
    let mut config = ServeConfig::new(store);
    config.listen = options.listen;
    config.token = options.token;
    config.max_body_bytes = options.max_body;
    config.ui = Some(flameshift_dashboard::router());
    config.flush_interval =
        Duration::from_millis(duration("--flush-interval", &options.flush_interval)? as u64);
    config.detect_interval =
        Duration::from_millis(duration("--detect-interval", &options.detect_interval)?.max(1) as u64);
    if let Some(path) = &options.detect_settings {
        let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        config.detect = serde_json::from_slice(&text)
            .with_context(|| format!("{} is not a JSON object of detection settings", path.display()))?;
    }
    if !options.webhooks.is_empty() {
        for url in &options.webhooks {
            if !url.starts_with("http://") {
                bail!(
                    "--webhook {url:?}: only http:// URLs are supported (put a TLS proxy in front for https)"
                );
            }
        }
        config.notifier = Some(Arc::new(Webhooks::start(
            options.webhooks.clone(),
            Duration::from_secs(1),
        )));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime
        .block_on(async move {
            let shutdown = async {
                let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                {
                    Ok(term) => term,
                    Err(_) => return std::future::pending().await,
                };
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                tracing::info!("shutting down");
            };
            server::serve(config, shutdown, |running| {
                #[allow(clippy::print_stderr, reason = "the address is the command's output")]
                {
                    eprintln!("flameshift: listening on http://{}", running.addr);
                }
            })
            .await
        })
        .with_context(|| format!("serving from {}", options.data.display()))
}
