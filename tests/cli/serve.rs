//! `flameshift serve` as a process: kill -9 during continuous uploads
//! loses nothing acknowledged; SIGTERM flushes and exits 0.
//!
//! Length: over 600 lines with its tests: one test per behaviour of `flameshift serve`, each starting its own real server.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use flameshift_client::http;
use flameshift_profile::{format, LabelSetId, Profile, SampleType};

pub(crate) use crate::serve_process::{address, start_serve, KillOnDrop};

pub(crate) fn profile_body(leaf: &str) -> Vec<u8> {
    let mut p = Profile::new(vec![
        SampleType::new("samples", "count"),
        SampleType::new("cpu", "nanoseconds"),
    ]);
    let stack = p.stack_from_names(["main", leaf]);
    p.push_sample(stack, LabelSetId::EMPTY, &[3, 30]);
    let mut out = Vec::new();
    format::pprof::write(&p, &mut out).unwrap();
    out
}

/// Samples stored per deploy of `service`, as the analyzer at `url` answers.
pub(crate) fn deploy_samples(url: &str, service: &str) -> Vec<(String, i64)> {
    let response = http::get(
        &format!("{url}/api/v1/services/{service}/deploys"),
        &[],
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    body["deploys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["deploy"].as_str().unwrap().to_owned(),
                d["samples"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn kill_9_during_uploads_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    // Frequent flushes, so that the kill can land in the middle of one.
    let (mut server, url) = start_serve(dir.path(), &["--flush-interval", "100ms"]);
    let stop = Arc::new(AtomicBool::new(false));
    let uploaders: Vec<_> = (0..4)
        .map(|n| {
            let (url, stop) = (url.clone(), stop.clone());
            thread::spawn(move || {
                let mut acknowledged = 0i64;
                let target = format!("{url}/api/v1/profiles?service=crash&deploy=t{n}");
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let body = profile_body(&format!("f{}", i % 50));
                    match http::post(&target, &[], &body, Duration::from_secs(10)) {
                        Ok(r) if r.status == 200 => acknowledged += 1,
                        Ok(r) => panic!("refused: {} {}", r.status, r.text()),
                        Err(_) => break, // the server is gone
                    }
                }
                acknowledged
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(1500));
    server.kill().unwrap(); // SIGKILL
    server.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    let acknowledged: Vec<i64> = uploaders.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(acknowledged.iter().all(|&n| n > 0), "{acknowledged:?}");

    let (mut server, url) = start_serve(dir.path(), &[]);
    let stored = deploy_samples(&url, "crash");
    for (n, acked) in acknowledged.iter().enumerate() {
        let samples = stored
            .iter()
            .find(|(d, _)| *d == format!("t{n}"))
            .map(|(_, s)| *s)
            .unwrap_or(0);
        // Each upload is 3 samples; at most one more upload per thread
        // was written but not yet acknowledged when the kill came.
        assert!(
            samples >= acked * 3 && samples <= (acked + 1) * 3,
            "t{n}: {acked} acknowledged uploads but {samples} samples stored"
        );
    }
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn sigterm_flushes_and_exits_zero_and_the_token_comes_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_flameshift"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--flush-interval",
            "1h",
            "--data",
        ])
        .arg(dir.path())
        .env("FLAMESHIFT_TOKEN", "tok")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (url, lines) = address(&mut child, "flameshift: listening on ");
    let target = format!("{url}/api/v1/profiles?service=s&deploy=v1");
    let body = profile_body("leaf");
    assert_eq!(
        http::post(&target, &[], &body, Duration::from_secs(10))
            .unwrap()
            .status,
        401
    );
    let auth = [("Authorization", "Bearer tok")];
    assert_eq!(
        http::post(&target, &auth, &body, Duration::from_secs(10))
            .unwrap()
            .status,
        200
    );
    // kill(1) sends SIGTERM.
    let status = Command::new("kill").arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success(), "graceful shutdown exits 0");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(!rest.iter().any(|l| l.contains("ERROR")), "{rest:?}");
    let wal_bytes: u64 = std::fs::read_dir(dir.path().join("wal"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(wal_bytes, 0, "everything was flushed to Parquet");
    assert!(dir.path().join("tables/samples/s").exists());
}

#[test]
fn record_ships_to_the_analyzer_and_keeps_the_profile_when_it_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, url) = start_serve(&dir.path().join("data"), &[]);
    let record = |analyzer: &str| {
        Command::new(env!("CARGO_BIN_EXE_flameshift"))
            .current_dir(dir.path())
            .args([
                "record",
                "-F",
                "499",
                "--analyzer",
                analyzer,
                "--service",
                "bench",
                "--deploy",
                "abc123",
            ])
            .args([
                "--host",
                "ci-1",
                "--",
                "sh",
                "-c",
                "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done",
            ])
            .output()
            .unwrap()
    };
    let out = record(&url);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let top = http::get(
        &format!("{url}/api/v1/functions?service=bench&deploy=abc123"),
        &[],
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(top.status, 200, "{}", top.text());
    let top: serde_json::Value = serde_json::from_slice(&top.body).unwrap();
    assert!(top["samples"].as_i64().unwrap() > 10, "{top}");
    assert_eq!(top["unit"], "cpu_ns", "cpu-clock on this PMU-less machine");

    // Without --analyzer, a named service and deploy ship to FLAMESHIFT_ANALYZER.
    let out = Command::new(env!("CARGO_BIN_EXE_flameshift"))
        .current_dir(dir.path())
        .env("FLAMESHIFT_ANALYZER", &url)
        .args([
            "record",
            "-F",
            "499",
            "--service",
            "from-env",
            "--deploy",
            "v1",
            "--",
        ])
        .args(["sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let top = http::get(
        &format!("{url}/api/v1/functions?service=from-env&deploy=v1"),
        &[],
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(top.status, 200, "{}", top.text());
    assert!(!dir.path().join("profile.pb.gz").exists(), "shipped, not written");
    server.kill().unwrap();
    server.wait().unwrap();

    // The analyzer is gone: exit 2, and the profile is kept on disk.
    let out = record(&url);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let kept = stderr
        .split("the profile is kept in ")
        .nth(1)
        .expect("names the kept file")
        .trim();
    let kept = dir.path().join(kept);
    let profile = format::read_path(&kept, &Default::default()).unwrap();
    assert!(profile.total(0) > 10);

    // --analyzer without --service/--deploy is a usage error.
    let usage = Command::new(env!("CARGO_BIN_EXE_flameshift"))
        .args(["record", "--analyzer", "http://127.0.0.1:1", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn the_agent_in_a_service_reports_requests_and_functions_per_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, url) = start_serve(&dir.path().join("data"), &[]);
    let mut service = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_flameshift"))
            .args([
                "demo-service",
                "--listen",
                "127.0.0.1:0",
                "--service",
                "shop",
                "--deploy",
                "v1",
            ])
            .args(["--analyzer", &url])
            .env("FLAMESHIFT_UPLOAD_INTERVAL", "1")
            // ~0.2 s of CPU in all (debug build): ~200 samples at 999 Hz.
            .env("FLAMESHIFT_FREQUENCY", "999")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (app, lines) = address(&mut service, "flameshift demo-service: listening on ");
    thread::spawn(move || for _ in lines {});
    let timeout = Duration::from_secs(10);
    for i in 0..300 {
        assert_eq!(
            http::get(&format!("{app}/feed"), &[], timeout).unwrap().status,
            200
        );
        assert_eq!(
            http::get(&format!("{app}/users/{i}"), &[], timeout)
                .unwrap()
                .status,
            200
        );
    }
    for _ in 0..100 {
        assert_eq!(
            http::post(&format!("{app}/orders"), &[], b"", timeout)
                .unwrap()
                .status,
            200
        );
    }
    // SIGTERM: the agent ships its last interval on the way out.
    assert!(Command::new("kill")
        .arg(service.id().to_string())
        .status()
        .unwrap()
        .success());
    assert!(service.wait().unwrap().success());

    let get = |path: &str| -> serde_json::Value {
        let r = http::get(&format!("{url}{path}"), &[], timeout).unwrap();
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        serde_json::from_slice(&r.body).unwrap()
    };
    let series = get("/api/v1/series?service=shop&endpoint=GET%20%2Ffeed&window=1d");
    let requests: i64 = series["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["requests"].as_i64().unwrap())
        .sum();
    assert_eq!(requests, 300, "requests are counted exactly: {series}");
    assert!(series["points"][0]["measured_per_request"].as_f64().unwrap() > 0.0);
    let orders = get("/api/v1/series?service=shop&endpoint=POST%20%2Forders&window=1d");
    assert_eq!(orders["points"][0]["requests"], 100);
    // Measured cost per request keeps the configured order: feed (300
    // units) > orders (200) > users (40).
    let users = get("/api/v1/series?service=shop&endpoint=GET%20%2Fusers%2F%7Bid%7D&window=1d");
    let per = |s: &serde_json::Value| s["points"][0]["measured_per_request"].as_f64().unwrap();
    assert!(
        per(&series) > per(&orders) && per(&orders) > per(&users),
        "{series} {orders} {users}"
    );
    let feed =
        get("/api/v1/functions?service=shop&deploy=v1&endpoint=GET%20%2Ffeed&order=inclusive&limit=200");
    let names: Vec<&str> = feed["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(names.iter().any(|n| n.ends_with("score_items")), "{names:?}");
    assert!(
        !names.iter().any(|n| n.ends_with("price_order")),
        "another endpoint's work is not labelled GET /feed"
    );
    assert!(feed["functions"][0]["inclusive_per_request"].as_f64().unwrap() > 0.0);
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn demo_service_output_has_endpoint_labels_and_the_configured_proportions() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("p.pb.gz");
    let mut service = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_flameshift"))
            // Ten times the work: each function runs for milliseconds, not a
            // fraction of the 1 ms sampling period (see the note below).
            .args([
                "demo-service",
                "--listen",
                "127.0.0.1:0",
                "--scale",
                "10",
                "--output",
            ])
            .arg(&output)
            .env("FLAMESHIFT_UPLOAD_INTERVAL", "1")
            .env("FLAMESHIFT_FREQUENCY", "999")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (app, lines) = address(&mut service, "flameshift demo-service: listening on ");
    thread::spawn(move || for _ in lines {});
    let timeout = Duration::from_secs(10);
    for _ in 0..200 {
        assert_eq!(
            http::get(&format!("{app}/feed"), &[], timeout).unwrap().status,
            200
        );
        assert_eq!(
            http::post(&format!("{app}/orders"), &[], b"", timeout)
                .unwrap()
                .status,
            200
        );
    }
    assert!(Command::new("kill")
        .arg(service.id().to_string())
        .status()
        .unwrap()
        .success());
    assert!(service.wait().unwrap().success());
    let profile = format::read_path(&output, &Default::default()).unwrap();
    // Inclusive cost per function among samples labelled with `endpoint`.
    let cost = |endpoint: &str, function: &str| -> i64 {
        profile
            .iter_samples()
            .filter(|(s, _)| {
                profile.label_set(s.labels).iter().any(|l| {
                    profile.str(l.key) == "endpoint" && profile.label_value_text(l.value) == endpoint
                })
            })
            .filter(|(s, _)| {
                profile
                    .stack(s.stack)
                    .iter()
                    .any(|&f| profile.frame_name(f).ends_with(function))
            })
            .map(|(_, v)| v[1])
            .sum()
    };
    let ratio = |a: i64, b: i64| a as f64 / b.max(1) as f64;
    // Configured: score_items 200, render_feed 100; price_order 100, parse_order 60.
    // (At --scale 1 in the debug build, render_feed runs ~0.15 ms and the
    // agent gave 2.6–2.8 here where perf gave 2.1: the signal-based
    // sampler's attribution of sub-period functions is not exact yet.)
    let feed = ratio(cost("GET /feed", "score_items"), cost("GET /feed", "render_feed"));
    assert!(
        (feed - 2.0).abs() < 0.5,
        "score_items : render_feed = {feed:.2}, configured 2"
    );
    let orders = ratio(
        cost("POST /orders", "price_order"),
        cost("POST /orders", "parse_order"),
    );
    assert!(
        (orders - 100.0 / 60.0).abs() < 0.45,
        "price_order : parse_order = {orders:.2}, configured 1.67"
    );
    assert_eq!(
        cost("GET /feed", "price_order"),
        0,
        "no order work under GET /feed"
    );
    // Each work function spends its cost in its own frame (the leaf), not
    // in a helper or an inlined std function: detection names the leaf.
    let self_cost = |function: &str| -> i64 {
        profile
            .iter_samples()
            .filter(|(s, _)| {
                profile
                    .stack(s.stack)
                    .last()
                    .is_some_and(|&leaf| profile.frame_name(leaf).ends_with(function))
            })
            .map(|(_, v)| v[1])
            .sum()
    };
    for (endpoint, function) in [
        ("GET /feed", "score_items"),
        ("GET /feed", "render_feed"),
        ("POST /orders", "parse_order"),
        ("POST /orders", "price_order"),
    ] {
        let share = ratio(self_cost(function), cost(endpoint, function));
        assert!(
            share > 0.9,
            "{function}: self cost is {:.0}% of its inclusive cost",
            share * 100.0
        );
    }
}

/// A webhook receiver: answers 500 to the first delivery and 200 after;
/// returns its URL and the bodies it got.
/// A webhook endpoint that answers 500 to the first `failures` deliveries
/// and 200 after; returns its URL and the bodies it got.
pub(crate) fn webhook_receiver(failures: usize) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let bodies = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = bodies.clone();
    thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                if line == "\r\n" || line.is_empty() {
                    break;
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            seen.lock().unwrap().push(String::from_utf8(body).unwrap());
            let status = if n < failures {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (url, bodies)
}

/// A simulated fleet of one host, 12 windows per deploy, ending an hour
/// ago: every deploy after the first brings one +30% regression, no decoys.
pub(crate) fn regressing_fleet(seed: u64, deploys: usize) -> flameshift_detect::sim::Fleet {
    use flameshift_detect::sim::{Fleet, FleetConfig};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    Fleet::new(FleetConfig {
        seed,
        deploys,
        hosts: 1,
        windows_per_deploy: 12,
        regression_chance: 1.0,
        regression_sizes: vec![0.3],
        decoy_chance: 0.0,
        start_ms: now - 3_600_000,
        ..FleetConfig::default()
    })
}

/// Uploads window `w` of deploy `d` of the simulated `fleet` (its profile
/// and request statistics, as service `fleet`, host `h`) to `url`.
pub(crate) fn upload_window(url: &str, fleet: &flameshift_detect::sim::Fleet, d: usize, w: usize) {
    let window = fleet.host_window(d, w, 0);
    let mut body = Vec::new();
    format::pprof::write(&window.profile(), &mut body).unwrap();
    let target = format!(
        "{url}/api/v1/profiles?service=fleet&deploy={}&host=h",
        window.deploy
    );
    let response = http::post(&target, &[], &body, Duration::from_secs(30)).unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    let stats = serde_json::to_vec(&window.requests_body("fleet")).unwrap();
    let response = http::post(
        &format!("{url}/api/v1/requests"),
        &[],
        &stats,
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
}

#[test]
fn regressions_are_listed_by_the_cli_and_sent_to_the_webhook_with_retries() {
    let (hook, bodies) = webhook_receiver(1);
    let dir = tempfile::tempdir().unwrap();
    let (mut server, url) = start_serve(dir.path(), &["--webhook", &hook, "--detect-interval", "1h"]);
    let fleet = regressing_fleet(3, 2);
    let injected = fleet.truth()[0].function.clone();
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_flameshift"))
            .arg("regressions")
            .args(args)
            .output()
            .unwrap()
    };
    // Three windows of the new deploy: not enough, and the CLI says so.
    for (d, windows) in [(0, 0..12), (1, 0..3)] {
        for w in windows {
            upload_window(&url, &fleet, d, w);
        }
    }
    let early = cli(&["--analyzer", &url, "--service", "fleet", "--detect"]);
    let text = String::from_utf8_lossy(&early.stdout);
    assert!(
        text.starts_with("no regressions\nd000 → d001:\n")
            && text.contains("not compared yet (per_request): 12 and 3 windows"),
        "{text}"
    );
    for w in 3..12 {
        upload_window(&url, &fleet, 1, w);
    }
    let table = cli(&["--analyzer", &url, "--detect"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.status.success(),
        "{}",
        String::from_utf8_lossy(&table.stderr)
    );
    assert!(text.starts_with("STATE") && text.contains("MEASURE"), "{text}");
    assert!(text.contains("per_request"), "{text}");
    assert!(
        text.contains(&injected) && text.contains("d000 → d001") && text.contains("open"),
        "{text}"
    );
    let json = cli(&["--analyzer", &url, "--service", "fleet", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["function"].as_str(), Some(injected.as_str()));

    // The webhook got it on the second attempt (the first was a 500).
    let mut waited = 0;
    while bodies.lock().unwrap().len() < 2 && waited < 200 {
        thread::sleep(Duration::from_millis(50));
        waited += 1;
    }
    let bodies = bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 2, "one failed delivery, one retry: {bodies:?}");
    assert_eq!(bodies[0], bodies[1]);
    let payload: serde_json::Value = serde_json::from_str(&bodies[1]).unwrap();
    let text = payload["text"].as_str().unwrap();
    assert!(
        text.contains(&injected) && text.contains("d000 → d001") && text.contains("+3"),
        "{text}"
    );
    assert_eq!(payload["regression"]["id"], listed[0]["id"]);
    assert_eq!(payload["regression"]["measure"], "per_request");

    server.kill().unwrap();
    server.wait().unwrap();
    let down = cli(&["--analyzer", &url]);
    assert_eq!(down.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&down.stderr).contains("/api/v1/regressions"),
        "{down:?}"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_flameshift"))
        .args(["serve", "--data"])
        .arg(dir.path())
        .args(["--webhook", "ftp://chat.example/hook"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("not an http:// or https:// URL"),
        "{bad:?}"
    );
}
