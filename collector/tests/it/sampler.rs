//! The in-process sampler on this very test process: CPU-bound functions
//! in known proportions on threads started before and after the sampler,
//! with labels; both the perf-event path and the timer fallback.

use std::hint::black_box;
use std::time::{Duration, Instant};

use flameshift_collector::counters::{CounterMode, ThreadCounter};
use flameshift_collector::labels::{self, LabelSet};
use flameshift_collector::sampler::{RawSample, Sampler, SamplerConfig, SelfSymbolizer, StackCounts};
use flameshift_profile::TopBy;

#[inline(never)]
fn spin(units: u64) -> u64 {
    let mut x = 0u64;
    for i in 0..units * 1_000 {
        x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
    }
    x
}

#[inline(never)]
fn sampler_hot_three_quarters() -> u64 {
    spin(3)
}

#[inline(never)]
fn sampler_hot_one_quarter() -> u64 {
    spin(1)
}

/// Burns `cpu` of this thread's CPU time, 3:1 between the two functions.
fn burn(cpu: Duration) {
    let counter = ThreadCounter::thread_clock();
    let start = counter.read();
    while counter.read() - start < cpu.as_nanos() as u64 {
        black_box(sampler_hot_three_quarters());
        black_box(sampler_hot_one_quarter());
    }
}

fn run(config: SamplerConfig) -> (flameshift_profile::Profile, CounterMode, u64, u64) {
    let sampler = Sampler::start(&config).unwrap();
    let labelled = labels::intern(LabelSet::new([("endpoint", "GET /burn")]));
    // A thread that starts after the sampler, labelled.
    let late = std::thread::spawn(move || {
        let _entered = labels::enter(labelled);
        burn(Duration::from_millis(700));
    });
    burn(Duration::from_millis(700));
    late.join().unwrap();
    let mut raw: Vec<RawSample> = Vec::new();
    let deadline = Instant::now() + Duration::from_millis(200);
    while Instant::now() < deadline {
        sampler.drain(&mut raw);
        std::thread::sleep(Duration::from_millis(20));
    }
    let (mode, period, dropped) = (sampler.mode(), sampler.period(), sampler.dropped());
    drop(sampler);
    // Two threads burnt 700 ms each: the weights add up to about that
    // (perf samples weigh a period each; timer samples the CPU time since
    // the thread's previous one).
    let total: u64 = raw.iter().map(|s| s.weight).sum();
    assert!(
        (0.65e9..1.35 * 1.4e9).contains(&(total as f64)),
        "weights add up to {total} ns for 1.4 s of CPU ({} samples)",
        raw.len()
    );
    let mut stacks = StackCounts::default();
    stacks.add(&raw);
    let profile = SelfSymbolizer::default().profile(&stacks, mode, period);
    (profile, mode, period, dropped)
}

fn check(profile: &flameshift_profile::Profile) {
    // The loops live in `spin` (and, unoptimised, the iterator code it
    // calls); attribute by the caller on the stack.
    let inclusive = profile.top_functions(1, TopBy::Inclusive);
    let incl = |name: &str| {
        inclusive
            .iter()
            .filter(|f| f.name.ends_with(name))
            .map(|f| f.inclusive_value)
            .sum::<i64>()
    };
    let (three, one) = (
        incl("sampler_hot_three_quarters"),
        incl("sampler_hot_one_quarter"),
    );
    let total = profile.total(1);
    assert!(
        profile.total(0) >= 60,
        "about 99 Hz × 1.4 CPU-s, got {} samples",
        profile.total(0)
    );
    // A sample taken in a callee's prologue or epilogue loses its caller
    // (frame-pointer unwinding, as in perf); unoptimised code has many
    // tiny callees, so `spin` is on most, not all, stacks.
    assert!(
        incl("::spin") as f64 > 0.6 * total as f64,
        "the time is in spin: {inclusive:?}"
    );
    assert!(
        incl("::burn") as f64 > 0.9 * total as f64,
        "whole stacks up to the thread's entry"
    );
    let share = three as f64 / (three + one) as f64;
    assert!(
        (share - 0.75).abs() < 0.75 * 0.15,
        "3:1 split within ±15%, got {share:.2} ({three} vs {one})"
    );
    // Labels: the late thread's half carries its endpoint.
    let labelled: i64 = profile
        .iter_samples()
        .filter(|(s, _)| {
            profile
                .label_set(s.labels)
                .iter()
                .any(|l| profile.str(l.key) == "endpoint")
        })
        .map(|(_, v)| v[1])
        .sum();
    let labelled_share = labelled as f64 / total as f64;
    assert!(
        (0.3..0.7).contains(&labelled_share),
        "half the work is labelled, got {labelled_share:.2}"
    );
}

#[test]
fn samples_every_thread_with_labels_in_the_right_proportions() {
    let _serial = crate::serial();
    let (profile, mode, period, dropped) = run(SamplerConfig::default());
    assert_eq!(
        mode,
        CounterMode::ThreadCpuTime,
        "this VM has no PMU, and 99 Hz is below the tick rate: CPU-clock timers"
    );
    assert_eq!(period, 1_000_000_000 / 99);
    assert_eq!(dropped, 0);
    check(&profile);
}

