//! Access (`serve --auth FILE`): every route against every scope, with
//! no token and an unknown one; then, on every store, tokens limited to
//! some services see, write and act on those only, and learn nothing of
//! the others.

use flameshift_analyzer::access::{sha256_hex, Keys};
use flameshift_analyzer::server::ServeConfig;
use flameshift_detect::sim::{Fleet, FleetConfig};
use flameshift_testkit::{upload_fleet, FleetUpload};

use super::*;

on_every_store!(a_token_limited_to_services_sees_writes_and_acts_on_those_only);

/// The access file's tokens: each one's secret is `NAME-secret`.
const TOKENS: &str = r#"[
    {"name": "ingest", "scopes": ["ingest"]},
    {"name": "read", "scopes": ["read"]},
    {"name": "admin", "scopes": ["admin"]},
    {"name": "ops", "scopes": ["ingest", "read", "admin"]},
    {"name": "team-a", "scopes": ["read"], "services": ["a", "a-*"]},
    {"name": "a-agent", "scopes": ["ingest"], "services": ["a"]},
    {"name": "a-admin", "scopes": ["read", "admin"], "services": ["a"]}
]"#;

fn secret(name: &str) -> String {
    format!("{name}-secret")
}

/// A config whose tokens are [`TOKENS`], from a file in `dir`.
fn config_with_tokens(dir: &Path) -> ServeConfig {
    let mut entries: Vec<serde_json::Value> = serde_json::from_str(TOKENS).unwrap();
    for entry in &mut entries {
        let name = entry["name"].as_str().unwrap().to_owned();
        entry["sha256"] = sha256_hex(&secret(&name)).into();
    }
    let path = dir.join("auth.json");
    std::fs::write(&path, serde_json::json!({ "tokens": entries }).to_string()).unwrap();
    let mut config = test_config();
    config.keys = Some(Arc::new(Keys::load(&path).unwrap()));
    config
}

/// A request: method, path and query, body and content type.
struct Call {
    post: bool,
    path: String,
    body: Vec<u8>,
    content_type: &'static str,
}

fn get_call(path: &str) -> Call {
    Call {
        post: false,
        path: path.to_owned(),
        body: Vec::new(),
        content_type: "",
    }
}

fn post_call(path: &str, body: Vec<u8>, content_type: &'static str) -> Call {
    Call {
        post: true,
        path: path.to_owned(),
        body,
        content_type,
    }
}

