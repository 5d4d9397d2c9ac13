//! The `flameshift` command line: clap structs turned into plain calls
//! into the library crates. Every error ends the process with exit code 2
//! and one line on stderr.

#![allow(clippy::print_stderr, reason = "the CLI reports errors on stderr")]

mod changepoints;
mod commands;
mod demo;
mod demo_service;
mod gate;
mod regressions;
mod serve;
mod webhook;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// flameshift: CPU profiles to flame graphs, diffs and per-function regressions.
#[derive(Debug, Parser)]
#[command(name = "flameshift", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Draw a flame graph (SVG) from one or more profiles, merged.
    Flamegraph(FlamegraphArgs),
    /// Draw a differential flame graph from BASE to CANDIDATE (normalised by total).
    Diff(DiffArgs),
    /// Convert a profile to pprof, folded stacks or speedscope JSON.
    Convert(ConvertArgs),
    /// Print the most expensive functions as a table.
    Top(TopArgs),
    /// Run a command and profile it and its children with perf events.
    Record(RecordArgs),
    /// Profile a running process (all its threads) until Ctrl-C or --duration.
    Attach(AttachArgs),
    /// Run the analyzer: ingest uploads, store them durably, answer queries.
    Serve(ServeArgs),
    /// The whole product in one command: analyzer, dashboard, services with the agent, three deploys, a regression found.
    Demo(DemoArgs),
    /// Run a small axum service with the in-process agent attached (for the demo and benchmarks).
    DemoService(DemoServiceArgs),
    /// Find change points in a numeric series (CSV with a header row, or a JSON array).
    Changepoints(ChangepointsArgs),
    /// List the regressions an analyzer found.
    Regressions(RegressionsArgs),
    /// CI gate: exit 1 when the candidate's profiles show a function meaningfully more expensive than the baseline's.
    Gate(GateArgs),
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Where the analyzer and the dashboard listen.
    #[arg(long, default_value = "127.0.0.1:7411")]
    listen: std::net::SocketAddr,
    /// Data directory (default: a fresh temporary one, removed on exit).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Exit after the summary (0: the injected regression was found, 1: not) instead of serving until Ctrl-C.
    #[arg(long)]
    exit: bool,
    /// Seconds of load per deploy.
    #[arg(long, default_value_t = 110)]
    deploy_seconds: u64,
}

#[derive(Debug, Args)]
struct GateArgs {
    /// Baseline profiles: files (one run each) or directories of runs.
    #[arg(long, num_args = 1.., required_unless_present = "history")]
    baseline: Vec<PathBuf>,
    /// Candidate profiles: files or directories of runs.
    #[arg(long, num_args = 1.., required_unless_present = "history")]
    candidate: Vec<PathBuf>,
    /// History mode: a CSV (header row, a column per benchmark, oldest row
    /// first) or JSON array; fail when the newest point starts a regression.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["baseline", "candidate"])]
    history: Option<PathBuf>,
    /// History mode: only this column.
    #[arg(long, requires = "history")]
    column: Option<String>,
    /// Smallest relative rise that fails the build (`2%` or `0.02`).
    #[arg(long, default_value = "2%")]
    max_regression: String,
    /// Largest Benjamini–Hochberg q-value of a failing rise.
    #[arg(long, default_value_t = 0.01)]
    significance: f64,
    /// Functions below this share of the candidate's cost are not tested.
    #[arg(long, default_value = "0.1%")]
    min_share: String,
    /// Which cost to test.
    #[arg(long, default_value = "self", value_parser = ["self", "inclusive", "both"])]
    metric: String,
    /// Write the Markdown report here too.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the differential flame graph (baseline → candidate) here.
    #[arg(long)]
    diff_svg: Option<PathBuf>,
    #[command(flatten)]
    input: InputArgs,
}

#[derive(Debug, Args)]
struct RegressionsArgs {
    /// The analyzer (or FLAMESHIFT_ANALYZER).
    #[arg(long, env = "FLAMESHIFT_ANALYZER", default_value = "http://127.0.0.1:7411")]
    analyzer: String,
    /// Only this service.
    #[arg(long)]
    service: Option<String>,
    /// Only regressions in this state.
    #[arg(long, value_parser = ["open", "acknowledged", "resolved"])]
    state: Option<String>,
    /// Bearer token, if the analyzer requires one.
    #[arg(long, env = "FLAMESHIFT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Ask the analyzer to run detection now, first.
    #[arg(long)]
    detect: bool,
}

