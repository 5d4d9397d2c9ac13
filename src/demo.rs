//! `flameshift demo`: the whole product on this machine. The analyzer
//! (with the dashboard) on an embedded store; `demo-service` child
//! processes with the agent attached, loaded by a loopback load generator
//! through deploys `v1` (baseline), `v2` (+15% in `score_items` of
//! `GET /feed`, and a cost-neutral `parse_order` → `validate_order`
//! refactor in `POST /orders`) and `v3` (the regression fixed); then
//! detection, and a summary of what it found.

use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::parse::Retention;
use anyhow::{bail, Context};
use clap::Args;
use flameshift_analyzer::server::{self, ServeConfig};
use flameshift_client::api::{Analyzer, Listing, RegressionQuery};
use flameshift_client::http::{self, ClientOptions};
use flameshift_detect::DetectSettings;

use crate::args::StoreArgs;

/// The whole product in one command: analyzer, dashboard, services with the agent, three deploys, a regression found.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the analyzer and the dashboard listen, and where the data
    /// goes when not in a data directory (ClickHouse: a fresh database,
    /// the demo's deploys must be the only ones).
    #[command(flatten)]
    place: StoreArgs,
    /// Data directory (default: a fresh temporary one, removed on exit).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Exit after the summary (0: the injected regression was found, 1: not) instead of serving until Ctrl-C.
    #[arg(long)]
    exit: bool,
    /// Seconds of load of v1 and v2 (v3, the fix, gets half): detection
    /// compares 3-second windows, at least 6 a side; 13 make it sure.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u64).range(1..))]
    deploy_seconds: u64,
    /// How much more `score_items` costs in v2, in percent (the accuracy
    /// runs of BENCHMARKS.md inject 5 and 15).
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=100))]
    rise: u64,
}

const SERVICE: &str = "demo";
const DEPLOYS: [(&str, &str); 3] = [
    ("v1", "baseline"),
    (
        "v2",
        "+15% in score_items (GET /feed), parse_order → validate_order refactor (POST /orders)",
    ),
    ("v3", "score_items fixed"),
];
const TIMEOUT: Duration = Duration::from_secs(10);

#[allow(
    clippy::print_stdout,
    reason = "progress and the summary are the command's output"
)]
fn say(line: &str) {
    println!("{line}");
}

/// The demo's store sums samples per second (production: per 10 s), so
/// that detection can compare short windows.
const BUCKET_MS: i64 = 1_000;

/// Detection over 3-second windows and fewer of them than in production,
/// so each deploy needs half a minute, not ten. Only the windows change:
/// every threshold (minimum effect, q-value, filters) is the default.
fn detect_settings() -> DetectSettings {
    DetectSettings {
        window_ms: 3 * BUCKET_MS,
        min_windows: 6,
        ..DetectSettings::default()
    }
}