/// Sends `call` with `token` (none if `None`); status and body.
async fn send(url: &str, call: &Call, token: Option<&str>) -> (u16, String) {
    let target = format!("{url}{}", call.path);
    let mut request = if call.post {
        client().post(&target).body(call.body.clone())
    } else {
        client().get(&target)
    };
    if !call.content_type.is_empty() {
        request = request.header("content-type", call.content_type);
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Sends `call` as token `name`.
async fn send_as(url: &str, call: &Call, name: &str) -> (u16, String) {
    send(url, call, Some(&secret(name))).await
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures")
            .join(path),
    )
    .unwrap()
}

fn one_profile(function: &str) -> Vec<u8> {
    pprof(&[S {
        stack: &["main", function],
        labels: &[],
        count: 10,
        ns: 100_000_000,
    }])
}

/// Every route with the scope it needs. Uploads come first, so that the
/// queries after them have a service `a` with deploys v1 and v2.
fn every_route() -> Vec<(&'static str, Call)> {
    let folded = b"main;parse 10\n".to_vec();
    vec![
        (
            "ingest",
            post_call("/api/v1/profiles?service=a&deploy=v1", one_profile("f"), ""),
        ),
        (
            "ingest",
            post_call("/api/v1/profiles?service=a&deploy=v2", one_profile("g"), ""),
        ),
        (
            "ingest",
            post_call("/api/v1/requests", b"{}".to_vec(), "application/json"),
        ),
        (
            "ingest",
            post_call(
                "/api/v1/deploys",
                br#"{"service": "a", "deploy": "v2", "commit": "abc123"}"#.to_vec(),
                "application/json",
            ),
        ),
        (
            "ingest",
            post_call("/ingest?name=a.cpu%7Bdeploy%3Dv1%7D&format=folded", folded, ""),
        ),
        (
            "ingest",
            post_call(
                "/push.v1.PusherService/Push",
                fixture("pyroscope-push/pyspy-python.pb.gz"),
                "application/proto",
            ),
        ),
        (
            "ingest",
            post_call(
                "/v1development/profiles",
                fixture("otlp-profiles/python-sdk.pb.gz"),
                "application/x-protobuf",
            ),
        ),
        ("read", get_call("/api/v1/services")),
        ("read", get_call("/api/v1/services/a/deploys")),
        ("read", get_call("/api/v1/flamegraph?service=a")),
        ("read", get_call("/api/v1/diff?service=a&base=v1&candidate=v2")),
        ("read", get_call("/api/v1/functions?service=a")),
        ("read", get_call("/api/v1/series?service=a")),
        ("read", get_call("/api/v1/endpoints?service=a")),
        ("read", get_call("/api/v1/regressions")),
        ("read", get_call("/api/v1/sensitivity?service=a&deploy=v2")),
        ("read", get_call("/metrics")),
        (
            "admin",
            post_call(
                "/api/v1/regressions/nope",
                br#"{"state": "acknowledged"}"#.to_vec(),
                "application/json",
            ),
        ),
        ("admin", post_call("/api/v1/detect", Vec::new(), "")),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_route_needs_its_scope_and_a_known_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_with_tokens(dir.path());
    // The OTLP fixture holds wall-clock profiles.
    config.otlp.wall_as_cpu = true;
    let server = TestServer::start(config, flameshift_testkit::disk(&dir.path().join("data"))).await;
    let url = server.url.clone();
    for (needs, call) in every_route() {
        let what = format!("{} {}", if call.post { "POST" } else { "GET" }, call.path);
        for (token, expected) in [(None, "no token"), (Some("guess"), "unknown token")] {
            let (status, body) = send(&url, &call, token).await;
            assert_eq!(status, 401, "{what} with {expected}: {body}");
            assert!(body.contains(expected), "{what}: {body}");
        }
        for name in ["ingest", "read", "admin"] {
            if name == needs {
                continue;
            }
            let (status, body) = send_as(&url, &call, name).await;
            assert_eq!(status, 403, "{what} as {name}: {body}");
            assert!(
                body.contains(&format!("token `{name}` lacks the `{needs}` scope")),
                "{what} as {name}: {body}"
            );
        }
        // The scope's own token, and one with every scope: let in (the
        // request's own answer, 2xx, or 400/404 for its content).
        for name in [needs, "ops"] {
            let (status, body) = send_as(&url, &call, name).await;
            assert!(!matches!(status, 401 | 403), "{what} as {name}: {status} {body}");
            if call.path != "/api/v1/requests" && call.path != "/api/v1/regressions/nope" {
                assert!((200..300).contains(&status), "{what} as {name}: {status} {body}");
            }
        }
    }
    let (status, _) = get_text(&format!("{url}/healthz")).await;
    assert_eq!(status, 200, "healthz needs no token");
    server.stop().await;
}

/// A small simulated fleet with a regression in its second deploy.
fn small_fleet() -> Fleet {
    Fleet::new(FleetConfig {
        seed: 11,
        deploys: 2,
        hosts: 1,
        functions: 40,
        endpoints: 2,
        windows_per_deploy: 10,
        regression_chance: 1.0,
        regression_sizes: vec![0.3],
        decoy_chance: 0.0,
        start_ms: now_ms() - 3 * 3_600_000,
        ..FleetConfig::default()
    })
}

fn names(list: &serde_json::Value, key: &str, field: &str) -> Vec<String> {
    let mut names: Vec<String> = list[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s[field].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names.dedup();
    names
}

async fn a_token_limited_to_services_sees_writes_and_acts_on_those_only(place: Place) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(config_with_tokens(dir.path()), place.backend(8)).await;
    let url = server.url.clone();
    let fleet = small_fleet();
    for service in ["a", "a-api", "b"] {
        let how = FleetUpload {
            service: Some(service.to_owned()),
            token: Some(secret("ops")),
            ..FleetUpload::default()
        };
        upload_fleet(&url, &fleet, &how).await;
    }
    let (status, run) = send_as(&url, &post_call("/api/v1/detect", Vec::new(), ""), "ops").await;
    assert_eq!(status, 200, "{run}");
    let (status, all) = send_as(&url, &get_call("/api/v1/regressions"), "ops").await;
    assert_eq!(status, 200);
    let all: serde_json::Value = serde_json::from_str(&all).unwrap();
    assert_eq!(
        names(&all, "regressions", "service"),
        ["a", "a-api", "b"],
        "{all}"
    );

    // Lists: only the token's services.
    let (_, services) = send_as(&url, &get_call("/api/v1/services"), "team-a").await;
    let services: serde_json::Value = serde_json::from_str(&services).unwrap();
    assert_eq!(
        names(&services, "services", "service"),
        ["a", "a-api"],
        "{services}"
    );
    for path in ["/api/v1/regressions", "/api/v1/regressions?state=open"] {
        let (status, listing) = send_as(&url, &get_call(path), "team-a").await;
        assert_eq!(status, 200, "{listing}");
        let listing: serde_json::Value = serde_json::from_str(&listing).unwrap();
        assert_eq!(
            names(&listing, "regressions", "service"),
            ["a", "a-api"],
            "{path}"
        );
    }

    // Queries naming another service: answered as for a service that
    // does not exist, word for word.
    let (base, candidate) = ("d000", "d001");
    let queries = [
        "/api/v1/services/SERVICE/deploys".to_owned(),
        "/api/v1/flamegraph?service=SERVICE".to_owned(),
        format!("/api/v1/diff?service=SERVICE&base={base}&candidate={candidate}"),
        "/api/v1/functions?service=SERVICE".to_owned(),
        "/api/v1/series?service=SERVICE".to_owned(),
        "/api/v1/endpoints?service=SERVICE".to_owned(),
        "/api/v1/regressions?service=SERVICE".to_owned(),
        format!("/api/v1/sensitivity?service=SERVICE&deploy={candidate}"),
    ];
    for query in &queries {
        let (status, body) = send_as(&url, &get_call(&query.replace("SERVICE", "a-api")), "team-a").await;
        assert_eq!(status, 200, "{query} of its own service: {body}");
        let (status, body) = send_as(&url, &get_call(&query.replace("SERVICE", "b")), "ops").await;
        assert_eq!(status, 200, "{query} as ops: {body}");
        let (hidden, hidden_body) = send_as(&url, &get_call(&query.replace("SERVICE", "b")), "team-a").await;
        let (absent, absent_body) = send_as(&url, &get_call(&query.replace("SERVICE", "zz")), "team-a").await;
        assert_eq!(hidden, 404, "{query}: {hidden_body}");
        assert_eq!(
            (absent, absent_body.replace("zz", "b")),
            (hidden, hidden_body),
            "{query}"
        );
    }
    // /metrics covers every service.
    let (status, body) = send_as(&url, &get_call("/metrics"), "team-a").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("covers every service"), "{body}");

    // Writes: an agent of `a` cannot write `b`, and nothing of it is kept.
    let to_b = post_call("/api/v1/profiles?service=b&deploy=v9", one_profile("f"), "");
    let (status, body) = send_as(&url, &to_b, "a-agent").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("may not write service `b`"), "{body}");
    let deploy_of_b = post_call(
        "/api/v1/deploys",
        br#"{"service": "b", "deploy": "v9"}"#.to_vec(),
        "application/json",
    );
    assert_eq!(send_as(&url, &deploy_of_b, "a-agent").await.0, 403);
    let push = post_call(
        "/push.v1.PusherService/Push",
        fixture("pyroscope-push/pyspy-python.pb.gz"),
        "application/proto",
    );
    assert_eq!(
        send_as(&url, &push, "a-agent").await.0,
        403,
        "a push of service pyapp"
    );
    let (_, deploys) = send_as(&url, &get_call("/api/v1/services/b/deploys"), "ops").await;
    assert!(!deploys.contains("v9"), "{deploys}");
    let (_, services) = send_as(&url, &get_call("/api/v1/services"), "ops").await;
    assert!(!services.contains("pyapp"), "{services}");
    let to_a = post_call("/api/v1/profiles?service=a&deploy=v9", one_profile("f"), "");
    let (status, body) = send_as(&url, &to_a, "a-agent").await;
    assert_eq!(status, 200, "{body}");

    // Admin of `a`: another service's regression is not there to change;
    // detection without a service runs on `a` only.
    let id_of = |service: &str| {
        all["regressions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["service"] == service)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let acknowledge = |id: String| {
        post_call(
            &format!("/api/v1/regressions/{id}"),
            br#"{"state": "acknowledged"}"#.to_vec(),
            "application/json",
        )
    };
    let (status, body) = send_as(&url, &acknowledge(id_of("b")), "a-admin").await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = send_as(&url, &acknowledge(id_of("a")), "a-admin").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send_as(
        &url,
        &post_call("/api/v1/detect?service=b", Vec::new(), ""),
        "a-admin",
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = send_as(&url, &post_call("/api/v1/detect", Vec::new(), ""), "a-admin").await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("a-api") && !body.contains("\"b\""), "{body}");
    server.stop().await;
}
