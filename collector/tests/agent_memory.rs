//! The agent's memory stays flat while a service runs through many
//! distinct stacks for a long time: 360 intervals (an hour at the default
//! 10 s, here 100 ms each) of a workload that takes one of 4⁸ = 65,536
//! call paths per unit of work, sampled at 999 Hz, with every interval's
//! profile built and kept as the latest. The resident set may grow by at
//! most 20 MiB between the 30th interval (symbols of every code address
//! seen) and the last.
//!
//! Its own test binary: one sampler per process, and its RSS is this
//! process's alone.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::hint::black_box;
use std::time::{Duration, Instant};

use flameshift_collector::agent::{Agent, AgentConfig};

/// Some work at the end of a path.
#[inline(never)]
fn leaf(seed: u64) -> u64 {
    let mut x = seed | 1;
    for _ in 0..20_000 {
        x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
    x
}

macro_rules! step {
    ($name:ident) => {
        /// One level of the path: calls the next level chosen by two bits
        /// of `path` from one of four call sites (four return addresses).
        #[inline(never)]
        fn $name(path: u64, depth: u32) -> u64 {
            if depth == 0 {
                return leaf(path);
            }
            let next = path >> 2;
            black_box(match path & 3 {
                0 => step_a(next, depth - 1),
                1 => step_b(next, depth - 1),
                2 => step_c(next, depth - 1),
                _ => step_d(next, depth - 1),
            })
        }
    };
}
step!(step_a);
step!(step_b);
step!(step_c);
step!(step_d);

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn an_hour_of_distinct_stacks_grows_the_resident_set_by_at_most_20_mib() {
    let config = AgentConfig::default()
        .service("memory-test")
        .deploy("1")
        .frequency(999)
        .upload_interval(Duration::from_millis(100));
    let agent = Agent::start(config).unwrap();
    let mut random = 0x2545_f491_4f6c_dd1du64;
    let mut warm_rss = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    while agent.stats().profiles < 360 && Instant::now() < deadline {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        black_box(step_a(random, 8));
        if warm_rss.is_none() && agent.stats().profiles >= 30 {
            warm_rss = Some(rss_kib());
        }
    }
    let stats = agent.stats();
    let end_rss = rss_kib();
    let latest = agent.latest_profile().unwrap();
    drop(agent);
    let warm_rss = warm_rss.unwrap();
    assert!(stats.profiles >= 360, "{stats:?}");
    assert!(
        stats.samples > 20_000,
        "the agent must have seen many samples: {stats:?}"
    );
    assert!(
        latest.samples().len() > 10,
        "an interval's profile holds distinct stacks"
    );
    let growth_mib = (end_rss.saturating_sub(warm_rss)) as f64 / 1024.0;
    #[allow(clippy::print_stderr, reason = "the figures, for the test log")]
    {
        eprintln!(
            "RSS {warm_rss} KiB after 30 intervals, {end_rss} KiB after {}; {} samples",
            stats.profiles, stats.samples
        );
    }
    assert!(
        growth_mib <= 20.0,
        "RSS {warm_rss} KiB after 30 intervals, {end_rss} KiB after {} ({growth_mib:.1} MiB more); {stats:?}",
        stats.profiles
    );
}