/// Runs the demo; exit code 0 when the injected regression was found
/// (and, with `exit`, after the summary), 1 when it was not.
pub fn run(options: DemoArgs) -> anyhow::Result<ExitCode> {
    let (data, _temp) = match &options.data {
        Some(dir) => (dir.clone(), None),
        None => {
            let temp = tempfile::Builder::new()
                .prefix("flameshift-demo-")
                .tempdir()
                .context("creating a data directory")?;
            (temp.path().to_owned(), Some(temp))
        }
    };
    let mut config = ServeConfig::new();
    config.limits.bucket_ms = BUCKET_MS;
    let location = options
        .place
        .store
        .clone()
        .unwrap_or_else(|| format!("dir://{}", data.display()));
    // The demo feeds many uploads in a row: insert them without waiting.
    let backend_options = crate::serve::BackendOptions {
        retention: Retention::Forever,
        insert_interval: Duration::ZERO,
    };
    let backend = crate::serve::open_backend(&location, &backend_options, &config.limits)?;
    config.listen = options.place.listen;
    config.detect = detect_settings();
    config.detect_interval = Duration::from_secs(3600);
    config.ui = Some(flameshift_dashboard::router());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = runtime.spawn(server::serve(
        config,
        backend.store,
        backend.regressions,
        async move {
            tokio::select! {
                _ = stop_rx => {}
                _ = crate::signals::shutdown_signal() => {}
            }
        },
        move |running| {
            let _ = ready_tx.send(running.addr);
        },
    ));
    let addr = match ready_rx.recv_timeout(Duration::from_secs(30)) {
        Ok(addr) => addr,
        Err(_) => {
            let why = runtime
                .block_on(server)
                .map_err(|e| anyhow::anyhow!("{e}"))
                .and_then(|r| r.map_err(anyhow::Error::from));
            bail!("the analyzer did not start on {}: {why:?}", options.place.listen);
        }
    };
    let url = format!("http://{addr}");
    say(&format!(
        "flameshift demo: analyzer and dashboard on {url}/ (data in {location})"
    ));
    let exe = std::env::current_exe().context("finding the flameshift binary")?;
    let analyzer = Analyzer::new(
        &url,
        None,
        &ClientOptions {
            timeout: TIMEOUT,
            ..ClientOptions::default()
        },
    )?;
    // GET /feed's known load in v2: a third of what was served (each
    // client cycles through the three endpoints), over the deploy's time.
    let mut feed_rate_v2 = None;
    for (deploy, what) in DEPLOYS {
        let what = what.replace("+15%", &format!("+{}%", options.rise));
        say(&format!("[{deploy}] deploying: {what}"));
        let event = serde_json::json!({"service": SERVICE, "deploy": deploy, "commit": format!("demo-{deploy}"), "author": "flameshift demo", "message": what});
        analyzer.post_deploy(&event).context("posting the deploy event")?;
        // v3 only has to show the fix (the regression resolved): half as long.
        let seconds = match deploy {
            "v3" => options.deploy_seconds.div_ceil(2),
            _ => options.deploy_seconds,
        };
        let served = run_deploy(&exe, &url, deploy, options.rise, Duration::from_secs(seconds))?;
        if deploy == "v2" {
            feed_rate_v2 = Some(served as f64 / 3.0 / seconds as f64);
        }
        say(&format!(
            "[{deploy}] served {served} requests; the agent shipped its last profile"
        ));
    }
    say("detecting regressions between deploys…");
    analyzer
        .detect(Some(SERVICE))
        .context("asking the analyzer to detect")?;
    let query = RegressionQuery {
        service: Some(SERVICE.to_owned()),
        ..RegressionQuery::default()
    };
    let found: Listing<serde_json::Value> =
        analyzer.regressions(&query).context("reading the regressions")?;
    let listing = serde_json::json!({ "regressions": found.regressions });
    let summary = Summary::of(&listing);
    summary.print(&url, feed_rate_v2);
    let code = if summary.regression_found() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    };
    // Without --exit the sender stays alive (dropping it would stop the
    // server) and Ctrl-C ends the serving.
    let keep_serving = if options.exit {
        let _ = stop_tx.send(());
        None
    } else {
        say("serving the dashboard until Ctrl-C");
        Some(stop_tx)
    };
    runtime
        .block_on(server)
        .context("the analyzer task")?
        .context("the analyzer")?;
    drop(keep_serving);
    Ok(code)
}

