//! Option groups more than one command shares, declared once.

use std::path::PathBuf;

use clap::Args;
use flameshift_client::http::ClientOptions;

/// As whom, and trusting what, a command talks to the analyzer (`record`,
/// `attach`, `regressions`). Where the analyzer is stays each command's
/// own option: `regressions` defaults to the local analyzer, `record`
/// ships only when asked.
#[derive(Debug, Clone, Args)]
pub struct AnalyzerAccess {
    /// Bearer token, if the analyzer requires one.
    #[arg(long, env = "FLAMESHIFT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Trust the certificate authorities in this PEM file (beside the
    /// system's) for an https:// analyzer.
    #[arg(long, env = "FLAMESHIFT_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
}

impl AnalyzerAccess {
    /// The client options: this CA file, the rest as default.
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions {
            ca_cert: self.ca_cert.clone(),
            ..ClientOptions::default()
        }
    }
}

/// Where the analyzer keeps its data besides a data directory (`serve`,
/// `demo`; their `--data` defaults differ: a directory here, a temporary
/// one for the demo).
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Where the analyzer (and the dashboard) listen.
    #[arg(long, default_value = "127.0.0.1:7411")]
    pub listen: std::net::SocketAddr,
    /// Where to keep the data: `dir://PATH` (the embedded store) or
    /// `clickhouse://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE` (several
    /// analyzer nodes can share one; user and password also from
    /// FLAMESHIFT_CLICKHOUSE_USER / FLAMESHIFT_CLICKHOUSE_PASSWORD).
    #[arg(long, value_name = "URL", conflicts_with = "data")]
    pub store: Option<String>,
}
