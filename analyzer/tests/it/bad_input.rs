//! Every kind of bad upload and query: the right status, a message that
//! names the problem, and nothing stored.

use flameshift_analyzer::regressions::FileBook;

use super::*;

async fn refused(url: &str, body: Vec<u8>, status: u16, needle: &str) {
    let (got, answer) = post(url, body).await;
    assert_eq!(got, status, "{url}: {answer}");
    let message = answer["error"]
        .as_str()
        .unwrap_or_else(|| panic!("JSON error body: {answer}"));
    assert!(message.contains(needle), "{message:?} should mention {needle:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_refused_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config();
    config.max_body_bytes = 64 * 1024;
    let disk_store = Arc::new(DiskStore::open(StoreConfig::new(dir.path())).unwrap());
    let backend = Backend {
        store: disk_store.clone(),
        regressions: Arc::new(FileBook::open(dir.path()).unwrap()),
    };
    let server = TestServer::start(config, backend).await;
    let profiles = format!("{}/api/v1/profiles", server.url);
    let good = || {
        pprof(&[S {
            stack: &["main", "work"],
            labels: &[("endpoint", "GET /a")],
            count: 1,
            ns: 10,
        }])
    };
    let shop = format!("{profiles}?service=shop&deploy=v1");

    refused(
        &shop,
        b"\x1f\x8bnot really gzip".to_vec(),
        400,
        "malformed profile",
    )
    .await;
    refused(
        &shop,
        b"\x0a\xff\xff\xff\xff\x0f".to_vec(),
        400,
        "malformed profile",
    )
    .await;
    refused(&shop, Vec::new(), 400, "empty body").await;
    refused(&format!("{profiles}?deploy=v1"), good(), 400, "missing service").await;
    refused(&format!("{profiles}?service=shop"), good(), 400, "missing deploy").await;
    refused(
        &format!("{profiles}?service=%01bell&deploy=v1"),
        good(),
        400,
        "control characters",
    )
    .await;
    let mislabelled = pprof(&[S {
        stack: &["main"],
        labels: &[("service", "billing")],
        count: 1,
        ns: 1,
    }]);
    refused(&shop, mislabelled, 400, "mislabelled").await;
    let bad_key = pprof(&[S {
        stack: &["main"],
        labels: &[("bad key", "x")],
        count: 1,
        ns: 1,
    }]);
    refused(&shop, bad_key, 400, "bad label key").await;
    let negative = pprof(&[S {
        stack: &["main"],
        labels: &[],
        count: 1,
        ns: -5,
    }]);
    refused(&shop, negative, 400, "negative").await;
    let mut heap = flameshift_analyzer::profile::Profile::new(vec![SampleType::new("alloc_space", "bytes")]);
    let stack = heap.stack_from_names(["main", "alloc"]);
    heap.push_sample(stack, LabelSetId::EMPTY, &[4096]);
    refused(
        &shop,
        format::pprof::to_proto_bytes(&heap),
        400,
        "no CPU sample type",
    )
    .await;
    let future = now_ms() + 86_400_000;
    refused(
        &format!("{shop}&time_ms={future}"),
        good(),
        400,
        "ahead of the server's clock",
    )
    .await;
    let huge: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    refused(&shop, huge, 413, "larger than the server's limit").await;

    let requests = format!("{}/api/v1/requests", server.url);
    refused(
        &requests,
        b"{not json".to_vec(),
        400,
        "malformed request statistics",
    )
    .await;
    let mismatch = serde_json::json!({"service": "shop", "deploy": "v1", "unit": "cpu_ns", "start_ms": now_ms(),
        "endpoints": [{"endpoint": "GET /a", "count": 5, "cost_sum": 9, "histogram": [[1, 2]]}]});
    refused(
        &requests,
        mismatch.to_string().into_bytes(),
        400,
        "histogram holds 2 requests but count is 5",
    )
    .await;
    let unit = serde_json::json!({"service": "shop", "deploy": "v1", "unit": "cycles", "start_ms": now_ms(), "endpoints": []});
    refused(
        &requests,
        unit.to_string().into_bytes(),
        400,
        "unknown variant `cycles`, expected `instructions` or `cpu_ns`",
    )
    .await;
    let deploys = format!("{}/api/v1/deploys", server.url);
    refused(
        &deploys,
        br#"{"service": "shop"}"#.to_vec(),
        400,
        "missing field `deploy`",
    )
    .await;
    let ingest = format!("{}/ingest?name=app.alloc_objects%7B%7D", server.url);
    refused(&ingest, b"main 1\n".to_vec(), 400, "only CPU profiles").await;

    // Not one of those left anything behind.
    let (_, services) = get(&format!("{}/api/v1/services", server.url)).await;
    assert_eq!(services["services"], serde_json::json!([]), "{services}");
    assert_eq!(disk_store.stats().head_rows, 0);
    let (_, metrics) = get_text(&format!("{}/metrics", server.url)).await;
    assert!(
        metrics.contains("flameshift_rejects_total{reason=\"bad_request\"} 16"),
        "{metrics}"
    );
    assert!(
        metrics.contains("flameshift_rejects_total{reason=\"too_large\"} 1"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::on(dir.path()).await;
    let url = &server.url;
    let body = pprof(&[S {
        stack: &["main"],
        labels: &[],
        count: 1,
        ns: 1,
    }]);
    assert_eq!(
        post(&format!("{url}/api/v1/profiles?service=shop&deploy=v1"), body)
            .await
            .0,
        200
    );
    for (path, status, needle) in [
        ("/api/v1/flamegraph?service=nope", 404, "unknown service `nope`"),
        ("/api/v1/services/nope/deploys", 404, "unknown service `nope`"),
        (
            "/api/v1/flamegraph?service=shop&deploy=v9",
            404,
            "unknown deploy `v9`",
        ),
        (
            "/api/v1/diff?service=shop&base=v1&candidate=v2",
            404,
            "unknown deploy `v2`",
        ),
        ("/api/v1/flamegraph", 400, "missing parameter `service`"),
        (
            "/api/v1/flamegraph?service=shop&format=gif",
            400,
            "unknown format `gif`",
        ),
        (
            "/api/v1/functions?service=shop&label=novalue",
            400,
            "must be key=value",
        ),
        (
            "/api/v1/functions?service=shop&order=sideways",
            400,
            "unknown order",
        ),
        ("/api/v1/series?service=shop&window=soon", 400, "not a duration"),
        (
            "/api/v1/functions?service=shop&from=yesterday",
            400,
            "not an integer",
        ),
        ("/api/v1/nothing-here", 404, "no such route"),
    ] {
        let (got, answer) = get(&format!("{url}{path}")).await;
        assert_eq!(got, status, "{path}: {answer}");
        let message = answer["error"].as_str().unwrap_or_default();
        assert!(
            message.contains(needle),
            "{path}: {message:?} should mention {needle:?}"
        );
    }
    server.stop().await;
}
