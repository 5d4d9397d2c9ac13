//! `flameshift regressions`: the regressions an analyzer found, as a table
//! or JSON.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use flameshift_client::api::{Analyzer, Listing, RegressionQuery};
use flameshift_client::http::ClientOptions;
use flameshift_detect::{Regression, State};

use crate::args::AnalyzerAccess;

/// List the regressions an analyzer found.
#[derive(Debug, Args)]
pub struct RegressionsArgs {
    /// The analyzer (or FLAMESHIFT_ANALYZER).
    #[arg(long, env = "FLAMESHIFT_ANALYZER", default_value = "http://127.0.0.1:7411")]
    analyzer: String,
    /// Only this service.
    #[arg(long)]
    service: Option<String>,
    /// Only regressions in this state: open, acknowledged or resolved.
    #[arg(long, value_parser = |s: &str| s.parse::<State>())]
    state: Option<State>,
    /// The token and CA file.
    #[command(flatten)]
    access: AnalyzerAccess,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Ask the analyzer to run detection now, first.
    #[arg(long)]
    detect: bool,
}

/// Runs detection first when asked, then lists.
pub fn run(options: RegressionsArgs) -> anyhow::Result<ExitCode> {
    let analyzer = Analyzer::new(
        &options.analyzer,
        options.access.token.as_deref(),
        &ClientOptions {
            timeout: Duration::from_secs(120),
            ..options.access.client_options()
        },
    )?;
    if options.detect {
        analyzer
            .detect(options.service.as_deref())
            .context("the analyzer did not run detection")?;
    }
    let query = RegressionQuery {
        service: options.service.clone(),
        state: options.state.map(|s| s.as_str().to_owned()),
        deploy: None,
    };
    let listing: Listing<Regression> = analyzer
        .regressions(&query)
        .context("the analyzer did not list its regressions")?;
    let regressions = listing.regressions;
    let comparison = listing.comparison.unwrap_or_default();
    #[allow(clippy::print_stdout, reason = "the listing is the command's output")]
    if options.json {
        println!("{}", serde_json::to_string_pretty(&regressions)?);
    } else if regressions.is_empty() {
        println!("no regressions");
        if let Some(why) = waiting(&comparison) {
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
        "COST".to_owned(),
        "Q".to_owned(),
        "SUSPECT".to_owned(),
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
            r.capacity.map_or_else(|| "-".to_owned(), |c| c.describe()),
            format!("{:.1e}", r.q_value),
            r.suspects.first().map_or_else(
                || "-".to_owned(),
                |s| {
                    let title: String = s.title.chars().take(40).collect();
                    let more = if s.title.chars().count() > 40 { "…" } else { "" };
                    format!("{} {title}{more}", s.short)
                },
            ),
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
