//! The in-process sampler on this very test process: CPU-bound functions
//! in known proportions on threads started before and after the sampler,
//! with labels; both the perf-event path and the timer fallback.

use std::hint::black_box;
use std::time::{Duration, Instant};

use flameshift_collector::counters::{CounterMode, ThreadCounter};
use flameshift_collector::labels::{self, LabelSet};
use flameshift_collector::sampler::buffer::RawSample;
use flameshift_collector::sampler::symbols::{SelfSymbolizer, StackCounts};
use flameshift_collector::sampler::{Sampler, SamplerConfig};
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
fn sampler_hot_two_thirds() -> u64 {
    spin(2)
}

#[inline(never)]
fn sampler_hot_one_third() -> u64 {
    spin(1)
}

/// Burns `cpu` of this thread's CPU time, 2:1 between the two functions.
fn burn(cpu: Duration) {
    let counter = ThreadCounter::thread_clock();
    let start = counter.read();
    while counter.read() - start < cpu.as_nanos() as u64 {
        black_box(sampler_hot_two_thirds());
        black_box(sampler_hot_one_third());
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
    assert!(
        raw.iter().all(|s| s.weight >= period),
        "each sample weighs at least one period"
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
    let (two, one) = (incl("sampler_hot_two_thirds"), incl("sampler_hot_one_third"));
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
    let share = two as f64 / (two + one) as f64;
    assert!(
        (share - 2.0 / 3.0).abs() < 0.12,
        "2:1 split, got {share:.2} ({two} vs {one})"
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
        CounterMode::TaskClock,
        "this VM has no PMU: task-clock overflow"
    );
    assert_eq!(period, 1_000_000_000 / 99);
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