#[derive(Debug, Args)]
struct ChangepointsArgs {
    /// CSV (one column per metric, a header row) or JSON array of numbers.
    file: PathBuf,
    /// Only this column (default: every numeric column).
    #[arg(long)]
    column: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// E-Divisive means with a t-test (as Apache Otava), or PELT with an MBIC-like penalty.
    #[arg(long, default_value = "e-divisive", value_parser = ["e-divisive", "pelt"])]
    method: String,
    /// E-Divisive's significance threshold (after a Bonferroni correction over the splits tried).
    #[arg(long, default_value_t = 0.001)]
    max_p_value: f64,
}

#[derive(Debug, Args)]
struct DemoServiceArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Ship to this analyzer (or FLAMESHIFT_ANALYZER).
    #[arg(long)]
    analyzer: Option<String>,
    /// Service name.
    #[arg(long, default_value = "demo")]
    service: String,
    /// Deploy: `v1` baseline, `v2` makes `score_items` (GET /feed) 15% more
    /// expensive and moves cost from `parse_order` to `validate_order`
    /// (POST /orders, cost-neutral), `v3` fixes the regression.
    #[arg(long, default_value = "v1")]
    deploy: String,
    /// Run without the agent (for overhead benchmarks).
    #[arg(long)]
    no_agent: bool,
    /// Without --analyzer: write the profile (since start) to this pprof file every interval.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Make FUNCTION cost PERCENT more (repeatable), e.g. `score_items=15`.
    #[arg(long, value_name = "FUNCTION=PERCENT")]
    regress: Vec<String>,
    /// Multiply every function's cost by N (heavier requests, same proportions).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1000))]
    scale: u64,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on (loopback by default; use 0.0.0.0:7411 to accept other hosts).
    #[arg(long, default_value = "127.0.0.1:7411")]
    listen: std::net::SocketAddr,
    /// The data directory (created if missing).
    #[arg(long, default_value = "./flameshift-data")]
    data: PathBuf,
    /// Require `Authorization: Bearer TOKEN` on every route but /healthz.
    #[arg(long, env = "FLAMESHIFT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Delete samples and request statistics older than this (`14d`, `12h`; `forever` keeps all).
    #[arg(long, default_value = "14d")]
    retention: String,
    /// Largest accepted request body in bytes.
    #[arg(long, default_value_t = 64 << 20)]
    max_body: usize,
    /// How often what is only in the write-ahead log is written to Parquet.
    #[arg(long, default_value = "10s")]
    flush_interval: String,
    /// How often regression detection runs.
    #[arg(long, default_value = "60s")]
    detect_interval: String,
    /// Detection thresholds: a JSON object with any of the settings in
    /// docs (e.g. `{"min_relative": 0.05}`); the rest keep their defaults.
    #[arg(long, value_name = "FILE")]
    detect_settings: Option<PathBuf>,
    /// POST each new regression to this URL (repeatable); the JSON has a
    /// one-line `text` that chat tools display.
    #[arg(long, value_name = "URL")]
    webhook: Vec<String>,
}

/// Options every command that reads profiles shares.
#[derive(Debug, Args)]
struct InputArgs {
    /// Keep only samples with this label (repeatable; all must match).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// Which sample type to use (`cpu`, `samples`, `cpu/nanoseconds`, a unit); default: the profile's.
    #[arg(long, value_name = "NAME")]
    sample_type: Option<String>,
    /// Refuse gzipped input that decompresses to more than this many bytes.
    #[arg(long, value_name = "BYTES", default_value_t = flameshift_profile::format::DEFAULT_MAX_DECOMPRESSED)]
    max_decompressed: u64,
}

#[derive(Debug, Args)]
struct FlamegraphArgs {
    /// Profiles in any supported format (pprof, folded, perf script); `-` for stdin.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output SVG (`-` for stdout).
    #[arg(short, long, default_value = "flamegraph.svg")]
    output: PathBuf,
    #[command(flatten)]
    graph: GraphArgs,
    #[command(flatten)]
    input: InputArgs,
}

/// How a graph looks.
#[derive(Debug, Args)]
struct GraphArgs {
    /// Title of the graph.
    #[arg(long)]
    title: Option<String>,
    /// Draw an icicle graph (root at the top).
    #[arg(long)]
    inverted: bool,
}

