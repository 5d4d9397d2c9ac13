//! Change points on simulated cost series, for the comparison with
//! `ruptures` and Apache Otava (`scripts/bench-changepoints.sh` runs this,
//! then the peers on the same series).
//!
//! The series: each endpoint's self cost per request of every function the
//! fleet simulator regressed, plus as many functions it did not touch,
//! over 8 deploys of 30 windows; the truth is the first window of each
//! deploy that regressed the function. Writes them to `FS_SERIES_OUT`
//! (default `target/changepoint-series.json`) with flameshift's change
//! points and times, and prints F1 (5-point margin) and time.
//!
//! `cargo bench -p flameshift-detect --features sim --bench changepoint_series`

#![allow(clippy::print_stdout, reason = "a benchmark prints its results")]

use std::time::Instant;

use flameshift_detect::changepoint::{e_divisive, pelt, robust, EDivisive, Pelt, Period, Robust};
use flameshift_detect::sim::{Fleet, FleetConfig, Rng};

/// Pooled (tp, fp, fn) of `found` against `truth`, a truth point matching
/// at most one change point within `margin` points.
fn matches(truth: &[usize], found: &[usize], margin: usize) -> (usize, usize, usize) {
    let mut used = vec![false; truth.len()];
    let mut tp = 0;
    for &f in found {
        if let Some(i) = (0..truth.len()).find(|&i| !used[i] && truth[i].abs_diff(f) <= margin) {
            used[i] = true;
            tp += 1;
        }
    }
    (tp, found.len() - tp, truth.len() - tp)
}

fn f1((tp, fp, fn_): (usize, usize, usize)) -> f64 {
    2.0 * tp as f64 / (2 * tp + fp + fn_).max(1) as f64
}

fn main() {
    let windows = 30;
    let mut series: Vec<(Vec<f64>, Vec<usize>)> = Vec::new();
    let mut rng = Rng::new(9);
    for seed in 1..=12u64 {
        let fleet = Fleet::new(FleetConfig {
            seed,
            deploys: 8,
            windows_per_deploy: windows,
            regression_chance: 0.6,
            regression_sizes: vec![0.05, 0.10, 0.20, 0.30],
            decoy_chance: 0.0,
            ..FleetConfig::default()
        });
        let table = fleet.cost_table(0, 7);
        let truth = fleet.truth();
        for e in &table.endpoints {
            let columns: Vec<usize> = (0..8).flat_map(|d| e.usable_columns(d, 20)).collect();
            if columns.len() != 8 * windows {
                continue;
            }
            let mut untouched = Vec::new();
            for (i, f) in e.functions.iter().enumerate() {
                let points: Vec<usize> = truth
                    .iter()
                    .filter(|t| t.function == *f.name)
                    .map(|t| t.deploy * windows)
                    .collect();
                let samples: i64 = f.self_samples.iter().sum();
                if !points.is_empty() && samples > 8 * 30 * 1_000 {
                    series.push((e.per_request(&f.self_cost, &columns), points));
                } else if samples > 8 * 30 * 1_000 {
                    untouched.push(i);
                }
            }
            for _ in 0..2 {
                if untouched.is_empty() {
                    break;
                }
                let i = untouched.swap_remove(rng.below(untouched.len()));
                series.push((e.per_request(&e.functions[i].self_cost, &columns), Vec::new()));
            }
        }
    }
    let total: usize = series.iter().map(|s| s.1.len()).sum();
    println!(
        "{} series of {} points, {total} true change points",
        series.len(),
        8 * windows
    );
    let mut results = Vec::new();
    let seasonless = Robust {
        period: Period::None,
        ..Robust::default()
    };
    for (name, method) in [
        ("robust", 2),
        ("robust, no season search", 3),
        ("e-divisive", 0),
        ("pelt", 1),
    ] {
        let started = Instant::now();
        let found: Vec<Vec<usize>> = series
            .iter()
            .map(|(values, _)| {
                let points = match method {
                    0 => e_divisive(values, &EDivisive::default()),
                    1 => pelt(values, &Pelt::default()),
                    2 => robust(values, &Robust::default()).change_points,
                    _ => robust(values, &seasonless).change_points,
                };
                points.iter().map(|p| p.index).collect()
            })
            .collect();
        let seconds = started.elapsed().as_secs_f64();
        let pooled = series
            .iter()
            .zip(&found)
            .fold((0, 0, 0), |acc, ((_, truth), found)| {
                let (a, b, c) = matches(truth, found, 5);
                (acc.0 + a, acc.1 + b, acc.2 + c)
            });
        println!(
            "flameshift {name}: F1 {:.3} (tp {}, fp {}, fn {}), {:.1} ms",
            f1(pooled),
            pooled.0,
            pooled.1,
            pooled.2,
            seconds * 1e3
        );
        results.push(serde_json::json!({"method": name, "found": found, "seconds": seconds}));
    }
    let out = std::env::var("FS_SERIES_OUT")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target/changepoint-series.json").into());
    let body = serde_json::json!({
        "series": series.iter().map(|(v, t)| serde_json::json!({"values": v, "truth": t})).collect::<Vec<_>>(),
        "flameshift": results,
    });
    std::fs::write(&out, body.to_string()).expect("write the series");
    println!("wrote {out}");
}
