//! The agent in this process: profiles with labels at every interval,
//! and a dead analyzer that neither blocks nor crashes the service.

use std::hint::black_box;
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
    let labelled: i64 = profile
        .iter_samples()
        .filter(|(s, _)| {
            profile
                .label_set(s.labels)
                .iter()
                .any(|l| profile.str(l.key) == "endpoint")
        })
        .map(|(_, v)| v[0])
        .sum();
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
