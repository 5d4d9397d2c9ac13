//! Detection in the server: the fleet simulator's uploads go through the
//! real ingest path, `POST /api/v1/detect` runs detection, and
//! `GET /api/v1/regressions` must list the injected regressions and none
//! of the decoys; states, resolution and persistence across a restart.

use std::collections::BTreeSet;

use flameshift_analyzer::profile::{format, Profile, SampleType};
use flameshift_detect::sim::{Decoy, Fleet, FleetConfig};

use flameshift_testkit::{reported_regressions, upload_fleet, FleetUpload};

use crate::{get, now_ms, on_every_store, post, Place};

on_every_store!(
    the_simulated_fleet_regressions_are_listed_and_its_decoys_are_not,
    a_later_deploy_that_brings_the_cost_back_resolves_the_regression,
);

/// (deploy, function) of every listed regression, by its likely cause.
fn reported(listing: &serde_json::Value) -> BTreeSet<(String, String)> {
    reported_regressions(listing).into_iter().collect()
}

async fn the_simulated_fleet_regressions_are_listed_and_its_decoys_are_not(place: Place) {
    let fleet = Fleet::new(FleetConfig {
        seed: 7,
        deploys: 4,
        hosts: 2,
        windows_per_deploy: 12,
        regression_chance: 1.0,
        regression_sizes: vec![0.1, 0.3],
        decoy_chance: 1.0,
        start_ms: now_ms() - 6 * 3_600_000,
        ..FleetConfig::default()
    });
    let truth: BTreeSet<(String, String)> = fleet
        .truth()
        .iter()
        .map(|i| (format!("d{:03}", i.deploy), i.function.clone()))
        .collect();
    assert_eq!(truth.len(), 3);
    let decoy_names: BTreeSet<(String, String)> = fleet
        .plans()
        .iter()
        .flat_map(|p| p.decoys.iter().map(|d| (p.name.clone(), d)))
        .filter_map(|(deploy, d)| match d {
            Decoy::Refactor { to, .. } | Decoy::Rename { to, .. } => Some((deploy, to.clone())),
            Decoy::Spike { function, .. } => Some((deploy, function.clone())),
            Decoy::TrafficShift { .. } => None,
        })
        .collect();
    assert!(decoy_names.len() >= 6, "{decoy_names:?}");

    let server = place.server().await;
    upload_fleet(&server.url, &fleet, &FleetUpload::default()).await;
    let (status, run) = post(&format!("{}/api/v1/detect", server.url), Vec::new()).await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["comparisons"], 3, "{run}");
    let shifts = run["suppressed"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["reason"]["kind"] == "cost_shift")
        .count();
    assert!(shifts >= 2, "the refactors and renames are cost shifts: {run}");

    let (status, listing) = get(&format!("{}/api/v1/regressions?service=fleet", server.url)).await;
    assert_eq!(status, 200, "{listing}");
    let found = reported(&listing);
    assert_eq!(found, truth, "{listing:#}");
    let first = &listing["regressions"][0];
    assert_eq!(first["state"], "open");
    assert!(first["relative"]["low"].as_f64().unwrap() > 0.0, "{first}");
    // Links the analyzer builds from its routes (the detection core
    // builds no URLs).
    let diff = first["links"]["diff"].as_str().unwrap();
    assert!(diff.starts_with("/api/v1/diff?service=fleet&endpoint="), "{diff}");
    let pair = format!(
        "base={}&candidate={}",
        first["deploy_before"].as_str().unwrap(),
        first["deploy_after"].as_str().unwrap()
    );
    assert!(diff.contains(&pair) && diff.ends_with("&format=svg"), "{diff}");
    assert!(
        first["links"]["series"]
            .as_str()
            .unwrap()
            .starts_with("/api/v1/series?service=fleet&endpoint="),
        "{first}"
    );
    for pair in &found {
        assert!(!decoy_names.contains(pair), "decoy {pair:?} reported");
    }
    // Each regression carries its test's minimum detectable effect.
    assert!(
        first["mde"]
            .as_f64()
            .is_some_and(|m| m >= 0.02 && m < first["relative"]["mean"].as_f64().unwrap()),
        "{first}"
    );

    // What each comparison could see: per endpoint and function, the
    // smallest rise at 80% power (never below the 2% threshold), and the
    // windows still needed for 2%.
    let deploy = first["deploy_after"].as_str().unwrap();
    let (status, seen) = get(&format!(
        "{}/api/v1/sensitivity?service=fleet&deploy={deploy}",
        server.url
    ))
    .await;
    assert_eq!(status, 200, "{seen}");
    let rows = seen["sensitivity"]["rows"].as_array().unwrap();
    assert!(rows.len() > 10, "{seen}");
    assert!(
        rows.iter()
            .all(|r| r["mde"].is_null() || r["mde"].as_f64().unwrap() >= 0.02),
        "{seen}"
    );
    assert!(
        rows.iter().any(|r| r["function"].is_null()),
        "endpoint totals too: {seen}"
    );
    assert_eq!(seen["sensitivity"]["deploy_after"], deploy);
    let (status, first_deploy) = get(&format!(
        "{}/api/v1/sensitivity?service=fleet&deploy=d000",
        server.url
    ))
    .await;
    assert_eq!(
        (status, &first_deploy["sensitivity"]),
        (200, &serde_json::Value::Null),
        "{first_deploy}"
    );
    let (status, _) = get(&format!(
        "{}/api/v1/sensitivity?service=fleet&deploy=nope",
        server.url
    ))
    .await;
    assert_eq!(status, 404);
    let (status, _) = get(&format!("{}/api/v1/sensitivity?service=fleet", server.url)).await;
    assert_eq!(status, 400);

    // A second run with no new data compares nothing and changes nothing.
    let (_, again) = post(&format!("{}/api/v1/detect", server.url), Vec::new()).await;
    assert_eq!(
        (again["comparisons"].as_u64(), again["new"].as_u64()),
        (Some(0), Some(0)),
        "{again}"
    );

    // Acknowledge one; bad states and unknown ids are refused.
    let id = first["id"].as_str().unwrap().to_owned();
    let url = format!("{}/api/v1/regressions/{id}", server.url);
    let (status, answer) = post(&url, br#"{"state":"acknowledged"}"#.to_vec()).await;
    assert_eq!(
        (status, answer["state"].as_str()),
        (200, Some("acknowledged")),
        "{answer}"
    );
    let (status, answer) = post(&url, br#"{"state":"done"}"#.to_vec()).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"]
        .as_str()
        .unwrap()
        .contains("open, acknowledged or resolved"));
    let (status, _) = post(
        &format!("{}/api/v1/regressions/nope", server.url),
        br#"{"state":"open"}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = get(&format!("{}/api/v1/regressions?service=nope", server.url)).await;
    assert_eq!(status, 404);

    // Kept across a restart, with their states.
    server.stop().await;
    let server = place.server().await;
    let (_, listing) = get(&format!("{}/api/v1/regressions?state=acknowledged", server.url)).await;
    assert_eq!(listing["regressions"].as_array().unwrap().len(), 1, "{listing}");
    assert_eq!(listing["regressions"][0]["id"].as_str(), Some(id.as_str()));
    let (_, listing) = get(&format!("{}/api/v1/regressions", server.url)).await;
    assert_eq!(reported(&listing), truth);
    server.stop().await;
}

/// Uploads `windows` one-minute windows of deploy `deploy` whose `f` costs
/// `f_ns` per request (and `g` 2 ms), 1,000 requests each.
async fn upload_deploy(url: &str, deploy: &str, start_ms: i64, windows: i64, f_ns: i64) {
    for w in 0..windows {
        let requests = 1_000 + (w % 3) * 10;
        let jitter = 1_000 + w * 7 % 5; // ±0.2% of the cost
        let f_samples = requests * f_ns / 10_000_000 * jitter / 1_000;
        let g_samples = requests * 2_000_000 / 10_000_000;
        let time = start_ms + w * 60_000;
        let mut profile = Profile::new(vec![
            SampleType::new("samples", "count"),
            SampleType::new("cpu", "nanoseconds"),
        ]);
        profile.time_nanos = time * 1_000_000;
        let label = profile.str_label("endpoint", "GET /cart");
        let set = profile.intern_labels(vec![label]);
        for (leaf, samples) in [("f", f_samples), ("g", g_samples)] {
            let stack = profile.stack_from_names(["main", "handle", leaf]);
            profile.push_sample(stack, set, &[samples, samples * 10_000_000]);
        }
        let mut bytes = Vec::new();
        format::pprof::write(&profile, &mut bytes).unwrap();
        let (status, answer) = post(
            &format!("{url}/api/v1/profiles?service=shop&deploy={deploy}&host=h1"),
            bytes,
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        let stats = serde_json::json!({
            "service": "shop", "deploy": deploy, "host": "h1", "unit": "cpu_ns",
            "start_ms": time, "duration_ms": 60_000,
            "endpoints": [{"endpoint": "GET /cart", "count": requests, "cost_sum": 0}],
        });
        let (status, answer) = post(&format!("{url}/api/v1/requests"), stats.to_string().into_bytes()).await;
        assert_eq!(status, 200, "{answer}");
    }
}

async fn a_later_deploy_that_brings_the_cost_back_resolves_the_regression(place: Place) {
    let server = place.server().await;
    let start = now_ms() - 3 * 3_600_000;
    upload_deploy(&server.url, "v1", start, 12, 3_000_000).await;
    upload_deploy(&server.url, "v2", start + 3_600_000, 6, 3_600_000).await;
    let (_, run) = post(&format!("{}/api/v1/detect", server.url), Vec::new()).await;
    assert_eq!(
        (run["comparisons"].as_u64(), run["waiting"].as_u64()),
        (Some(0), Some(1)),
        "six windows are not enough: {run}"
    );
    // The listing says why it is empty: not compared yet, and on what.
    let (_, listing) = get(&format!("{}/api/v1/regressions?service=shop", server.url)).await;
    assert_eq!(listing["regressions"], serde_json::json!([]), "{listing}");
    let waiting = &listing["comparison"]["not_compared"][0];
    assert_eq!(
        (
            waiting["endpoint"].as_str(),
            waiting["measure"].as_str(),
            waiting["needed"].as_u64()
        ),
        (Some("GET /cart"), Some("per_request"), Some(10)),
        "{listing}"
    );
    assert_eq!(waiting["windows"], serde_json::json!([12, 6]), "{listing}");
    upload_deploy(&server.url, "v2", start + 3_600_000 + 6 * 60_000, 6, 3_600_000).await;
    let (_, run) = post(&format!("{}/api/v1/detect", server.url), Vec::new()).await;
    assert_eq!(run["new"], 1, "{run}");
    let (_, listing) = get(&format!("{}/api/v1/regressions?service=shop", server.url)).await;
    let r = &listing["regressions"][0];
    assert_eq!(
        (r["function"].as_str(), r["metric"].as_str(), r["state"].as_str()),
        (Some("f"), Some("self"), Some("open")),
        "{r}"
    );
    let relative = r["relative"]["mean"].as_f64().unwrap();
    assert!((relative - 0.2).abs() < 0.01, "{relative}");
    assert_eq!(r["measure"], "per_request", "{r}");
    assert_eq!(
        listing["comparison"]["compared"],
        serde_json::json!([{"endpoint": "GET /cart", "measure": "per_request"}]),
        "{listing}"
    );
    assert_eq!(
        listing["comparison"]["not_compared"],
        serde_json::json!([]),
        "{listing}"
    );

    upload_deploy(&server.url, "v3", start + 2 * 3_600_000, 12, 3_000_000).await;
    let (_, run) = post(&format!("{}/api/v1/detect?service=shop", server.url), Vec::new()).await;
    assert_eq!(run["resolved"], 1, "{run}");
    let (_, listing) = get(&format!(
        "{}/api/v1/regressions?service=shop&state=resolved",
        server.url
    ))
    .await;
    assert_eq!(listing["regressions"][0]["resolved_by"], "v3", "{listing}");
    server.stop().await;
}
