//! The dashboard end to end: a real `flameshift serve` (in process, on
//! 127.0.0.1:0) loaded with simulator data and an XSS-named profile,
//! driven by real headless Chromium through Playwright
//! (`dashboard/e2e/flows.mjs`). Screenshots go to
//! `target/dashboard-screenshots/`.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::path::{Path, PathBuf};
use std::process::Command;

use flameshift_analyzer::access::{sha256_hex, Keys};
use flameshift_client::routes::encode_component;
use flameshift_detect::sim::{Fleet, FleetConfig};
use flameshift_testkit::{
    client, disk, now_ms, post, profile_with_lines, test_config, upload_fleet, FleetUpload, TestServer,
};

const XSS: &str = "<img src=x onerror=window.__xss=1>";

/// POSTs `body`, which must be taken; the answer.
async fn post_ok(url: &str, body: Vec<u8>) -> serde_json::Value {
    let (status, answer) = post(url, body).await;
    assert!((200..300).contains(&status), "POST {url}: {status} {answer}");
    answer
}

/// A server with the dashboard over the embedded store in `dir`.
async fn start(dir: &Path) -> TestServer {
    let mut config = test_config();
    config.ui = Some(flameshift_dashboard::router());
    TestServer::start(config, disk(dir)).await
}

/// Three deploys of the simulated `fleet` with a regression injected in
/// each later one, the same profiles without request counts as service
/// `uncounted`, and a service whose function names and endpoint are
/// HTML.
async fn load(url: &str) {
    let fleet = Fleet::new(FleetConfig {
        seed: 7,
        deploys: 3,
        hosts: 2,
        functions: 300,
        endpoints: 4,
        windows_per_deploy: 12,
        regression_chance: 1.0,
        regression_sizes: vec![0.3],
        decoy_chance: 1.0,
        start_ms: now_ms() - 4 * 3_600_000,
        ..FleetConfig::default()
    });
    // Each later deploy's event lists its commits; one changed the lines
    // of the function whose regression was injected there.
    for injected in fleet.truth() {
        let deploy = format!("d{:03}", injected.deploy);
        let cause = format!("c0ffee{:034x}", injected.deploy);
        let event = serde_json::json!({
            "service": "fleet", "deploy": deploy,
            "commits": [
                {"sha": format!("d0c000{:034x}", injected.deploy), "short": "d0c0000", "title": "README: a badge",
                 "author": "Ada Dev <ada@example.com>", "files": [{"path": "README.md", "lines": [[1, 2]]}]},
                {"sha": cause, "short": &cause[..7], "title": format!("{}: validate twice", injected.function),
                 "author": "Bo Dev <bo@example.com>", "files": [{"path": "src/work.rs", "lines": [[36, 37]]}]},
            ],
        });
        post_ok(&format!("{url}/api/v1/deploys"), event.to_string().into_bytes()).await;
        let lines = profile_with_lines(
            &[(&injected.function, "/build/shop/src/work.rs", &[31, 36, 44])],
            fleet.window_start(injected.deploy, 3),
        );
        post_ok(
            &format!("{url}/api/v1/profiles?service=fleet&deploy={deploy}&host=lines"),
            lines,
        )
        .await;
    }
    upload_fleet(url, &fleet, &FleetUpload::default()).await;
    // The same profiles as a producer that counts no requests sends them
    // (a Pyroscope SDK, OTLP): compared in shares.
    let uncounted = FleetUpload {
        service: Some("uncounted".to_owned()),
        requests: false,
        ..FleetUpload::default()
    };
    upload_fleet(url, &fleet, &uncounted).await;
    let folded = format!("main;{XSS};<script>window.__xss=2</script> 700\nmain;render 300\n");
    let name = format!("xss.cpu{{deploy=v1,endpoint={XSS}}}");
    let query = encode_component(&name);
    post_ok(
        &format!("{url}/ingest?name={query}&format=folded"),
        folded.into_bytes(),
    )
    .await;
    let found = post_ok(&format!("{url}/api/v1/detect"), Vec::new()).await;
    assert!(found.to_string().contains("fleet"), "{found}");
    assert!(found.to_string().contains("uncounted"), "{found}");
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// Runs `node dashboard/e2e/SCRIPT URL SHOTS ARGS…`, which must pass.
async fn run_flows(script: &str, mut args: Vec<String>) {
    let e2e = workspace().join("dashboard/e2e");
    assert!(
        e2e.join("node_modules/playwright-core").exists(),
        "run `npm ci --prefix dashboard/e2e` (scripts/test.sh does) to install Playwright"
    );
    let shots = workspace().join("target/dashboard-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    args.insert(1, shots.display().to_string());
    let script = e2e.join(script);
    let out =
        tokio::task::spawn_blocking(move || Command::new("node").arg(script).args(args).output().unwrap())
            .await
            .unwrap();
    let log = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{log}");
    assert!(log.contains("all flows passed"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assets_are_embedded_and_the_api_still_answers_json() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let url = server.url.clone();
    let page = client().get(format!("{url}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(page.text().await.unwrap().contains("/assets/app.js"));
    for (name, content_type, body) in flameshift_dashboard::ASSETS {
        let asset = client().get(format!("{url}/assets/{name}")).send().await.unwrap();
        assert_eq!(asset.headers()["content-type"], *content_type);
        assert_eq!(asset.text().await.unwrap(), *body);
    }
    assert_eq!(
        client()
            .get(format!("{url}/assets/nope.js"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let api = client().get(format!("{url}/api/v1/nope")).send().await.unwrap();
    assert_eq!(api.status(), 404);
    assert!(api.text().await.unwrap().contains("\"error\""));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_chromium_service_to_regression_to_diff_flame_graph() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let url = server.url.clone();
    load(&url).await;
    run_flows("flows.mjs", vec![url]).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_chromium_a_read_token_sees_only_its_services() {
    let dir = tempfile::tempdir().unwrap();
    let (ops, team) = ("ops-secret", "team-secret");
    let auth = dir.path().join("auth.json");
    let entries = serde_json::json!({"tokens": [
        {"name": "ops", "sha256": sha256_hex(ops), "scopes": ["ingest", "read", "admin"]},
        {"name": "team", "sha256": sha256_hex(team), "scopes": ["read"], "services": ["shop", "shop-*"]},
    ]});
    std::fs::write(&auth, entries.to_string()).unwrap();
    let mut config = test_config();
    config.ui = Some(flameshift_dashboard::router());
    config.keys = Some(std::sync::Arc::new(Keys::load(&auth).unwrap()));
    let server = TestServer::start(config, disk(&dir.path().join("data"))).await;
    let url = server.url.clone();
    let fleet = Fleet::new(FleetConfig {
        seed: 5,
        deploys: 2,
        hosts: 1,
        functions: 60,
        endpoints: 2,
        windows_per_deploy: 10,
        regression_chance: 1.0,
        regression_sizes: vec![0.3],
        start_ms: now_ms() - 3 * 3_600_000,
        ..FleetConfig::default()
    });
    for service in ["shop", "shop-api", "billing"] {
        let how = FleetUpload {
            service: Some(service.to_owned()),
            token: Some(ops.to_owned()),
            ..FleetUpload::default()
        };
        upload_fleet(&url, &fleet, &how).await;
    }
    let run = client()
        .post(format!("{url}/api/v1/detect"))
        .bearer_auth(ops)
        .send()
        .await
        .unwrap();
    assert_eq!(run.status(), 200);
    let listing: serde_json::Value = client()
        .get(format!("{url}/api/v1/regressions?service=billing"))
        .bearer_auth(ops)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hidden = listing["regressions"][0]["id"]
        .as_str()
        .expect("billing has a regression")
        .to_owned();
    run_flows("scoped.mjs", vec![url, team.to_owned(), hidden]).await;
    server.stop().await;
}
