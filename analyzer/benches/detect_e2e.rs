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

use flameshift_analyzer::profile::format;
use flameshift_analyzer::server::{self, ServeConfig};
use flameshift_analyzer::store::StoreConfig;
use flameshift_detect::sim::{score, Fleet, FleetConfig, Score};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn run_fleet(fleet: &Fleet) -> (Score, f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let backend = flameshift_analyzer::store::Backend::disk(StoreConfig::new(dir.path())).unwrap();
    let mut config = ServeConfig::new();
    config.listen = "127.0.0.1:0".parse().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(server::serve(
        config,
        backend.store,
        backend.regressions,
        async {
            let _ = stop_rx.await;
        },
        move |r| {
            let _ = ready_tx.send(r.addr);
        },
    ));
    let url = format!("http://{}", ready_rx.await.unwrap());
    let client = {
        #[allow(deprecated, reason = "ring, as flameshift's own client uses")]
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::new()
    };
    let c = fleet.config().clone();
    let started = Instant::now();
    for d in 0..c.deploys {
        for w in 0..c.windows_per_deploy {
            let mut pending = Vec::new();
            for h in 0..c.hosts {
                let window = fleet.host_window(d, w, h);
                let mut body = Vec::new();
                format::pprof::write(&window.profile(), &mut body).unwrap();
                let profile_url = format!(
                    "{url}/api/v1/profiles?service={}&deploy={}&host={}",
                    c.service, window.deploy, window.host
                );
                let requests = serde_json::to_vec(&window.requests_body(&c.service)).unwrap();
                let client = client.clone();
                let requests_url = format!("{url}/api/v1/requests");
                pending.push(tokio::spawn(async move {
                    let a = client.post(profile_url).body(body).send().await.unwrap();
                    assert!(a.status().is_success(), "{}", a.text().await.unwrap());
                    let b = client.post(requests_url).body(requests).send().await.unwrap();
                    assert!(b.status().is_success(), "{}", b.text().await.unwrap());
                }));
            }
            for p in pending {
                p.await.unwrap();
            }
        }
    }
    let upload_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let run: serde_json::Value = client
        .post(format!("{url}/api/v1/detect"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let detect_seconds = started.elapsed().as_secs_f64();
    assert_eq!(run["comparisons"].as_u64(), Some(c.deploys as u64 - 1), "{run}");
    let listing: serde_json::Value = client
        .get(format!("{url}/api/v1/regressions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reported: Vec<(String, String)> = listing["regressions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let function = r["cause"]
                .as_str()
                .or(r["function"].as_str())
                .unwrap_or("(total)");
            (
                r["deploy_after"].as_str().unwrap().to_owned(),
                function.to_owned(),
            )
        })
        .collect();
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
    (
        score(fleet.plans(), &reported, 1..c.deploys),
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
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
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
