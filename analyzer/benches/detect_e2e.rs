//! Detection end to end: the fleet simulator's uploads (a pprof profile
//! and request statistics per host per minute) go to a real
//! `flameshift serve` over HTTP; `POST /api/v1/detect` runs detection and
//! `GET /api/v1/regressions` is scored against the injected truth.
//!
//! `cargo bench -p flameshift-analyzer --bench detect_e2e`
//! (`FS_SEEDS`, `FS_DEPLOYS`, `FS_HOSTS` change the fleet).

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    reason = "a benchmark prints its results and fails loudly"
)]

use std::time::Instant;

use flameshift_analyzer::server::ServeConfig;
use flameshift_detect::sim::{score, Fleet, FleetConfig, Score};
use flameshift_testkit::{disk, get, post, reported_regressions, upload_fleet, FleetUpload, TestServer};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn run_fleet(fleet: &Fleet) -> (Score, f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServeConfig::new();
    config.listen = "127.0.0.1:0".parse().unwrap();
    let server = TestServer::start(config, disk(dir.path())).await;
    let url = server.url.clone();
    let started = Instant::now();
    upload_fleet(&url, fleet, &FleetUpload::default()).await;
    let upload_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let (status, run) = post(&format!("{url}/api/v1/detect"), Vec::new()).await;
    let detect_seconds = started.elapsed().as_secs_f64();
    assert_eq!(status, 200, "{run}");
    let deploys = fleet.config().deploys;
    assert_eq!(run["comparisons"].as_u64(), Some(deploys as u64 - 1), "{run}");
    let (_, listing) = get(&format!("{url}/api/v1/regressions")).await;
    let reported = reported_regressions(&listing);
    server.stop().await;
    (
        score(fleet.plans(), &reported, 1..deploys),
        upload_seconds,
        detect_seconds,
    )
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let seeds = env("FS_SEEDS", 2);
    let mut total = Score::default();
    let (mut uploads, mut detect) = (0.0, 0.0);
    for seed in 1..=seeds as u64 {
        let now = flameshift_testkit::now_ms();
        let deploys = env("FS_DEPLOYS", 12);
        let windows = 30;
        let fleet = Fleet::new(FleetConfig {
            seed,
            deploys,
            hosts: env("FS_HOSTS", 4),
            windows_per_deploy: windows,
            start_ms: now - (deploys * windows) as i64 * 60_000 - 3_600_000,
            ..FleetConfig::default()
        });
        let (s, u, d) = runtime.block_on(run_fleet(&fleet));
        uploads += u;
        detect += d;
        total.add(&s);
    }
    println!("uploads {uploads:.1} s, detection (POST /api/v1/detect) {detect:.2} s");
    println!(
        "precision {:.3}  recall {:.3}  F1 {:.3}  (tp {}, fp {}, fn {}); recall ≥5%: {:.3}, ≥2%: {:.3}; decoy-only deploys without an alert {} / {}",
        total.precision(),
        total.recall(),
        total.f1(),
        total.true_positives,
        total.false_positives,
        total.false_negatives,
        total.recall_at_least(0.05),
        total.recall_at_least(0.02),
        total.decoy_only_deploys - total.decoy_only_alerted,
        total.decoy_only_deploys
    );
    for (size, (found, all)) in &total.by_size {
        println!("| {size}% | {found} / {all} |");
    }
}
