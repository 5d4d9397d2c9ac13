//! The agent in this process: profiles with labels at every interval,
//! samples and requests cut at the same instant, and a dead analyzer that
//! neither blocks nor crashes the service.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flameshift_collector::agent::{Agent, AgentConfig};
use flameshift_collector::counters::ThreadCounter;
use flameshift_collector::labels::{self, LabelSet};

#[inline(never)]
fn agent_test_work(cpu: Duration) -> u64 {
    let counter = ThreadCounter::thread_clock();
    let start = counter.read();
    let mut x = 0u64;
    while counter.read() - start < cpu.as_nanos() as u64 {
        for i in 0..10_000u64 {
            x = black_box(x.rotate_left(3) ^ i);
        }
    }
    x
}

/// Samples (first value) of `profile` that carry an `endpoint` label.
fn endpoint_samples(profile: &flameshift_profile::Profile) -> i64 {
    profile
        .iter_samples()
        .filter(|(s, _)| {
            profile
                .label_set(s.labels)
                .iter()
                .any(|l| profile.str(l.key) == "endpoint")
        })
        .map(|(_, v)| v[0])
        .sum()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn profiles_carry_the_labels_of_the_work() {
    let _serial = crate::serial();
    let agent = Agent::start(AgentConfig::new("svc", "v1")).unwrap();
    let id = labels::intern(LabelSet::new([("endpoint", "GET /work")]));
    {
        let _entered = labels::enter(id);
        agent_test_work(Duration::from_millis(400));
    }
    agent.flush();
    wait_for("a profile", || agent.stats().profiles >= 1);
    let profile = agent.latest_profile().unwrap();
    assert!(profile.total(0) >= 20, "{} samples", profile.total(0));
    let labelled = endpoint_samples(&profile);
    assert!(labelled as f64 > 0.8 * profile.total(0) as f64);
    let top = profile.top_functions(1, flameshift_profile::TopBy::Inclusive);
    assert!(top.iter().any(|f| f.name.ends_with("agent_test_work")), "{top:?}");
    agent.shutdown();
}

#[test]
fn a_dead_analyzer_neither_blocks_nor_crashes_the_service() {
    let _serial = crate::serial();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut config = AgentConfig::new("svc", "v1").analyzer(format!("http://{closed}"));
    config.max_pending = 2;
    let agent = Agent::start(config).unwrap();
    let stats = agent.request_stats();
    for round in 0..5 {
        stats.record("GET /x", 10);
        agent_test_work(Duration::from_millis(50));
        agent.flush();
        wait_for("the interval to close", || agent.stats().profiles > round);
    }
    wait_for("failures and drops", || {
        let s = agent.stats();
        s.failures >= 1 && s.dropped_uploads >= 1
    });
    assert_eq!(agent.stats().uploads, 0);
    let started = Instant::now();
    agent.shutdown();
    assert!(started.elapsed() < Duration::from_secs(15), "shutdown is bounded");
}

/// Services start the agent from inside their async runtime
/// (`#[tokio::main]`): starting and stopping it there must not panic
/// (reqwest's blocking client refuses to be built inside a runtime in
/// debug builds, so the agent builds it on its own thread); a CA file
/// that does not load is an error from `start`.
#[test]
fn the_agent_starts_and_stops_inside_an_async_runtime() {
    let _serial = crate::serial();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (url, _received) = receiver();
        let agent = Agent::start(AgentConfig::new("svc", "v1").analyzer(url)).unwrap();
        agent.request_stats().record("GET /x", 10);
        agent.flush();
        wait_for("the interval to close", || agent.stats().profiles > 0);
        agent.shutdown();
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("ca.pem");
        std::fs::write(&bad, "not a certificate").unwrap();
        let refused = Agent::start(
            AgentConfig::new("svc", "v1")
                .analyzer("https://localhost:1")
                .ca_cert(&bad),
        );
        let Err(error) = refused else {
            panic!("a bad CA file is refused")
        };
        let message = error.to_string();
        assert!(message.contains("ca.pem"), "{message}");
        // Nothing was left running: a sampler starts again.
        let again = Agent::start(AgentConfig::new("svc", "v1")).unwrap();
        again.shutdown();
    });
}

#[test]
fn a_disabled_agent_starts_nothing() {
    let _serial = crate::serial();
    let agent = Agent::start(
        AgentConfig::default()
            .with_env(|k| (k == "FLAMESHIFT_DISABLED").then(|| "1".into()))
            .service("svc")
            .deploy("v1"),
    )
    .unwrap();
    assert_eq!(agent.mode(), None);
    // And a real sampler can still start while it lives.
    drop(flameshift_collector::sampler::Sampler::start(&Default::default()).unwrap());
}