#[derive(Debug, Args)]
struct DiffArgs {
    /// The profile before the change.
    base: PathBuf,
    /// The profile after the change.
    candidate: PathBuf,
    /// Output SVG (`-` for stdout).
    #[arg(short, long, default_value = "diff.svg")]
    output: PathBuf,
    #[command(flatten)]
    graph: GraphArgs,
    #[command(flatten)]
    input: InputArgs,
}

#[derive(Debug, Args)]
struct ConvertArgs {
    /// The profile to convert.
    input: PathBuf,
    /// Output file (`-` for stdout).
    #[arg(short, long)]
    output: PathBuf,
    /// Output format; default: from the output's extension.
    #[arg(long, value_parser = ["pprof", "folded", "speedscope"])]
    format: Option<String>,
    #[command(flatten)]
    args: InputArgs,
}

#[derive(Debug, Args)]
struct TopArgs {
    /// Profiles in any supported format, merged.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Rank by self cost (the default).
    #[arg(long = "self", conflicts_with = "inclusive")]
    self_cost: bool,
    /// Rank by inclusive cost.
    #[arg(long)]
    inclusive: bool,
    /// How many functions to show.
    #[arg(short = 'n', long, default_value_t = 20)]
    count: usize,
    #[command(flatten)]
    input: InputArgs,
}

#[derive(Debug, Args)]
struct SamplingArgs {
    /// Output: `.svg` draws a flame graph, `.folded`/`.txt` folded stacks,
    /// `.json` speedscope, anything else pprof (`-` for pprof on stdout).
    /// Default `profile.pb.gz`, or none when shipping with --analyzer.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Ship the profile to this analyzer (`flameshift serve`), e.g. http://127.0.0.1:7411.
    #[arg(long, requires_all = ["service", "deploy"])]
    analyzer: Option<String>,
    /// Service name for --analyzer.
    #[arg(long)]
    service: Option<String>,
    /// Deploy (version) for --analyzer, e.g. a git SHA.
    #[arg(long)]
    deploy: Option<String>,
    /// Host name for --analyzer (default: this machine's).
    #[arg(long)]
    host: Option<String>,
    /// Bearer token for --analyzer.
    #[arg(long, env = "FLAMESHIFT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Sampling event: instructions when the machine has a PMU, else cpu-clock.
    #[arg(long, default_value = "auto", value_parser = ["auto", "instructions", "cpu-clock"])]
    event: String,
    /// Samples per second.
    #[arg(short = 'F', long = "freq", default_value_t = 99, conflicts_with = "period")]
    frequency: u64,
    /// Sample every N units of the event instead (instructions or ns).
    #[arg(long)]
    period: Option<u64>,
    /// How stacks are walked: frame pointers, DWARF unwinding of a stack
    /// copy (code without frame pointers), or per sample whichever works.
    #[arg(long, default_value = "auto", value_parser = ["fp", "dwarf", "auto"])]
    call_graph: String,
}

#[derive(Debug, Args)]
struct RecordArgs {
    #[command(flatten)]
    sampling: SamplingArgs,
    /// Count instructions exactly under valgrind's callgrind instead of
    /// sampling (deterministic, for CI machines without a PMU; ~50× slower).
    #[arg(long)]
    callgrind: bool,
    /// The command to run, after `--`.
    #[arg(required = true, last = true, value_name = "CMD")]
    command: Vec<std::ffi::OsString>,
}

#[derive(Debug, Args)]
struct AttachArgs {
    /// The process to profile.
    #[arg(long)]
    pid: u32,
    /// Stop after this long (`30s`, `500ms`, `2m`; a bare number is seconds).
    #[arg(long)]
    duration: Option<String>,
    #[command(flatten)]
    sampling: SamplingArgs,
}

impl SamplingArgs {
    fn to_config(&self) -> commands::SamplingConfig {
        let ship = self.analyzer.as_ref().map(|analyzer| {
            let mut dest = flameshift_collector::export::Destination::new(
                analyzer.clone(),
                self.service.clone().unwrap_or_default(),
                self.deploy.clone().unwrap_or_default(),
            );
            if let Some(host) = &self.host {
                dest.host = host.clone();
            }
            dest.token = self.token.clone();
            dest
        });
        let output = match (&self.output, &ship) {
            (Some(output), _) => Some(output.clone()),
            (None, Some(_)) => None,
            (None, None) => Some(PathBuf::from("profile.pb.gz")),
        };
        commands::SamplingConfig {
            output,
            ship,
            event: self.event.clone(),
            frequency: self.frequency,
            period: self.period,
            call_graph: self.call_graph.clone(),
        }
    }
}

