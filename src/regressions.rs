//! `flameshift regressions`: the regressions an analyzer found, as a table
//! or JSON.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use flameshift_collector::client::{encode_component, Client, ClientOptions, Request};
use flameshift_detect::Regression;

/// List the regressions an analyzer found.
#[derive(Debug, Args)]
pub struct RegressionsArgs {
    /// The analyzer (or FLAMESHIFT_ANALYZER).
    #[arg(long, env = "FLAMESHIFT_ANALYZER", default_value = "http://127.0.0.1:7411")]
    analyzer: String,
    /// Only this service.
    #[arg(long)]
    service: Option<String>,
    /// Only regressions in this state.
    #[arg(long, value_enum)]
    state: Option<StateChoice>,
    /// Bearer token, if the analyzer requires one.
    #[arg(long, env = "FLAMESHIFT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Trust the certificate authorities in this PEM file (beside the
    /// system's) for an https:// analyzer.
    #[arg(long, env = "FLAMESHIFT_CA_CERT", value_name = "FILE")]
    ca_cert: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Ask the analyzer to run detection now, first.
    #[arg(long)]
    detect: bool,
}

/// `--state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StateChoice {
    /// Found, nobody has looked yet.
    Open,
    /// Someone said they are on it.
    Acknowledged,
    /// A later deploy brought the cost back.
    Resolved,
}

impl StateChoice {
    fn as_str(self) -> &'static str {
        match self {
            StateChoice::Open => "open",
            StateChoice::Acknowledged => "acknowledged",
            StateChoice::Resolved => "resolved",
        }
    }
}

/// Runs detection first when asked, then lists.
pub fn run(options: RegressionsArgs) -> anyhow::Result<ExitCode> {
    let base = options.analyzer.trim_end_matches('/');
    let auth = options.token.as_ref().map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    let client = Client::new(&ClientOptions {
        timeout: Duration::from_secs(120),
        ca_cert: options.ca_cert.clone(),
        ..ClientOptions::default()
    })?;
    if options.detect {
        let mut url = format!("{base}/api/v1/detect");
        if let Some(s) = &options.service {
            url.push_str(&format!("?service={}", encode_component(s)));
        }
        client
            .call(&Request::post(&url, b"").headers(&headers))
            .context("the analyzer did not run detection")?;
    }
    let mut params = Vec::new();
    if let Some(s) = &options.service {
        params.push(format!("service={}", encode_component(s)));
    }
    if let Some(s) = options.state {
        params.push(format!("state={}", s.as_str()));
    }
    let url = format!("{base}/api/v1/regressions?{}", params.join("&"));
    let response = client
        .call(&Request::get(&url).headers(&headers))
        .context("the analyzer did not list its regressions")?;
    let mut listing: serde_json::Value =
        serde_json::from_slice(&response.body).context("the analyzer's answer is not JSON")?;
    let regressions: Vec<Regression> = serde_json::from_value(listing["regressions"].take())
        .context("the analyzer's answer is not a regression list")?;
    #[allow(clippy::print_stdout, reason = "the listing is the command's output")]
    if options.json {
        println!("{}", serde_json::to_string_pretty(&regressions)?);
    } else if regressions.is_empty() {
        println!("no regressions");
        if let Some(why) = waiting(&listing["comparison"]) {
            println!("{why}");
        }
    } else {
        println!("{}", table(&regressions));
    }
    Ok(ExitCode::SUCCESS)
}

/// Why a service with no regression has none yet: the endpoints of its
/// newest deploy pair that could not be compared (the listing's
/// `comparison`), one line each.
fn waiting(comparison: &serde_json::Value) -> Option<String> {
    let not_compared = comparison["not_compared"].as_array().filter(|n| !n.is_empty())?;
    let pair = format!(
        "{} → {}",
        comparison["deploy_before"].as_str().unwrap_or("?"),
        comparison["deploy_after"].as_str().unwrap_or("?")
    );
    let lines: Vec<String> = not_compared
        .iter()
        .map(|n| {
            let endpoint = match n["endpoint"].as_str().unwrap_or("") {
                "" => "(whole service)",
                e => e,
            };
            format!(
                "  {endpoint} not compared yet ({}): {}",
                n["measure"].as_str().unwrap_or("?"),
                n["reason"].as_str().unwrap_or("?")
            )
        })
        .collect();
    Some(format!("{pair}:\n{}", lines.join("\n")))
}

/// The regressions as an aligned text table.
pub fn table(regressions: &[Regression]) -> String {
    let mut rows = vec![[
        "STATE".to_owned(),
        "SERVICE".to_owned(),
        "ENDPOINT".to_owned(),
        "FUNCTION".to_owned(),
        "DEPLOYS".to_owned(),
        "MEASURE".to_owned(),
        "CHANGE [95% CI]".to_owned(),
        "Q".to_owned(),
    ]];
    for r in regressions {
        let pct = |x: f64| format!("{:+.1}%", x * 100.0);
        rows.push([
            r.state.as_str().to_owned(),
            r.service.clone(),
            r.endpoint.clone(),
            match (&r.function, &r.call_path) {
                (Some(f), Some(path)) => format!(
                    "{f} ({}, under {})",
                    r.metric.as_str(),
                    flameshift_detect::callpath::short_name(&path.callers[0])
                ),
                (Some(f), None) => format!("{f} ({})", r.metric.as_str()),
                (None, _) => "(total)".to_owned(),
            },
            if r.deploy_before == r.deploy_after {
                format!("within {}", r.deploy_after)
            } else {
                format!("{} → {}", r.deploy_before, r.deploy_after)
            },
            r.measure.as_str().to_owned(),
            match &r.relative {
                Some(x) => format!(
                    "{} [{}, {}] {} → {}",
                    pct(x.mean),
                    pct(x.low),
                    pct(x.high),
                    r.measure.quantity(r.unit, r.before.mean),
                    r.measure.quantity(r.unit, r.after.mean)
                ),
                None => format!("new: {}", r.measure.quantity(r.unit, r.change.mean)),
            },
            format!("{:.1e}", r.q_value),
        ]);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|r| {
            r.iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell}{}", " ".repeat(w - cell.chars().count())))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}
