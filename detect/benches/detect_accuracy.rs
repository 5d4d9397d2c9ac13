//! Accuracy of the detection core on the fleet simulator: precision,
//! recall and F1 per (deploy, function), by regression size, and the
//! share of decoy-only deploys with no alert.
//!
//! `cargo bench -p flameshift-detect --features sim --bench detect_accuracy`
//! (`FS_SEEDS`, `FS_DEPLOYS`, `FS_HOSTS`, `FS_RPS`, `FS_WINDOWS` change
//! the fleet; `FS_MIN_SAMPLES`, `FS_MIN_RELATIVE`, `FS_EFFECT_SLACK` the
//! settings; `FS_UNCOUNTED=1` removes the request counts and the exact
//! request costs, as a Pyroscope SDK, OTLP or `record` would send the
//! same fleet: detection then compares shares).

#![allow(clippy::print_stdout, reason = "a benchmark prints its results")]

use std::collections::HashSet;
use std::time::Instant;

use flameshift_detect::sim::{score, Fleet, FleetConfig, Score};
use flameshift_detect::{compare_deploys, drift, DetectSettings};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let seeds = env("FS_SEEDS", 5);
    let deploys = env("FS_DEPLOYS", 40);
    let uncounted = env("FS_UNCOUNTED", 0) != 0;
    let mut settings = DetectSettings::default();
    if let Ok(v) = std::env::var("FS_MIN_SAMPLES") {
        settings.min_samples = v.parse().expect("FS_MIN_SAMPLES");
    }
    if let Ok(v) = std::env::var("FS_MIN_RELATIVE") {
        settings.min_relative = v.parse().expect("FS_MIN_RELATIVE");
    }
    if let Ok(v) = std::env::var("FS_EFFECT_SLACK") {
        settings.effect_slack = v.parse().expect("FS_EFFECT_SLACK");
    }
    let mut total = Score::default();
    let mut detect_time = 0.0;
    let mut alert_windows: Vec<usize> = Vec::new();
    let mut suppressed: std::collections::BTreeMap<String, usize> = Default::default();
    for seed in 1..=seeds as u64 {
        let fleet = Fleet::new(FleetConfig {
            seed,
            deploys,
            hosts: env("FS_HOSTS", 10),
            requests_per_second: env("FS_RPS", 20_000) as f64,
            windows_per_deploy: env("FS_WINDOWS", 30),
            ..FleetConfig::default()
        });
        let mut reported = Vec::new();
        for d in 1..deploys {
            let mut table = fleet.cost_table(d - 1, d);
            if uncounted {
                for e in &mut table.endpoints {
                    e.requests.iter_mut().for_each(|r| *r = 0.0);
                    e.measured.iter_mut().for_each(|m| *m = 0.0);
                }
            }
            let started = Instant::now();
            let cmp = compare_deploys(&table, 0, 1, &settings, 0);
            let skip: HashSet<_> = cmp
                .regressions
                .iter()
                .map(|r| (r.endpoint.clone(), r.function.clone(), r.metric))
                .collect();
            let drifts = drift::drifts(&table, 1, &settings, 0, &skip);
            detect_time += started.elapsed().as_secs_f64();
            for s in &cmp.suppressed {
                let kind = serde_json::to_value(&s.reason).expect("reasons serialize")["kind"]
                    .as_str()
                    .unwrap_or("?")
                    .to_owned();
                *suppressed.entry(kind).or_default() += 1;
            }
            // Time to alert: the fewest windows of the new deploy at which
            // each injected regression is already reported.
            for injected in &fleet.plans()[d].regressions {
                for k in (settings.min_windows..=fleet.config().windows_per_deploy).step_by(5) {
                    let mut early = table.clone();
                    for e in &mut early.endpoints {
                        let range = e.deploy_columns[1].clone();
                        e.deploy_columns[1] = range.start..(range.start + k).min(range.end);
                    }
                    let c = compare_deploys(&early, 0, 1, &settings, 0);
                    let hit = c
                        .regressions
                        .iter()
                        .any(|r| r.cause.as_ref().or(r.function.as_ref()) == Some(&injected.function));
                    if hit {
                        alert_windows.push(k);
                        break;
                    }
                }
            }
            for r in cmp.regressions.iter().chain(&drifts) {
                let function = r
                    .cause
                    .clone()
                    .or_else(|| r.function.clone())
                    .unwrap_or_else(|| format!("<total {}>", r.endpoint));
                let injected = fleet.plans()[d]
                    .regressions
                    .iter()
                    .any(|i| i.function == function);
                if std::env::var_os("FS_VERBOSE").is_some() && !injected {
                    println!("false positive, seed {seed}: {}", r.summary());
                    println!("  that deploy: {:?}", fleet.plans()[d]);
                }
                reported.push((r.deploy_after.clone(), function));
            }
        }
        let s = score(fleet.plans(), &reported, 1..deploys);
        total.add(&s);
    }
    let measure = if uncounted {
        "share (no request counts)"
    } else {
        "per request"
    };
    println!("fleets: {seeds} × {deploys} deploys, {measure}; detection time {detect_time:.2} s");
    println!(
        "precision {:.3}  recall {:.3}  F1 {:.3}  (tp {}, fp {}, fn {})",
        total.precision(),
        total.recall(),
        total.f1(),
        total.true_positives,
        total.false_positives,
        total.false_negatives
    );
    println!("| size | found / injected | recall |");
    for (size, (found, all)) in &total.by_size {
        println!(
            "| {size}% | {found} / {all} | {:.2} |",
            *found as f64 / *all as f64
        );
    }
    println!(
        "recall ≥5%: {:.3}  ≥2%: {:.3}",
        total.recall_at_least(0.05),
        total.recall_at_least(0.02)
    );
    println!(
        "decoy-only deploys without an alert: {} / {} ({:.3})",
        total.decoy_only_deploys - total.decoy_only_alerted,
        total.decoy_only_deploys,
        1.0 - total.decoy_only_alerted as f64 / total.decoy_only_deploys.max(1) as f64
    );
    println!("suppressed by filters: {suppressed:?}");
    alert_windows.sort_unstable();
    if !alert_windows.is_empty() {
        let at = |q: f64| alert_windows[((alert_windows.len() - 1) as f64 * q).round() as usize];
        println!(
            "time from deploy to alert (windows of {} s, detection running every window): median {}, p90 {}, of {} found",
            settings.window_ms / 1000,
            at(0.5),
            at(0.9),
            alert_windows.len()
        );
    }
}
