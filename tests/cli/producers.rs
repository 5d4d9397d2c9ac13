//! Profilers other than flameshift's own, as their users run them,
//! pushing to a real `flameshift serve`: Pyroscope's Python SDK
//! (`pyroscope-io`) and OpenTelemetry's Python profiling SDK
//! (`opentelemetry-sdk-extension-profiling`, OTLP/HTTP), installed by
//! scripts/test.sh from scripts/requirements-producers.txt.

use std::process::Command;
use std::time::Duration;

use flameshift_collector::export;

use super::serve::start_serve;

#[test]
fn pyroscopes_python_sdk_pushes_its_service_version_and_functions() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, url) = start_serve(dir.path(), &[]);
    let work = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/pyroscope-push/work.py");
    let ran = Command::new("python3").args([work, &url, "12"]).output().unwrap();
    assert!(
        ran.status.success(),
        "the SDK's program failed (pip install -r scripts/requirements-producers.txt): {}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let response = export::get(
        &format!("{url}/api/v1/functions?service=pyapp&deploy=v7&label=region=eu"),
        &[],
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    let top: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    let share = |prefix: &str| -> f64 {
        top["functions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["name"].as_str().unwrap().starts_with(prefix))
            .map(|f| f["self_share"].as_f64().unwrap())
            .sum()
    };
    // About 12 s at 100 Hz; the program's own functions carry its time.
    assert!(top["samples"].as_i64().unwrap() > 500, "{top}");
    let (hash, sort) = (share("busy_hash"), share("slow_sort"));
    assert!(
        hash > 0.3 && sort > 0.05 && hash > sort,
        "busy_hash {hash}, slow_sort {sort}: {top}"
    );
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn opentelemetrys_python_sdk_exports_its_service_version_and_functions() {
    let work = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/otlp-profiles/work.py");
    let run = |url: &str| {
        let ran = Command::new("python3").args([work, url, "8"]).output().unwrap();
        assert!(
            ran.status.success(),
            "the SDK's program failed (pip install -r scripts/requirements-producers.txt): {}",
            String::from_utf8_lossy(&ran.stderr)
        );
        String::from_utf8_lossy(&ran.stderr).into_owned()
    };
    // By default a wall-clock profile is refused, and the SDK is told why.
    let dir = tempfile::tempdir().unwrap();
    let (mut server, url) = start_serve(&dir.path().join("strict"), &[]);
    let said = run(&url);
    assert!(said.contains("400"), "the SDK logs the refusal: {said}");
    let services = export::get(&format!("{url}/api/v1/services"), &[], Duration::from_secs(30)).unwrap();
    assert!(!services.text().contains("pyotel"), "{}", services.text());
    server.kill().unwrap();
    server.wait().unwrap();

    let (mut server, url) = start_serve(&dir.path().join("wall"), &["--otlp-wall-as-cpu"]);
    run(&url);
    let response = export::get(
        &format!("{url}/api/v1/functions?service=pyotel&deploy=v3&label=region=eu"),
        &[],
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    let top: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    let share = |name: &str| -> f64 {
        top["functions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["name"].as_str().unwrap() == name)
            .map(|f| f["self_share"].as_f64().unwrap())
            .sum()
    };
    // About 8 s at 100 Hz, the main thread busy throughout.
    assert!(top["samples"].as_i64().unwrap() > 300, "{top}");
    let (hash, sort) = (share("busy_hash"), share("slow_sort"));
    assert!(
        hash > 0.3 && sort > 0.02 && hash > sort,
        "busy_hash {hash}, slow_sort {sort}: {top}"
    );
    server.kill().unwrap();
    server.wait().unwrap();
}

/// Runs `fixtures/detect-py/service.py` for each (producer, service,
/// change) at once, as deploy `deploy`, for `seconds`.
fn run_services(url: &str, deploy: &str, seconds: u32, runs: &[(&str, &str, &str)]) {
    let program = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/detect-py/service.py");
    let children: Vec<_> = runs
        .iter()
        .map(|(producer, service, change)| {
            let seconds = seconds.to_string();
            let args = [program, producer, url, service, deploy, &seconds, change];
            let child = Command::new("python3")
                .args(args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            (service.to_string(), child)
        })
        .collect();
    for (service, child) in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{service} {deploy} failed (pip install -r scripts/requirements-producers.txt): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn regressions_are_found_in_profiles_without_request_counts_from_real_producers() {
    // Two deploys of one Python program under each producer: in `rise`,
    // score_items does 30% more work in v2; in `cheaper`, load_rows does
    // half its work (so every other function's share rises). Neither
    // producer counts requests: detection compares shares.
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("detect.json");
    std::fs::write(
        &settings,
        r#"{"window_ms": 4000, "min_windows": 6, "min_samples": 150}"#,
    )
    .unwrap();
    let (mut server, url) = start_serve(
        &dir.path().join("data"),
        &[
            "--bucket",
            "1s",
            "--detect-interval",
            "1h",
            "--otlp-wall-as-cpu",
            "--detect-settings",
            settings.to_str().unwrap(),
        ],
    );
    let runs = [
        ("pyroscope", "py-pyroscope-rise", "rise"),
        ("pyroscope", "py-pyroscope-cheaper", "cheaper"),
        ("otel", "py-otel-rise", "rise"),
        ("otel", "py-otel-cheaper", "cheaper"),
    ];
    let before: Vec<_> = runs.iter().map(|(p, s, _)| (*p, *s, "none")).collect();
    run_services(&url, "v1", 44, &before);
    run_services(&url, "v2", 44, &runs);
    // Detection now (the scheduler waits an hour), then the listing.
    let detect_and_list = |service: &str| -> (serde_json::Value, serde_json::Value) {
        let ran = export::post(
            &format!("{url}/api/v1/detect?service={service}"),
            &[],
            b"",
            Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(ran.status, 200, "{}", ran.text());
        let response = export::get(
            &format!("{url}/api/v1/regressions?service={service}"),
            &[],
            Duration::from_secs(30),
        )
        .unwrap();
        assert_eq!(response.status, 200, "{}", response.text());
        (
            serde_json::from_slice(&ran.body).unwrap(),
            serde_json::from_slice(&response.body).unwrap(),
        )
    };
    for (service, endpoint) in [("py-pyroscope-rise", "GET /feed"), ("py-otel-rise", "")] {
        let (_, found) = detect_and_list(service);
        let regressions = found["regressions"].as_array().unwrap();
        assert_eq!(regressions.len(), 1, "{service}: {found:#}");
        let r = &regressions[0];
        assert_eq!(r["function"], "score_items", "{service}: {r:#}");
        assert_eq!(r["endpoint"], endpoint, "{service}: {r:#}");
        assert_eq!(r["measure"], "share", "{service}: {r:#}");
        assert_eq!(r["deploy_after"], "v2", "{service}: {r:#}");
        // 40 → 52 units: +30% against the functions that did not change
        // (a unit's cost varies a little with its loop's constants).
        let relative = &r["relative"];
        let (low, high) = (
            relative["low"].as_f64().unwrap(),
            relative["high"].as_f64().unwrap(),
        );
        assert!(low > 0.1 && low <= 0.35 && high >= 0.25, "{service}: {r:#}");
    }
    for service in ["py-pyroscope-cheaper", "py-otel-cheaper"] {
        let (run, found) = detect_and_list(service);
        assert_eq!(
            found["regressions"],
            serde_json::json!([]),
            "{service}: {found:#}"
        );
        // The others' shares rose, as the mirror of load_rows' fall: the
        // cost-shift filter names it.
        let shifted: Vec<&serde_json::Value> = run["suppressed"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["reason"]["kind"] == "cost_shift")
            .collect();
        assert!(
            shifted.iter().any(|s| s["reason"]["from"]
                .as_array()
                .unwrap()
                .contains(&"load_rows".into())),
            "{service}: {run:#}"
        );
        // Compared, not waiting: the empty list means "none".
        let compared = found["comparison"]["compared"].as_array().unwrap();
        assert!(
            compared.iter().any(|c| c["measure"] == "share"),
            "{service}: {found:#}"
        );
    }
    server.kill().unwrap();
    server.wait().unwrap();
}