impl InputArgs {
    fn to_config(&self) -> commands::InputConfig {
        commands::InputConfig {
            labels: self.labels.clone(),
            sample_type: self.sample_type.clone(),
            max_decompressed: self.max_decompressed,
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let done = |r: anyhow::Result<()>| r.map(|()| ExitCode::SUCCESS);
    match cli.command {
        Command::Changepoints(a) => done(changepoints::run(&changepoints::ChangepointOptions {
            input: a.file,
            column: a.column,
            json: a.json,
            method: a.method,
            max_p_value: a.max_p_value,
        })),
        Command::Demo(a) => demo::run(demo::DemoOptions {
            listen: a.listen,
            data: a.data,
            exit: a.exit,
            deploy_duration: std::time::Duration::from_secs(a.deploy_seconds.max(1)),
        }),
        Command::DemoService(a) => done(demo_service::run(demo_service::DemoOptions {
            listen: a.listen,
            analyzer: a.analyzer,
            service: a.service,
            deploy: a.deploy,
            agent: !a.no_agent,
            output: a.output,
            regress: a
                .regress
                .iter()
                .map(|r| {
                    r.split_once('=')
                        .and_then(|(f, p)| Some((f.to_owned(), p.trim_end_matches('%').parse().ok()?)))
                        .ok_or_else(|| anyhow::anyhow!("--regress {r:?}: expected FUNCTION=PERCENT"))
                })
                .collect::<anyhow::Result<_>>()?,
            scale: a.scale,
        })),
        Command::Serve(a) => done(serve::serve(serve::ServeOptions {
            listen: a.listen,
            data: a.data,
            token: a.token,
            retention: a.retention,
            max_body: a.max_body,
            flush_interval: a.flush_interval,
            detect_interval: a.detect_interval,
            detect_settings: a.detect_settings,
            webhooks: a.webhook,
        })),
        Command::Regressions(a) => regressions::run(&regressions::RegressionsOptions {
            analyzer: a.analyzer,
            service: a.service,
            state: a.state,
            token: a.token,
            json: a.json,
            detect: a.detect,
        })
        .map(|_| ExitCode::SUCCESS),
        Command::Record(a) if a.callgrind => commands::record_callgrind(&a.sampling.to_config(), &a.command),
        Command::Record(a) => commands::record(&a.sampling.to_config(), &a.command),
        Command::Attach(a) => done(commands::attach(
            &a.sampling.to_config(),
            a.pid,
            a.duration.as_deref(),
        )),
        Command::Flamegraph(a) => done(commands::flamegraph(&commands::FlamegraphConfig {
            inputs: a.inputs,
            output: a.output,
            title: a.graph.title,
            inverted: a.graph.inverted,
            input: a.input.to_config(),
        })),
        Command::Diff(a) => done(commands::diff(&commands::DiffConfig {
            base: a.base,
            candidate: a.candidate,
            output: a.output,
            title: a.graph.title,
            inverted: a.graph.inverted,
            input: a.input.to_config(),
        })),
        Command::Convert(a) => done(commands::convert(&commands::ConvertConfig {
            input: a.input,
            output: a.output,
            format: a.format,
            args: a.args.to_config(),
        })),
        Command::Gate(a) => {
            let options = gate::GateOptions {
                baseline: a.baseline,
                candidate: a.candidate,
                max_regression: a.max_regression,
                significance: a.significance,
                min_share: a.min_share,
                metric: a.metric,
                report: a.report,
                json: a.json,
                diff_svg: a.diff_svg,
                input: a.input.to_config(),
            };
            match &a.history {
                Some(path) => gate::history(&options, path, a.column.as_deref()),
                None => gate::run(&options),
            }
            .map(|failed| {
                if failed {
                    ExitCode::from(1)
                } else {
                    ExitCode::SUCCESS
                }
            })
        }
        Command::Top(a) => done(commands::top(&commands::TopConfig {
            inputs: a.inputs,
            inclusive: a.inclusive,
            count: a.count,
            input: a.input.to_config(),
        })),
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FLAMESHIFT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("flameshift: error: {err:#}");
            ExitCode::from(2)
        }
    }
}
