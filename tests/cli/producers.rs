//! Profilers other than flameshift's own, as their users run them,
//! pushing to a real `flameshift serve`: Pyroscope's Python SDK
//! (`pyroscope-io`) and OpenTelemetry's Python profiling SDK
//! (`opentelemetry-sdk-extension-profiling`, OTLP/HTTP), installed by
//! scripts/test.sh from scripts/requirements-producers.txt.

use std::process::Command;
use std::time::Duration;

use flameshift_client::http;

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
    let response = http::get(
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
    let services = http::get(&format!("{url}/api/v1/services"), &[], Duration::from_secs(30)).unwrap();
    assert!(!services.text().contains("pyotel"), "{}", services.text());
    server.kill().unwrap();
    server.wait().unwrap();

    let (mut server, url) = start_serve(&dir.path().join("wall"), &["--otlp-wall-as-cpu"]);
    run(&url);
    let response = http::get(
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
