//! Suspect commits in the server, on every store: a deploy event lists
//! the commits a deploy brought (what each changed), the deploy's
//! profiles say where the regressed function's code is, and the
//! regression detection finds carries the commit that changed that code
//! first — above one that changed its file elsewhere and one that
//! changed other files. Facts survive a restart of the embedded store.

use flameshift_detect::sim::{Fleet, FleetConfig};
use flameshift_testkit::{profile_with_lines, upload_fleet, FleetUpload};

use super::*;

on_every_store!(the_commit_that_changed_the_regressed_function_is_its_first_suspect);

fn fleet() -> Fleet {
    Fleet::new(FleetConfig {
        seed: 3,
        deploys: 2,
        hosts: 1,
        functions: 60,
        endpoints: 2,
        windows_per_deploy: 12,
        regression_chance: 1.0,
        regression_sizes: vec![0.5],
        decoy_chance: 0.0,
        start_ms: now_ms() - 3 * 3_600_000,
        ..FleetConfig::default()
    })
}

fn commit(sha: &str, title: &str, files: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "sha": sha, "short": &sha[..7], "title": title,
        "author": "Ada Dev <ada@example.com>", "files": files,
    })
}

/// The first suspect of `service`'s regression of `function` in
/// `deploy` (and all suspects' SHAs).
async fn suspects_of(url: &str, service: &str, function: &str, deploy: &str) -> Vec<serde_json::Value> {
    let (status, found) = get(&format!("{url}/api/v1/regressions?service={service}")).await;
    assert_eq!(status, 200, "{found}");
    let regression = found["regressions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["function"] == function && r["deploy_after"] == deploy)
        .unwrap_or_else(|| panic!("{function} in {deploy}: {found:#}"))
        .clone();
    regression["suspects"].as_array().cloned().unwrap_or_default()
}

async fn the_commit_that_changed_the_regressed_function_is_its_first_suspect(place: Place) {
    let fleet = fleet();
    let truth = fleet.truth();
    assert_eq!(truth.len(), 1);
    let (deploy, function) = (format!("d{:03}", truth[0].deploy), truth[0].function.clone());
    let server = place.server().await;
    let url = server.url.clone();
    let cause = "c0ffee0000000000000000000000000000000003";
    let event = |service: &str| {
        serde_json::json!({
            "service": service, "deploy": deploy, "commit": cause,
            "commits": [
                commit("aaaaaaa000000000000000000000000000000001", "README: badges", serde_json::json!([{"path": "README.md", "lines": [[1, 3]]}])),
                commit("bbbbbbb000000000000000000000000000000002", "work.rs: a helper at the end", serde_json::json!([{"path": "src/work.rs", "lines": [[200, 210]]}])),
                commit(cause, "work.rs: validate twice", serde_json::json!([{"path": "src/work.rs", "lines": [[36, 37]]}])),
                commit("ddddddd000000000000000000000000000000004", "render: tidy", serde_json::json!([{"path": "src/render.rs", "lines": [[10, 12]]}])),
            ],
        })
        .to_string()
        .into_bytes()
    };
    // `early`: the deploy event first, as a deploy pipeline sends it;
    // `late`: the event after detection already ran on the data.
    for service in ["early", "late"] {
        if service == "early" {
            let (status, body) = post(&format!("{url}/api/v1/deploys"), event(service)).await;
            assert_eq!(status, 200, "{body}");
        }
        let how = FleetUpload {
            service: Some(service.to_owned()),
            ..FleetUpload::default()
        };
        upload_fleet(&url, &fleet, &how).await;
        let (status, body) = post(
            &format!("{url}/api/v1/profiles?service={service}&deploy={deploy}&host=lines"),
            profile_with_lines(
                &[(&function, "/build/shop/src/work.rs", &[31, 36, 44])],
                fleet.window_start(1, 3),
            ),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let detect = || async {
        let (status, run) = post(&format!("{url}/api/v1/detect"), Vec::new()).await;
        assert_eq!(status, 200, "{run}");
    };
    detect().await;
    assert!(suspects_of(&url, "late", &function, &deploy).await.is_empty());
    let (status, body) = post(&format!("{url}/api/v1/deploys"), event("late")).await;
    assert_eq!(status, 200, "{body}");
    detect().await;
    for service in ["early", "late"] {
        let suspects = suspects_of(&url, service, &function, &deploy).await;
        let shas: Vec<&str> = suspects.iter().map(|s| s["sha"].as_str().unwrap()).collect();
        assert_eq!(shas.first().copied(), Some(cause), "{service}: {suspects:#?}");
        assert_eq!(suspects[0]["tier"], "in_function", "{suspects:#?}");
        assert_eq!(suspects[0]["reasons"][0]["at"], "work.rs:36–37");
        assert!(
            shas.len() == 2 && shas[1].starts_with("bbbbbbb"),
            "{service}: the same file's other change comes next, no other: {shas:?}"
        );
    }
    // The deploys say how many commits each event listed.
    let (status, deploys) = get(&format!("{url}/api/v1/services/early/deploys")).await;
    assert_eq!(status, 200, "{deploys}");
    let listed: Vec<(String, u64)> = deploys["deploys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["deploy"].as_str().unwrap().to_owned(),
                d["commits"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert!(listed.contains(&(deploy.clone(), 4)), "{listed:?}");
    server.stop().await;

    // The facts outlive the process (the embedded store reopens its
    // files; ClickHouse keeps its table).
    if matches!(place, Place::Dir(_)) {
        let server = place.server().await;
        let changes = server.store.deploy_changes("early", &deploy).unwrap();
        assert_eq!(changes.commits.len(), 4);
        let span = &changes.sources[&function];
        assert_eq!((span.first, span.last), (31, 44), "{span:?}");
        server.stop().await;
    }
}
