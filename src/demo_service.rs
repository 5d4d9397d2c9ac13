//! `flameshift demo-service`: a small axum service with the in-process
//! agent attached, with CPU work whose cost depends on the deploy, so that
//! the demo (and the overhead benchmark) have something real to measure.

use std::hint::black_box;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Router;
use clap::Args;
use flameshift_collector::agent::{Agent, AgentConfig};
use flameshift_collector::layer::{AxumRoute, CpuLayer};
use flameshift_collector::requests::RequestStats;

/// Run a small axum service with the in-process agent attached (for the demo and benchmarks).
#[derive(Debug, Args)]
pub struct DemoServiceArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Ship to this analyzer (or FLAMESHIFT_ANALYZER).
    #[arg(long)]
    analyzer: Option<String>,
    /// Service name.
    #[arg(long, default_value = "demo")]
    service: String,
    /// Deploy: `v1` baseline, `v2` makes `score_items` (GET /feed) 15% more
    /// expensive (`--v2-rise`) and moves cost from `parse_order` to
    /// `validate_order` (POST /orders, cost-neutral), `v3` fixes the regression.
    #[arg(long, default_value = "v1")]
    deploy: String,
    /// How much more `score_items` costs in `v2`, in percent.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(0..=1000))]
    v2_rise: u64,
    /// Run without the agent (for overhead benchmarks).
    #[arg(long)]
    no_agent: bool,
    /// Without --analyzer: write the profile (since start) to this pprof file every 30 s and on exit.
    #[arg(long)]
    output: Option<std::path::PathBuf>,
    /// Make FUNCTION cost PERCENT more (repeatable), e.g. `score_items=15`.
    #[arg(long, value_name = "FUNCTION=PERCENT", value_parser = crate::parse::function_percent)]
    regress: Vec<(String, u64)>,
    /// Multiply every function's cost by N (heavier requests, same proportions).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1000))]
    scale: u64,
}

/// How expensive each piece of work is in this deploy (in [`ROUNDS_PER_UNIT`]s).
#[derive(Debug, Clone, Copy)]
struct Costs {
    lookup_user: u64,
    score_items: u64,
    render_feed: u64,
    parse_order: u64,
    validate_order: u64,
    price_order: u64,
}

fn costs(deploy: &str, v2_rise: u64) -> Costs {
    let base = Costs {
        lookup_user: 40,
        score_items: 200,
        render_feed: 100,
        parse_order: 60,
        validate_order: 40,
        price_order: 100,
    };
    match deploy {
        // +15% in one function of one endpoint, and a cost-neutral refactor.
        "v2" => Costs {
            score_items: 200 + 2 * v2_rise,
            parse_order: 40,
            validate_order: 60,
            ..base
        },
        "v3" => Costs {
            parse_order: 40,
            validate_order: 60,
            ..base
        },
        _ => base,
    }
}

/// Xorshift rounds per cost unit (a unit is ~2 µs on the release build).
const ROUNDS_PER_UNIT: u64 = 1_000;

/// Defines a work function that spends `costs.$field` units of CPU in its
/// own frame: the loop is in the function itself (no tail call into a
/// shared helper, which would leave no frame), made of plain integer
/// operators (no inlined std function becomes the leaf), and each function
/// starts from its own seed, so LLVM cannot merge two of them into one
/// symbol (rustc merges identical functions, and the profile would then
/// name whichever symbol the linker kept).
macro_rules! work_fn {
    ($name:ident, $field:ident, $seed:literal) => {
        #[inline(never)]
        fn $name(costs: &Costs) -> u64 {
            let rounds = black_box(costs.$field) * ROUNDS_PER_UNIT;
            let mut x: u64 = $seed;
            let mut round = 0;
            while round < rounds {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                round += 1;
            }
            black_box(x)
        }
    };
}

work_fn!(lookup_user, lookup_user, 0x243f_6a88_85a3_08d3);
work_fn!(score_items, score_items, 0x1319_8a2e_0370_7344);
work_fn!(render_feed, render_feed, 0xa409_3822_299f_31d0);
work_fn!(parse_order, parse_order, 0x082e_fa98_ec4e_6c89);
work_fn!(validate_order, validate_order, 0x4528_21e6_38d0_1377);
work_fn!(price_order, price_order, 0xbe54_66cf_34e9_0c6c);

async fn user(State(costs): State<Arc<Costs>>, Path(id): Path<u64>) -> String {
    format!("user {}\n", (lookup_user(&costs) ^ id) % 1000)
}

async fn feed(State(costs): State<Arc<Costs>>) -> String {
    let score = score_items(&costs);
    tokio::task::yield_now().await; // the request moves between polls, maybe threads
    format!("feed {}\n", (score ^ render_feed(&costs)) % 1000)
}

async fn order(State(costs): State<Arc<Costs>>) -> String {
    let total = parse_order(&costs) ^ validate_order(&costs) ^ price_order(&costs);
    format!("order {}\n", total % 1000)
}

async fn health() -> &'static str {
    "ok\n"
}

/// Runs the service until Ctrl-C or SIGTERM, then ships what the agent has.
pub fn run(options: DemoServiceArgs) -> anyhow::Result<ExitCode> {
    let mut config = AgentConfig::new(&options.service, &options.deploy);
    if let Some(analyzer) = &options.analyzer {
        config = config.analyzer(analyzer);
    }
    if let Some(output) = &options.output {
        config = config.output(output);
    }
    let agent = if !options.no_agent {
        Some(Agent::start(config).context("starting the agent")?)
    } else {
        None
    };
    let stats = agent
        .as_ref()
        .map(Agent::request_stats)
        .unwrap_or_else(|| Arc::new(RequestStats::default()));
    let mut costs = costs(&options.deploy, options.v2_rise);
    for (function, percent) in &options.regress {
        let slot = match function.as_str() {
            "lookup_user" => &mut costs.lookup_user,
            "score_items" => &mut costs.score_items,
            "render_feed" => &mut costs.render_feed,
            "parse_order" => &mut costs.parse_order,
            "validate_order" => &mut costs.validate_order,
            "price_order" => &mut costs.price_order,
            other => anyhow::bail!(
                "--regress {other}: no such function (lookup_user, score_items, render_feed, parse_order, validate_order, price_order)"
            ),
        };
        *slot += *slot * percent / 100;
    }
    for slot in [
        &mut costs.lookup_user,
        &mut costs.score_items,
        &mut costs.render_feed,
        &mut costs.parse_order,
        &mut costs.validate_order,
        &mut costs.price_order,
    ] {
        *slot *= options.scale.max(1);
    }
    let costs = Arc::new(costs);
    let mut app = Router::new()
        .route("/users/{id}", get(user))
        .route("/feed", get(feed))
        .route("/orders", post(order))
        .route("/health", get(health))
        .with_state(costs);
    if !options.no_agent {
        app = app.layer(CpuLayer::new(stats, AxumRoute));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .with_context(|| format!("listening on {}", options.listen))?;
        let addr = listener.local_addr()?;
        #[allow(clippy::print_stderr, reason = "the address is the command's output")]
        {
            eprintln!("flameshift demo-service: listening on http://{addr}");
        }
        axum::serve(listener, app)
            .with_graceful_shutdown(crate::signals::shutdown_signal())
            .await?;
        anyhow::Ok(())
    })?;
    if let Some(agent) = agent {
        agent.flush();
        agent.shutdown();
    }
    Ok(ExitCode::SUCCESS)
}