/// Starts `demo-service` for `deploy`, loads it for `duration`, stops it
/// (SIGTERM: the agent ships what it has) and returns the requests served.
fn run_deploy(
    exe: &std::path::Path,
    url: &str,
    deploy: &str,
    rise: u64,
    duration: Duration,
) -> anyhow::Result<u64> {
    let mut child = Command::new(exe)
        .args(["demo-service", "--listen", "127.0.0.1:0", "--service", SERVICE])
        .args(["--deploy", deploy, "--analyzer", url])
        .args(["--v2-rise", &rise.to_string()])
        .env("FLAMESHIFT_UPLOAD_INTERVAL", "1")
        // ~500 samples of score_items per 3 s window: its cost per
        // request is known to about ±5%, so a 15% rise separates the
        // windows (the demo's runs: BENCHMARKS.md, "The demo").
        .env("FLAMESHIFT_FREQUENCY", "999")
        .env("FLAMESHIFT_HOST", "demo-host")
        .stderr(Stdio::piped())
        .spawn()
        .context("starting demo-service")?;
    let app = match service_address(&mut child) {
        Ok(app) => app,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    let served = load(&app, duration);
    stop(&mut child)?;
    served
}

/// Reads the child's `listening on` line; keeps draining its stderr.
fn service_address(child: &mut Child) -> anyhow::Result<String> {
    use std::io::BufRead;
    let stderr = child.stderr.take().context("demo-service stderr")?;
    let mut lines = std::io::BufReader::new(stderr).lines();
    let prefix = "flameshift demo-service: listening on ";
    for line in lines.by_ref() {
        let line = line.context("reading demo-service output")?;
        if let Some(addr) = line.strip_prefix(prefix) {
            std::thread::spawn(move || for _ in lines {});
            return Ok(addr.trim().to_owned());
        }
        tracing::debug!(line, "demo-service");
    }
    bail!("demo-service exited before listening")
}

fn stop(child: &mut Child) -> anyhow::Result<()> {
    let pid = child.id().to_string();
    let killed = Command::new("kill").arg(&pid).status().context("running kill")?;
    if !killed.success() {
        bail!("could not stop demo-service (pid {pid})");
    }
    let status = child.wait().context("waiting for demo-service")?;
    if !status.success() {
        bail!("demo-service exited with {status}");
    }
    Ok(())
}

/// The regression's price against the demo's known load of GET /feed
/// (`feed_rate` requests a second on average): the busiest window's rate
/// is at least the mean and at most twice it, and the core-hours a day
/// are the shift per request times that mean load (within 30%: windows at
/// a deploy's edges are partly empty).
fn capacity_check(r: &serde_json::Value, feed_rate: Option<f64>) -> Option<String> {
    let c = &r["capacity"];
    let (peak, cores, hours) = (
        c["peak_rps"].as_f64()?,
        c["cores_at_peak"].as_f64()?,
        c["core_hours_per_day"].as_f64()?,
    );
    let shift_ns = r["change"]["mean"].as_f64()?;
    let rate = feed_rate?;
    let expected_hours = shift_ns * rate / 1e9 * 24.0;
    let ok = peak >= rate * 0.9 && peak <= rate * 2.0 && (hours / expected_hours - 1.0).abs() <= 0.3;
    Some(format!(
        "  priced: {cores:+.4} cores at peak ({peak:.1} requests/s), {hours:.3} core-hours a day; the demo sent GET /feed {rate:.1} requests/s, so {expected_hours:.3} core-hours a day: capacity check {}",
        if ok { "ok" } else { "FAILED" }
    ))
}

/// Two loopback clients, each cycling through the three endpoints, for
/// `duration`, and resting after each cycle as long as it took: the
/// service gets about one core of two, so the machine is never
/// oversubscribed (an oversubscribed CPU delays cpu-clock signals and
/// loses samples, which is noise the demo does not need). A progress line
/// every few seconds.
fn load(app: &str, duration: Duration) -> anyhow::Result<u64> {
    let served = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let until = Instant::now() + duration;
    let workers: Vec<_> = (0..2u64)
        .map(|worker| {
            let (app, served, failed) = (app.to_owned(), served.clone(), failed.clone());
            std::thread::spawn(move || -> anyhow::Result<()> {
                let mut i = worker;
                while Instant::now() < until && !failed.load(Ordering::Relaxed) {
                    let cycle = Instant::now();
                    for (method, path) in [
                        ("GET", "/feed".to_owned()),
                        ("GET", format!("/users/{i}")),
                        ("POST", "/orders".to_owned()),
                    ] {
                        let url = format!("{app}{path}");
                        let answer = match method {
                            "GET" => http::get(&url, &[], TIMEOUT),
                            _ => http::post(&url, &[], b"", TIMEOUT),
                        };
                        match answer {
                            Ok(r) if r.status == 200 => {
                                served.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(r) => {
                                failed.store(true, Ordering::Relaxed);
                                bail!("{method} {path}: status {}", r.status);
                            }
                            Err(e) => {
                                failed.store(true, Ordering::Relaxed);
                                bail!("{method} {path}: {e}");
                            }
                        }
                    }
                    i += 2;
                    std::thread::sleep(cycle.elapsed());
                }
                Ok(())
            })
        })
        .collect();
    let started = Instant::now();
    while Instant::now() < until && !failed.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200).min(until.saturating_duration_since(Instant::now())));
        let elapsed = started.elapsed().as_secs();
        if elapsed > 0 && elapsed.is_multiple_of(5) && started.elapsed().subsec_millis() < 200 {
            say(&format!(
                "      {elapsed:>3} s of {} s, {} requests",
                duration.as_secs(),
                served.load(Ordering::Relaxed)
            ));
        }
    }
    for worker in workers {
        worker
            .join()
            .map_err(|_| anyhow::anyhow!("a load generator thread panicked"))??;
    }
    Ok(served.load(Ordering::Relaxed))
}

