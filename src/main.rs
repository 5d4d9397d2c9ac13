//! The `flameshift` command line. Each command is a module that owns its
//! clap arguments and its `run`; the work happens in the library crates.
//! Every error ends the process with exit code 2 and one line on stderr.

#![allow(
    clippy::print_stderr,
    reason = "the CLI reports progress and errors on stderr"
)]

mod args;
mod attach;
mod changepoints;
mod commits;
mod completions;
mod convert;
mod demo;
mod demo_service;
mod deploy;
mod diff;
mod flamegraph;
mod gate;
mod input;
mod output;
mod parse;
mod record;
mod regressions;
mod sampling;
mod series;
mod serve;
mod signals;
mod token;
mod top;
mod webhook;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// flameshift: CPU profiles to flame graphs, diffs and per-function regressions.
#[derive(Debug, Parser)]
#[command(name = "flameshift", version, about, long_about = None, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Draw a flame graph (SVG) from one or more profiles, merged.
    Flamegraph(flamegraph::FlamegraphArgs),
    /// Draw a differential flame graph from BASE to CANDIDATE (normalised by total).
    Diff(diff::DiffArgs),
    /// Convert a profile to pprof, folded stacks or speedscope JSON.
    Convert(convert::ConvertArgs),
    /// Print the most expensive functions as a table.
    Top(top::TopArgs),
    /// Run a command and profile it and its children with perf events.
    Record(record::RecordArgs),
    /// Profile a running process (all its threads) until Ctrl-C or --duration.
    Attach(attach::AttachArgs),
    /// Run the analyzer: ingest uploads, store them durably, answer queries.
    Serve(serve::ServeArgs),
    /// The whole product in one command: analyzer, dashboard, services with the agent, three deploys, a regression found.
    Demo(demo::DemoArgs),
    /// Run a small axum service with the in-process agent attached (for the demo and benchmarks).
    #[command(hide = true)]
    DemoService(demo_service::DemoServiceArgs),
    /// Find change points in a numeric series (CSV with a header row, or a JSON array).
    Changepoints(changepoints::ChangepointsArgs),
    /// Tell the analyzer a deploy happened, with the commits it brought (suspects of its regressions).
    Deploy(deploy::DeployArgs),
    /// List the regressions an analyzer found.
    Regressions(regressions::RegressionsArgs),
    /// CI gate: exit 1 when the candidate's profiles show a function meaningfully more expensive than the baseline's.
    Gate(gate::GateArgs),
    /// Make tokens for `serve --auth FILE` (scoped, stored as hashes).
    Token(token::TokenArgs),
    /// Print a shell completion script.
    Completions(completions::CompletionsArgs),
    /// Write the man pages.
    Manpage(completions::ManpageArgs),
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Flamegraph(args) => flamegraph::run(args),
        Command::Diff(args) => diff::run(args),
        Command::Convert(args) => convert::run(args),
        Command::Top(args) => top::run(args),
        Command::Record(args) => record::run(args),
        Command::Attach(args) => attach::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Demo(args) => demo::run(args),
        Command::DemoService(args) => demo_service::run(args),
        Command::Changepoints(args) => changepoints::run(args),
        Command::Deploy(args) => deploy::run(args),
        Command::Regressions(args) => regressions::run(args),
        Command::Gate(args) => gate::run(args),
        Command::Token(args) => token::run(args),
        Command::Completions(args) => completions::completions(args),
        Command::Manpage(args) => completions::manpage(args),
    }
}

/// What to log: `FLAMESHIFT_LOG` (`debug`, `warn,flameshift_analyzer=info`:
/// a level, then `target=level` pairs), else warnings. A value that does
/// not parse is said once and the default kept. Targets, not
/// `EnvFilter`: no span filters, and no regex engine in the build.
fn log_filter() -> tracing_subscriber::filter::Targets {
    let default = || {
        "warn,rustls_platform_verifier=off"
            .parse::<tracing_subscriber::filter::Targets>()
            .unwrap_or_default()
    };
    match std::env::var("FLAMESHIFT_LOG") {
        Ok(value) => value.parse().unwrap_or_else(|e| {
            eprintln!("flameshift: FLAMESHIFT_LOG={value:?} is not a filter ({e}); logging warnings");
            default()
        }),
        Err(_) => default(),
    }
}

fn main() -> ExitCode {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    tracing_subscriber::registry()
        .with(log_filter())
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if !err.use_stderr() => {
            // --help and --version: clap prints them on stdout.
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("flameshift: error: {}", usage_error(&err.to_string()));
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("flameshift: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// clap's message for a bad command line, on one line like every other
/// error: its first paragraph (the problem, the missing arguments or the
/// valid values) joined, without the `error: ` prefix, and where to look.
fn usage_error(rendered: &str) -> String {
    let paragraph: Vec<&str> = rendered
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(str::trim)
        .collect();
    let message = paragraph.join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    format!("{message} (see --help)")
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::{usage_error, Cli};

    #[test]
    fn usage_errors_are_one_line() {
        let err = Cli::command()
            .try_get_matches_from(["flameshift", "gate", "--metric", "average"])
            .unwrap_err();
        let line = usage_error(&err.to_string());
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains("'average'") && line.contains("--metric"), "{line}");
        assert!(
            line.contains("self") && line.contains("inclusive"),
            "names the valid values: {line}"
        );
        let err = Cli::command()
            .try_get_matches_from(["flameshift", "gate"])
            .unwrap_err();
        let line = usage_error(&err.to_string());
        assert!(
            !line.contains('\n') && line.contains("--baseline"),
            "names what is missing: {line}"
        );
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
