//! Scale of the detection core: 10,000 functions (10 endpoints × 1,000)
//! × 200 deploys of 20 one-minute windows, every consecutive pair
//! compared (tests, filters, estimates) and every deploy searched for
//! change points, on one thread. The cost table is built first and not
//! timed (it is the store's query).
//!
//! `cargo bench -p flameshift-analyzer --bench detect_scale`

#![allow(clippy::print_stdout, reason = "a benchmark prints its results")]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use flameshift_detect::costs::{CostTable, EndpointCosts, FunctionCosts};
use flameshift_detect::sim::Rng;
use flameshift_detect::{compare_deploys, drift, DetectSettings};
use flameshift_profile::wire::Unit;

const ENDPOINTS: usize = 10;
const FUNCTIONS: usize = 1_000;
const DEPLOYS: usize = 200;
const WINDOWS: usize = 20;

fn table() -> CostTable {
    let mut rng = Rng::new(42);
    let columns = DEPLOYS * WINDOWS;
    let endpoints = (0..ENDPOINTS)
        .map(|e| {
            let requests: Vec<f64> = (0..columns)
                .map(|_| 10_000.0 + rng.poisson(100.0) as f64)
                .collect();
            let mut total = vec![0.0; columns];
            let functions: Vec<FunctionCosts> = (0..FUNCTIONS)
                .map(|f| {
                    // Samples per request ~ heavy-tailed; one hot function
                    // per endpoint gets 10% more expensive in deploy 100.
                    let regressed = f == e * 7 % FUNCTIONS;
                    let rate = if regressed {
                        0.5
                    } else {
                        (1.5 * rng.normal()).exp() * 0.01
                    };
                    let self_cost: Vec<f64> = (0..columns)
                        .map(|c| {
                            let deploy = c / WINDOWS;
                            let bump = if regressed && deploy >= 100 { 1.1 } else { 1.0 };
                            rng.poisson(requests[c] * rate * bump) as f64 * 1e7
                        })
                        .collect();
                    for (t, x) in total.iter_mut().zip(&self_cost) {
                        *t += x;
                    }
                    let samples: Vec<i64> = (0..DEPLOYS)
                        .map(|d| (self_cost[d * WINDOWS..(d + 1) * WINDOWS].iter().sum::<f64>() / 1e7) as i64)
                        .collect();
                    FunctionCosts {
                        name: format!("fn_{e}_{f}").into(),
                        inclusive: self_cost.clone(),
                        self_cost,
                        self_samples: samples.clone(),
                        inclusive_samples: samples,
                    }
                })
                .collect();
            let total_samples = (0..DEPLOYS)
                .map(|d| (total[d * WINDOWS..(d + 1) * WINDOWS].iter().sum::<f64>() / 1e7) as i64)
                .collect();
            EndpointCosts {
                endpoint: format!("GET /e{e}").into(),
                windows: (0..columns as i64).map(|c| c * 60_000).collect(),
                deploy_columns: (0..DEPLOYS).map(|d| d * WINDOWS..(d + 1) * WINDOWS).collect(),
                // No exact costs: the samples alone decide, as at scale
                // without the agent's counters.
                measured: vec![0.0; columns],
                requests,
                total,
                total_samples,
                callers: vec![Vec::new(); FUNCTIONS],
                ancestors: vec![Vec::new(); FUNCTIONS],
                self_by_callers: vec![Vec::new(); FUNCTIONS],
                functions,
            }
        })
        .collect();
    CostTable {
        service: "scale".into(),
        unit: Unit::CpuNs,
        deploys: (0..DEPLOYS)
            .map(|d| Arc::from(format!("d{d:03}").as_str()))
            .collect(),
        endpoints,
    }
}

fn main() {
    let table = table();
    let settings = DetectSettings::default();
    let mut best = f64::INFINITY;
    let mut found = 0;
    for _ in 0..3 {
        let started = Instant::now();
        found = 0;
        for d in 1..DEPLOYS {
            let c = compare_deploys(&table, d - 1, d, &settings, 0);
            let skip: HashSet<_> = c
                .regressions
                .iter()
                .map(|r| (r.endpoint.clone(), r.function.clone(), r.metric))
                .collect();
            found += c.regressions.len() + drift::drifts(&table, d, &settings, 0, &skip).len();
        }
        best = best.min(started.elapsed().as_secs_f64());
    }
    println!(
        "detection of {} functions × {DEPLOYS} deploys ({WINDOWS} windows each), one thread: {best:.3} s (best of 3); {found} regressions",
        ENDPOINTS * FUNCTIONS
    );
}