/// What detection found, against what was injected.
struct Summary {
    regression: Option<serde_json::Value>,
    refactor_flagged: Vec<String>,
    others: Vec<String>,
}

impl Summary {
    fn of(listing: &serde_json::Value) -> Summary {
        let all = listing["regressions"].as_array().cloned().unwrap_or_default();
        let function = |r: &serde_json::Value| {
            r["cause"]
                .as_str()
                .or(r["function"].as_str())
                .unwrap_or("(endpoint total)")
                .to_owned()
        };
        // The function, or the one below that explains an inclusive rise.
        let is = |r: &serde_json::Value, name: &str| {
            function(r).ends_with(name) || r["function"].as_str().is_some_and(|f| f.ends_with(name))
        };
        let regression = all
            .iter()
            .find(|r| is(r, "score_items") && r["endpoint"] == "GET /feed" && r["deploy_after"] == "v2")
            .cloned();
        let refactor_flagged = all
            .iter()
            .filter(|r| is(r, "parse_order") || is(r, "validate_order"))
            .map(|r| format!("{} in {}", function(r), r["deploy_after"].as_str().unwrap_or("?")))
            .collect();
        let others = all
            .iter()
            .filter(|r| !(is(r, "score_items") || is(r, "parse_order") || is(r, "validate_order")))
            .map(|r| {
                format!(
                    "{} ({}) in {}",
                    function(r),
                    r["endpoint"].as_str().unwrap_or(""),
                    r["deploy_after"].as_str().unwrap_or("?")
                )
            })
            .collect();
        Summary {
            regression,
            refactor_flagged,
            others,
        }
    }

    /// The injected regression was found and the refactor was not flagged.
    fn regression_found(&self) -> bool {
        self.regression.is_some() && self.refactor_flagged.is_empty()
    }

    fn print(&self, url: &str, feed_rate: Option<f64>) {
        say("");
        say("== summary");
        match &self.regression {
            Some(r) => {
                let pct = |v: &serde_json::Value| {
                    v.as_f64()
                        .map_or("?".to_owned(), |x| format!("{:+.1}%", x * 100.0))
                };
                let rel = &r["relative"];
                say(&format!(
                    "regression found: {} on {} in deploy {} (vs {}): {} per request (95% interval {} … {}), q = {:.1e}, state {}",
                    r["function"].as_str().unwrap_or("?"),
                    r["endpoint"].as_str().unwrap_or("?"),
                    r["deploy_after"].as_str().unwrap_or("?"),
                    r["deploy_before"].as_str().unwrap_or("?"),
                    pct(&rel["mean"]),
                    pct(&rel["low"]),
                    pct(&rel["high"]),
                    r["q_value"].as_f64().unwrap_or(f64::NAN),
                    r["state"].as_str().unwrap_or("?"),
                ));
                if let Some(line) = capacity_check(r, feed_rate) {
                    say(&line);
                }
                say(&format!(
                    "  open it: {url}/#/regression/{}",
                    r["id"].as_str().unwrap_or("")
                ));
            }
            None => say("regression NOT found: score_items on GET /feed in v2 was injected but not detected"),
        }
        if self.refactor_flagged.is_empty() {
            say("refactor not flagged: parse_order → validate_order in v2 moved cost without adding any");
        } else {
            say(&format!(
                "refactor FLAGGED (a false alarm): {}",
                self.refactor_flagged.join(", ")
            ));
        }
        if !self.others.is_empty() {
            say(&format!("also reported: {}", self.others.join("; ")));
        }
        say(&format!("dashboard: {url}/#/service/{SERVICE}"));
    }
}