/// What the stand-in analyzer received: `(path, body)` of each `POST`.
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A stand-in analyzer on a real socket: answers 200 to every `POST` and
/// keeps what it got.
fn receiver() -> (String, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let kept = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let path = request_line.split(' ').nth(1).unwrap_or("").to_owned();
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap();
                    }
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            kept.lock().unwrap().push((path, body));
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
                .unwrap();
        }
    });
    (url, received)
}

/// Samples and requests are cut at the same instant: an interval's
/// samples per request are the same in every interval, the first one
/// included (whose profile takes longest to build, since the symbolizer
/// reads the binary's debug info then). Before the fix the requests were
/// counted after the profile was built, so the first interval got the
/// requests of that pause without their samples, and the next interval
/// the samples without their requests.
#[test]
fn every_interval_has_the_samples_of_its_requests() {
    let _serial = crate::serial();
    let (url, received) = receiver();
    let config = AgentConfig::new("svc", "v1")
        .analyzer(url)
        .frequency(999)
        .upload_interval(Duration::from_millis(700));
    let agent = Agent::start(config).unwrap();
    let stats = agent.request_stats();
    let id = labels::intern(LabelSet::new([("endpoint", "GET /work")]));
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        let _entered = labels::enter(id);
        agent_test_work(Duration::from_millis(2));
        stats.record("GET /work", 2_000_000);
    }
    agent.shutdown();

    let mut samples: BTreeMap<i64, i64> = BTreeMap::new();
    let mut requests: BTreeMap<i64, i64> = BTreeMap::new();
    for (path, body) in received.lock().unwrap().iter() {
        if path.starts_with("/api/v1/profiles") {
            let profile = flameshift_profile::format::read_bytes(body, &Default::default()).unwrap();
            *samples.entry(profile.time_nanos / 1_000_000).or_default() += endpoint_samples(&profile);
        } else if path.starts_with("/api/v1/requests") {
            let json: serde_json::Value = serde_json::from_slice(body).unwrap();
            let count: i64 = json["endpoints"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["count"].as_i64().unwrap())
                .sum();
            *requests.entry(json["start_ms"].as_i64().unwrap()).or_default() += count;
        }
    }
    // Every interval but the last (cut short by the shutdown) is whole.
    let intervals: Vec<(i64, f64)> = requests
        .iter()
        .filter(|&(_, &n)| n >= 50)
        .map(|(start, &n)| (*start, samples.get(start).copied().unwrap_or(0) as f64 / n as f64))
        .collect();
    assert!(intervals.len() >= 4, "{intervals:?}");
    let mut ratios: Vec<f64> = intervals.iter().map(|&(_, r)| r).collect();
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    // 2 ms of CPU per request at 999 Hz: ~2 samples each, ~500 an interval.
    assert!(median > 1.0, "{median} samples per request");
    for (start, ratio) in &intervals {
        assert!(
            (ratio / median - 1.0).abs() < 0.25,
            "interval at {start} ms: {ratio:.2} samples per request, median {median:.2}; all: {intervals:?}"
        );
    }
}

/// At 0 Hz the agent samples nothing but still ships request statistics:
/// no sampler runs (another can start), no profile is uploaded, and the
/// requests arrive.
#[test]
fn at_0_hz_only_requests_are_shipped() {
    let _serial = crate::serial();
    let (url, received) = receiver();
    let config = AgentConfig::new("svc", "v1")
        .analyzer(url)
        .frequency(0)
        .upload_interval(Duration::from_millis(300));
    let agent = Agent::start(config).unwrap();
    assert_eq!(agent.mode(), None, "nothing samples");
    drop(flameshift_collector::sampler::Sampler::start(&Default::default()).unwrap());
    let stats = agent.request_stats();
    for _ in 0..20 {
        agent_test_work(Duration::from_millis(20));
        stats.record("GET /work", 20_000_000);
    }
    agent.flush();
    agent.shutdown();
    let received = received.lock().unwrap();
    let paths: Vec<&str> = received.iter().map(|(p, _)| p.as_str()).collect();
    assert!(
        paths.iter().any(|p| p.starts_with("/api/v1/requests")),
        "{paths:?}"
    );
    assert!(
        !paths.iter().any(|p| p.starts_with("/api/v1/profiles")),
        "{paths:?}"
    );
    let counted: i64 = received
        .iter()
        .filter(|(p, _)| p.starts_with("/api/v1/requests"))
        .map(|(_, body)| {
            let json: serde_json::Value = serde_json::from_slice(body).unwrap();
            json["endpoints"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["count"].as_i64().unwrap())
                .sum::<i64>()
        })
        .sum();
    assert_eq!(counted, 20, "every request counted exactly");
}