#[test]
fn above_the_tick_rate_without_a_pmu_task_clock_events_sample() {
    let _serial = crate::serial();
    let config = SamplerConfig {
        frequency: 999,
        ..SamplerConfig::default()
    };
    let (profile, mode, period, dropped) = run(config);
    assert_eq!(
        mode,
        CounterMode::TaskClock,
        "this VM has no PMU: task-clock overflow"
    );
    assert_eq!(period, 1_000_000_000 / 999);
    assert_eq!(dropped, 0);
    check(&profile);
}

#[test]
fn the_thread_clock_timer_fallback_samples_too() {
    let _serial = crate::serial();
    let config = SamplerConfig {
        mode: Some(CounterMode::ThreadCpuTime),
        ..SamplerConfig::default()
    };
    let (profile, mode, _, _) = run(config);
    assert_eq!(mode, CounterMode::ThreadCpuTime);
    check(&profile);
}

#[test]
fn a_second_sampler_is_refused_while_one_runs() {
    let _serial = crate::serial();
    let first = Sampler::start(&SamplerConfig::default()).unwrap();
    assert!(Sampler::start(&SamplerConfig::default()).is_err());
    drop(first);
    drop(Sampler::start(&SamplerConfig::default()).unwrap());
}

#[inline(never)]
fn endpoint_a_work() -> u64 {
    spin(1)
}

#[inline(never)]
fn endpoint_b_work() -> u64 {
    spin(1)
}

#[test]
fn labels_follow_tasks_across_tokio_workers() {
    let _serial = crate::serial();
    let sampler = Sampler::start(&SamplerConfig::default()).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let a = labels::intern(LabelSet::new([("endpoint", "A")]));
    let b = labels::intern(LabelSet::new([("endpoint", "B")]));
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..16 {
            let (set, work): (_, fn() -> u64) = if i % 2 == 0 {
                (a, endpoint_a_work)
            } else {
                (b, endpoint_b_work)
            };
            tasks.push(tokio::spawn(labels::Labeled::new(set, async move {
                let started = Instant::now();
                while started.elapsed() < Duration::from_millis(1500) {
                    black_box(work());
                    tokio::task::yield_now().await; // may resume on the other worker
                }
            })));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let mut raw = Vec::new();
    sampler.drain(&mut raw);
    let (mode, period) = (sampler.mode(), sampler.period());
    drop(sampler);
    let mut stacks = StackCounts::default();
    stacks.add(&raw);
    let profile = SelfSymbolizer::default().profile(&stacks, mode, period);
    for (function, endpoint) in [("endpoint_a_work", "A"), ("endpoint_b_work", "B")] {
        let (mut inside, mut labelled) = (0, 0);
        for (sample, values) in profile.iter_samples() {
            let on_stack = profile
                .stack(sample.stack)
                .iter()
                .any(|&f| profile.frame_name(f).ends_with(function));
            if !on_stack {
                continue;
            }
            inside += values[0];
            let set = profile.label_set(sample.labels);
            if set
                .iter()
                .any(|l| profile.str(l.key) == "endpoint" && profile.label_value_text(l.value) == endpoint)
            {
                labelled += values[0];
            }
        }
        assert!(inside >= 30, "{function}: {inside} samples");
        assert!(
            labelled as f64 >= 0.95 * inside as f64,
            "{function}: {labelled} of {inside} samples carry endpoint={endpoint}"
        );
    }
}

#[test]
fn signal_safety_under_allocation_locks_thread_churn_and_fork() {
    let _serial = crate::serial();
    let seconds: u64 = std::env::var("FLAMESHIFT_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let sampler = Sampler::start(&SamplerConfig {
        frequency: 1_000,
        scan_interval: Duration::from_millis(10),
        ..SamplerConfig::default()
    })
    .unwrap();
    let lock = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..3)
        .map(|w| {
            let lock = lock.clone();
            std::thread::spawn(move || {
                let mut spawned = 0u64;
                while Instant::now() < deadline {
                    // Allocate and free, take a lock, start and end threads.
                    let v: Vec<String> = (0..200).map(|i| format!("{w}-{i}")).collect();
                    lock.lock().unwrap().push(v.len() as u64);
                    if w == 0 {
                        std::thread::spawn(|| black_box(spin(1))).join().unwrap();
                        spawned += 1;
                    }
                    if w == 1 {
                        lock.lock().unwrap().clear();
                    }
                }
                spawned
            })
        })
        .collect();
    // fork + exec while sampling (the child must not inherit trouble).
    while Instant::now() < deadline {
        let status = std::process::Command::new("true").status().unwrap();
        assert!(status.success());
        let mut raw = Vec::new();
        sampler.drain(&mut raw);
        std::thread::sleep(Duration::from_millis(50));
    }
    let spawned: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(spawned > 10, "threads came and went: {spawned}");
    let mut raw = Vec::new();
    sampler.drain(&mut raw);
    drop(sampler);
}
