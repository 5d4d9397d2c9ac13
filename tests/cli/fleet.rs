//! Several `flameshift serve --store clickhouse://` processes over one
//! real ClickHouse server: uploads survive ClickHouse being killed and
//! started again and a node being killed, each kept exactly once;
//! detection runs on one node at a time and each webhook fires once.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use flameshift_analyzer::store::Endpoint;
use flameshift_client::http;

use super::clickhouse_server::ClickHouseServer;
use super::serve::{
    address, deploy_samples, profile_body, regressing_fleet, upload_window, webhook_receiver, KillOnDrop,
};

fn store_url(endpoint: &Endpoint) -> String {
    format!("clickhouse://{}/{}", endpoint.address, endpoint.database)
}

/// Starts an analyzer node over `store`; returns it and its URL.
fn start_node(store: &str, extra: &[&str]) -> (KillOnDrop, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flameshift"))
        .args(["serve", "--listen", "127.0.0.1:0", "--store", store])
        .args(["--insert-interval", "100ms"])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (url, lines) = address(&mut child, "flameshift: listening on ");
    thread::spawn(move || for _ in lines {});
    (KillOnDrop(child), url)
}

/// What the uploaders met on their way.
#[derive(Default)]
struct Seen {
    /// 503 answers, and how many of them carried `Retry-After`.
    unavailable: AtomicUsize,
    with_retry_after: AtomicUsize,
    /// Attempts that found no node (killed).
    refused: AtomicUsize,
}

/// Sends one upload until a node takes it, like an agent behind a load
/// balancer: the same `Idempotency-Key` every attempt, the next node after
/// a failure. Panics if no node takes it within a minute.
fn deliver(nodes: &Mutex<Vec<String>>, target: &str, body: &[u8], seen: &Seen) {
    let key = flameshift_client::upload::idempotency_key();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let started = Instant::now();
    for attempt in 0.. {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no node took the upload"
        );
        let url = {
            let nodes = nodes.lock().unwrap();
            format!("{}{target}", nodes[attempt % nodes.len()])
        };
        match agent.post(&url).header("Idempotency-Key", &key).send(body) {
            Ok(response) if response.status() == 200 => return,
            Ok(response) if response.status() == 503 => {
                seen.unavailable.fetch_add(1, Ordering::Relaxed);
                if response.headers().contains_key("retry-after") {
                    seen.with_retry_after.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(mut response) => panic!(
                "refused: {} {}",
                response.status(),
                response.body_mut().read_to_string().unwrap_or_default()
            ),
            Err(_) => {
                seen.refused.fetch_add(1, Ordering::Relaxed);
            }
        }
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn clickhouse_and_a_node_killed_mid_stream_lose_nothing_and_keep_each_upload_once() {
    let mut clickhouse = ClickHouseServer::start();
    let endpoint = clickhouse.fresh_database();
    let store = store_url(&endpoint);
    let (mut first, first_url) = start_node(&store, &[]);
    let (_second, second_url) = start_node(&store, &[]);
    let nodes = Arc::new(Mutex::new(vec![first_url, second_url.clone()]));
    let seen = Arc::new(Seen::default());
    let stop = Arc::new(AtomicBool::new(false));
    let uploaders: Vec<_> = (0..4)
        .map(|n| {
            let (nodes, seen, stop) = (nodes.clone(), seen.clone(), stop.clone());
            thread::spawn(move || {
                let mut delivered = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    let body = profile_body(&format!("f{}", delivered % 50));
                    let target = format!("/api/v1/profiles?service=crash&deploy=t{n}");
                    deliver(&nodes, &target, &body, &seen);
                    delivered += 1;
                }
                delivered
            })
        })
        .collect();
    let phase = || thread::sleep(Duration::from_millis(1500));
    phase();
    clickhouse.kill();
    phase();
    clickhouse.restart();
    phase();
    first.kill().unwrap(); // SIGKILL, mid-stream
    first.wait().unwrap();
    phase();
    stop.store(true, Ordering::Relaxed);
    let delivered: Vec<i64> = uploaders.into_iter().map(|t| t.join().unwrap()).collect();

    assert!(
        seen.unavailable.load(Ordering::Relaxed) > 0,
        "uploads met ClickHouse down"
    );
    assert_eq!(
        seen.with_retry_after.load(Ordering::Relaxed),
        seen.unavailable.load(Ordering::Relaxed),
        "every 503 says when to come back"
    );
    assert!(
        seen.refused.load(Ordering::Relaxed) > 0,
        "uploads met the killed node"
    );
    let stored = deploy_samples(&second_url, "crash");
    for (n, delivered) in delivered.iter().enumerate() {
        let samples = stored
            .iter()
            .find(|(d, _)| *d == format!("t{n}"))
            .map_or(0, |(_, s)| *s);
        // Each upload is 3 samples: every acknowledged one, exactly once.
        assert_eq!(samples, delivered * 3, "t{n}: {delivered} uploads acknowledged");
    }
}

#[test]
fn two_nodes_detect_once_fire_each_webhook_once_and_survive_the_leaders_death() {
    let clickhouse = ClickHouseServer::start();
    let store = store_url(&clickhouse.fresh_database());
    let (hook, bodies) = webhook_receiver(0);
    let node_args = ["--webhook", &hook, "--detect-interval", "1s"];
    let (mut leader, leader_url) = start_node(&store, &node_args);
    thread::sleep(Duration::from_millis(50)); // started later: the leader stays
    let (_other, other_url) = start_node(&store, &node_args);
    let fleet = regressing_fleet(5, 3);
    let truth = fleet.truth();
    assert_eq!(truth.len(), 2, "one regression in each later deploy: {truth:?}");
    let upload_deploy = |d: usize, nodes: &[&str]| {
        for w in 0..12 {
            upload_window(nodes[w % nodes.len()], &fleet, d, w);
        }
    };
    let wait_for_hooks = |count: usize| {
        let started = Instant::now();
        while bodies.lock().unwrap().len() < count {
            assert!(started.elapsed() < Duration::from_secs(60), "no webhook");
            thread::sleep(Duration::from_millis(100));
        }
        // Several more detection runs on both nodes: nothing more fires.
        thread::sleep(Duration::from_secs(4));
        bodies.lock().unwrap().clone()
    };
    let regressions = |url: &str| -> serde_json::Value {
        let response = http::get(&format!("{url}/api/v1/regressions"), &[], Duration::from_secs(30)).unwrap();
        assert_eq!(response.status, 200, "{}", response.text());
        serde_json::from_slice(&response.body).unwrap()
    };

    upload_deploy(0, &[&leader_url, &other_url]);
    upload_deploy(1, &[&leader_url, &other_url]);
    let fired = wait_for_hooks(1);
    assert_eq!(fired.len(), 1, "one regression, one webhook: {fired:?}");
    assert!(fired[0].contains(&truth[0].function), "{}", fired[0]);
    assert_eq!(
        regressions(&leader_url),
        regressions(&other_url),
        "both nodes list the same"
    );

    // The leader dies; the other takes over after the lease's time to
    // live and finds the next deploy's regression.
    leader.kill().unwrap();
    leader.wait().unwrap();
    upload_deploy(2, &[&other_url]);
    let fired = wait_for_hooks(2);
    assert_eq!(fired.len(), 2, "each regression's webhook fired once: {fired:?}");
    assert!(fired[1].contains(&truth[1].function), "{}", fired[1]);
    let listed = regressions(&other_url);
    assert_eq!(
        listed["regressions"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );
}
