//! The dashboard end to end: a real `flameshift serve` (in process, on
//! 127.0.0.1:0) loaded with simulator data and an XSS-named profile,
//! driven by real headless Chromium through Playwright
//! (`dashboard/e2e/flows.mjs`). Screenshots go to
//! `target/dashboard-screenshots/`.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use flameshift_analyzer::profile::format;
use flameshift_analyzer::server::{self, ServeConfig};
use flameshift_analyzer::store::{Backend, StoreConfig};
use flameshift_detect::sim::{Fleet, FleetConfig};
use tokio::sync::oneshot;

const XSS: &str = "<img src=x onerror=window.__xss=1>";

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A client: reqwest is built with rustls but no default crypto provider
/// (the workspace picks ring explicitly), so the test installs it.
fn client() -> reqwest::Client {
    #[allow(deprecated, reason = "ring, as flameshift's own client uses")]
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn post(url: &str, body: Vec<u8>) -> serde_json::Value {
    let response = client().post(url).body(body).send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "POST {url}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
}

async fn start(dir: &Path) -> (String, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let backend = Backend::disk(StoreConfig::new(dir)).unwrap();
    let mut config = ServeConfig::new();
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.flush_interval = Duration::from_secs(3600);
    config.detect_interval = Duration::from_secs(3600);
    config.ui = Some(flameshift_dashboard::router());
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (ready_tx, ready_rx) = oneshot::channel();
    let handle = tokio::spawn(async move {
        server::serve(
            config,
            backend.store,
            backend.regressions,
            async {
                let _ = stop_rx.await;
            },
            move |running| {
                let _ = ready_tx.send(running.addr);
            },
        )
        .await
        .unwrap();
    });
    let addr = ready_rx.await.unwrap();
    (format!("http://{addr}"), stop_tx, handle)
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
    let c = fleet.config();
    for d in 0..c.deploys {
        for w in 0..c.windows_per_deploy {
            for h in 0..c.hosts {
                let window = fleet.host_window(d, w, h);
                let mut body = Vec::new();
                format::pprof::write(&window.profile(), &mut body).unwrap();
                post(
                    &format!(
                        "{url}/api/v1/profiles?service={}&deploy={}&host={}",
                        c.service, window.deploy, window.host
                    ),
                    body,
                )
                .await;
                post(
                    &format!("{url}/api/v1/requests"),
                    serde_json::to_vec(&window.requests_body(&c.service)).unwrap(),
                )
                .await;
                // The same profiles as a producer that counts no requests
                // sends them (a Pyroscope SDK, OTLP): compared in shares.
                let mut body = Vec::new();
                format::pprof::write(&window.profile(), &mut body).unwrap();
                post(
                    &format!(
                        "{url}/api/v1/profiles?service=uncounted&deploy={}&host={}",
                        window.deploy, window.host
                    ),
                    body,
                )
                .await;
            }
        }
    }
    let folded = format!("main;{XSS};<script>window.__xss=2</script> 700\nmain;render 300\n");
    let name = format!("xss.cpu{{deploy=v1,endpoint={XSS}}}");
    let query: String = url_encode(&name);
    post(
        &format!("{url}/ingest?name={query}&format=folded"),
        folded.into_bytes(),
    )
    .await;
    let found = post(&format!("{url}/api/v1/detect"), Vec::new()).await;
    assert!(found.to_string().contains("fleet"), "{found}");
    assert!(found.to_string().contains("uncounted"), "{found}");
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assets_are_embedded_and_the_api_still_answers_json() {
    let dir = tempfile::tempdir().unwrap();
    let (url, stop, handle) = start(dir.path()).await;
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
    let _ = stop.send(());
    handle.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_chromium_service_to_regression_to_diff_flame_graph() {
    let dir = tempfile::tempdir().unwrap();
    let (url, stop, handle) = start(dir.path()).await;
    load(&url).await;
    let e2e = workspace().join("dashboard/e2e");
    assert!(
        e2e.join("node_modules/playwright-core").exists(),
        "run `npm ci --prefix dashboard/e2e` (scripts/test.sh does) to install Playwright"
    );
    let shots = workspace().join("target/dashboard-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(e2e.join("flows.mjs"))
            .arg(&url)
            .arg(&shots)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let log = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{log}");
    assert!(log.contains("all flows passed"), "{log}");
    let _ = stop.send(());
    handle.await.unwrap();
}
