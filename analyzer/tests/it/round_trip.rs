//! Upload → query round trips through a real server: every count and
//! value exact.

use flameshift_analyzer::regressions::FileBook;

use super::*;

on_every_store!(
    profiles_requests_and_deploys_round_trip_exactly,
    sixteen_concurrent_uploaders_lose_nothing_across_flushes,
    pyroscope_clients_can_send_folded_and_pprof,
);

const MS: i64 = 1_000_000;

async fn upload_shop(url: &str, deploy: &str, parse_ms: i64) {
    let body = pprof(&[
        S {
            stack: &["main", "handle", "parse"],
            labels: &[("endpoint", "GET /a")],
            count: 3,
            ns: parse_ms * MS,
        },
        S {
            stack: &["main", "handle", "render"],
            labels: &[("endpoint", "GET /a"), ("region", "eu")],
            count: 1,
            ns: 10 * MS,
        },
        S {
            stack: &["main", "gc"],
            labels: &[],
            count: 2,
            ns: 20 * MS,
        },
    ]);
    let (status, receipt) = post(
        &format!("{url}/api/v1/profiles?service=shop&deploy={deploy}&host=h1"),
        body,
    )
    .await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(receipt["samples"], 6);
}

async fn profiles_requests_and_deploys_round_trip_exactly(place: Place) {
    let server = place.server().await;
    let url = server.url.clone();
    upload_shop(&url, "v1", 30).await;
    let start_ms = now_ms() - 5_000;
    let requests = serde_json::json!({
        "service": "shop", "deploy": "v1", "host": "h1", "unit": "cpu_ns",
        "start_ms": start_ms, "duration_ms": 10_000,
        "endpoints": [{"endpoint": "GET /a", "count": 4, "cost_sum": 40 * MS, "histogram": [[180, 4]]}]
    });
    let (status, body) = post(
        &format!("{url}/api/v1/requests"),
        requests.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let event = serde_json::json!({"service": "shop", "deploy": "v1", "commit": "abc123", "author": "ana", "message": "first"});
    let (status, body) = post(&format!("{url}/api/v1/deploys"), event.to_string().into_bytes()).await;
    assert_eq!(status, 200, "{body}");

    // Top functions of one endpoint, per request.
    let (status, top) = get(&format!(
        "{url}/api/v1/functions?service=shop&deploy=v1&endpoint=GET%20%2Fa"
    ))
    .await;
    assert_eq!(status, 200, "{top}");
    assert_eq!(top["unit"], "cpu_ns");
    assert_eq!(top["total"], 40 * MS);
    assert_eq!(top["samples"], 4);
    assert_eq!(top["requests"], 4);
    assert_eq!(top["functions"][0]["name"], "parse");
    assert_eq!(top["functions"][0]["self_value"], 30 * MS);
    assert_eq!(top["functions"][0]["self_share"], 0.75);
    assert_eq!(top["functions"][0]["self_per_request"], 7.5e6);
    let handle = top["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "handle")
        .unwrap();
    assert_eq!(handle["inclusive_value"], 40 * MS);
    assert_eq!(handle["self_value"], 0);

    // The whole service as a flame graph tree, then as folded and pprof.
    let (_, tree) = get(&format!("{url}/api/v1/flamegraph?service=shop")).await;
    assert_eq!(tree["root"]["value"], 60 * MS);
    assert_eq!(tree["samples"], 6);
    assert_eq!(tree["root"]["children"][0]["name"], "main");
    let (status, folded) = get_text(&format!("{url}/api/v1/flamegraph?service=shop&format=folded")).await;
    assert_eq!(status, 200);
    let mut lines: Vec<&str> = folded.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "main;gc 20000000",
            "main;handle;parse 30000000",
            "main;handle;render 10000000"
        ]
    );
    let bytes = client()
        .get(format!("{url}/api/v1/flamegraph?service=shop&format=pprof"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let profile = format::pprof::read(&bytes, 1 << 30).unwrap();
    assert_eq!((profile.total(0), profile.total(1)), (6, 60 * MS));
    let (status, svg) = get_text(&format!("{url}/api/v1/flamegraph?service=shop&format=svg")).await;
    assert_eq!(status, 200);
    assert!(
        svg.starts_with("<?xml") && svg.contains("parse"),
        "{}",
        &svg[..200]
    );

    // Label filter.
    let (_, eu) = get(&format!("{url}/api/v1/functions?service=shop&label=region%3Deu")).await;
    assert_eq!(eu["total"], 10 * MS);
    assert_eq!(eu["functions"][0]["name"], "render");

    // Series: cost per request of the endpoint and of one function.
    let (_, series) = get(&format!(
        "{url}/api/v1/series?service=shop&endpoint=GET%20%2Fa&window=1d"
    ))
    .await;
    let points = series["points"].as_array().unwrap();
    assert_eq!(points.len(), 1, "{series}");
    assert_eq!(points[0]["deploy"], "v1");
    assert_eq!(points[0]["requests"], 4);
    assert_eq!(points[0]["cost"], 40 * MS);
    assert_eq!(points[0]["cost_per_request"], 1e7);
    assert_eq!(points[0]["measured_per_request"], 1e7);
    let (_, parse) = get(&format!(
        "{url}/api/v1/series?service=shop&endpoint=GET%20%2Fa&window=1d&function=parse"
    ))
    .await;
    assert_eq!(parse["points"][0]["cost_per_request"], 7.5e6);

    // Every endpoint's cost per request; work outside requests is `""`.
    let (status, endpoints) = get(&format!("{url}/api/v1/endpoints?service=shop&window=1d")).await;
    assert_eq!(status, 200, "{endpoints}");
    let lines = endpoints["endpoints"].as_array().unwrap();
    assert_eq!(lines.len(), 2, "{endpoints}");
    assert_eq!(
        (
            lines[0]["endpoint"].as_str(),
            lines[0]["requests"].as_i64(),
            lines[0]["cost"].as_i64()
        ),
        (Some("GET /a"), Some(4), Some(40 * MS))
    );
    assert_eq!(lines[0]["points"][0]["cost_per_request"], 1e7);
    assert_eq!(
        (lines[1]["endpoint"].as_str(), lines[1]["cost"].as_i64()),
        (Some(""), Some(20 * MS))
    );

    // Deploys with their event; services with their totals.
    let (_, deploys) = get(&format!("{url}/api/v1/services/shop/deploys")).await;
    let v1 = &deploys["deploys"][0];
    assert_eq!(
        (
            v1["deploy"].as_str(),
            v1["samples"].as_i64(),
            v1["requests"].as_i64()
        ),
        (Some("v1"), Some(6), Some(4))
    );
    assert_eq!(v1["event"]["commit"], "abc123");
    let (_, services) = get(&format!("{url}/api/v1/services")).await;
    assert_eq!(services["services"][0]["service"], "shop");
    assert_eq!(services["services"][0]["units"][0], "cpu_ns");

    // A second deploy and the diff between them.
    upload_shop(&url, "v2", 60).await;
    let (status, diff) = get(&format!(
        "{url}/api/v1/diff?service=shop&base=v1&candidate=v2&format=json"
    ))
    .await;
    assert_eq!(status, 200, "{diff}");
    assert_eq!(
        (diff["base_total"].as_i64(), diff["candidate_total"].as_i64()),
        (Some(60 * MS), Some(90 * MS))
    );
    let parse_row = diff["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["stack"] == "main;handle;parse")
        .unwrap();
    assert_eq!(
        (parse_row["base"].as_i64(), parse_row["candidate"].as_i64()),
        (Some(30 * MS), Some(60 * MS))
    );
    // The dashboard's tree: v2 counted no requests, so the baseline is
    // scaled by totals (90 / 60); with 5 nodes at most, the threshold is
    // 90 / 5 = 18 ms and only `render` (15 ms scaled, then 10 ms: a change
    // of 5 ms) is pruned.
    let (status, tree) = get(&format!(
        "{url}/api/v1/diff?service=shop&base=v1&candidate=v2&format=tree&max_nodes=5"
    ))
    .await;
    assert_eq!(status, 200, "{tree}");
    assert_eq!(
        (tree["scale"].as_f64(), tree["per_request"].as_bool()),
        (Some(1.5), Some(false))
    );
    assert_eq!(tree["pruned_nodes"], 1, "{tree}");
    let main = &tree["root"]["children"][0];
    let names: Vec<&str> = main["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["handle", "gc"]);
    let parse_node = &main["children"][0]["children"][0];
    assert_eq!(
        (
            parse_node["name"].as_str(),
            parse_node["base"].as_i64(),
            parse_node["candidate"].as_i64()
        ),
        (Some("parse"), Some(30 * MS), Some(60 * MS))
    );
    assert_eq!(main["children"][0]["children"].as_array().unwrap().len(), 1);
    let (status, svg) = get_text(&format!("{url}/api/v1/diff?service=shop&base=v1&candidate=v2")).await;
    assert_eq!(status, 200);
    assert!(svg.contains("<svg"));

    // The same answers after the store's housekeeping (a flush to
    // Parquet) and after a restart.
    server.store.maintain().unwrap();
    let (_, after_flush) = get(&format!(
        "{url}/api/v1/functions?service=shop&deploy=v1&endpoint=GET%20%2Fa"
    ))
    .await;
    assert_eq!(after_flush, top);
    server.stop().await;
    let server = place.server().await;
    let (_, after_restart) = get(&format!(
        "{}/api/v1/functions?service=shop&deploy=v1&endpoint=GET%20%2Fa",
        server.url
    ))
    .await;
    assert_eq!(after_restart, top);
    let (_, metrics) = get_text(&format!("{}/metrics", server.url)).await;
    let gauge = match place {
        Place::Dir(_) => "flameshift_parquet_files ",
        Place::ClickHouse(_) => "flameshift_cached_stacks ",
    };
    assert!(metrics.contains(gauge), "{metrics}");
    server.stop().await;
}

async fn sixteen_concurrent_uploaders_lose_nothing_across_flushes(place: Place) {
    let mut config = test_config();
    config.flush_interval = Duration::from_millis(50);
    let server = TestServer::start(config, place.backend(4)).await;
    let mut tasks = Vec::new();
    for uploader in 0..16 {
        let url = server.url.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                let leaf = format!("f{}", (uploader + i) % 7);
                let body = pprof(&[
                    S {
                        stack: &["main", &leaf],
                        labels: &[("endpoint", "GET /x")],
                        count: 2,
                        ns: 7,
                    },
                    S {
                        stack: &["main"],
                        labels: &[],
                        count: 3,
                        ns: 11,
                    },
                ]);
                let host = format!("host{uploader}");
                let (status, body) = post(
                    &format!("{url}/api/v1/profiles?service=busy&deploy=v1&host={host}"),
                    body,
                )
                .await;
                assert_eq!(status, 200, "{body}");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let (_, top) = get(&format!(
        "{}/api/v1/functions?service=busy&order=inclusive",
        server.url
    ))
    .await;
    assert_eq!(top["samples"], 160 * 5);
    assert_eq!(top["total"], 160 * (7 + 11));
    assert_eq!(top["functions"][0]["name"], "main");
    assert_eq!(top["functions"][0]["inclusive_value"], 160 * 18);
    server.stop().await;
    let server = place.server().await;
    let (_, again) = get(&format!(
        "{}/api/v1/functions?service=busy&order=inclusive",
        server.url
    ))
    .await;
    assert_eq!(again, top);
    server.stop().await;
}

async fn pyroscope_clients_can_send_folded_and_pprof(place: Place) {
    let server = place.server().await;
    let from = now_ms() / 1000 - 10;
    let url = format!(
        "{}/ingest?name=legacy.cpu%7Bversion%3D1.2%2Cendpoint%3DGET%20%2Fz%7D&from={from}&until={}&format=folded&sampleRate=100",
        server.url,
        from + 10
    );
    let (status, body) = post(&url, b"main;work 7\nmain;idle 3\n".to_vec()).await;
    assert_eq!(status, 200, "{body}");
    let (_, top) = get(&format!(
        "{}/api/v1/functions?service=legacy&deploy=1.2&endpoint=GET%20%2Fz",
        server.url
    ))
    .await;
    assert_eq!(top["samples"], 10);
    assert_eq!(top["total"], 10 * 10_000_000, "100 Hz: 10 ms per sample");
    // Multipart pprof, as the Go client sends it.
    let profile = pprof(&[S {
        stack: &["main", "serve"],
        labels: &[],
        count: 5,
        ns: 50,
    }]);
    let mut multipart =
        b"--B\r\nContent-Disposition: form-data; name=\"profile\"; filename=\"profile.pprof\"\r\n\r\n"
            .to_vec();
    multipart.extend_from_slice(&profile);
    multipart.extend_from_slice(b"\r\n--B--\r\n");
    let response = client()
        .post(format!(
            "{}/ingest?name=gosvc.cpu%7Bdeploy%3Dv3%7D&from={from}&format=pprof",
            server.url
        ))
        .header("content-type", "multipart/form-data; boundary=B")
        .body(multipart)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        200,
        "{}",
        response.text().await.unwrap()
    );
    let (_, top) = get(&format!(
        "{}/api/v1/functions?service=gosvc&deploy=v3",
        server.url
    ))
    .await;
    assert_eq!(
        (top["samples"].as_i64(), top["total"].as_i64()),
        (Some(5), Some(50))
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_guards_every_route_but_healthz() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config();
    config.token = Some("s3cret".into());
    let disk_store = Arc::new(DiskStore::open(StoreConfig::new(dir.path())).unwrap());
    let backend = Backend {
        store: disk_store.clone(),
        regressions: Arc::new(FileBook::open(dir.path()).unwrap()),
    };
    let server = TestServer::start(config, backend).await;
    let services = format!("{}/api/v1/services", server.url);
    assert_eq!(
        client().get(&services).send().await.unwrap().status().as_u16(),
        401
    );
    let wrong = client().get(&services).bearer_auth("guess").send().await.unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    assert!(wrong.text().await.unwrap().contains("\"error\""));
    let upload = client()
        .post(format!("{}/api/v1/profiles?service=s&deploy=d", server.url))
        .body(pprof(&[S {
            stack: &["main"],
            labels: &[],
            count: 1,
            ns: 1,
        }]))
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status().as_u16(), 401);
    assert_eq!(
        client()
            .get(&services)
            .bearer_auth("s3cret")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        client()
            .get(format!("{}/healthz", server.url))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    let metrics = client()
        .get(format!("{}/metrics", server.url))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert!(metrics
        .text()
        .await
        .unwrap()
        .contains("flameshift_rejects_total{reason=\"unauthorized\"} 3"));
    // Nothing of the refused upload was stored.
    assert_eq!(disk_store.stats().head_rows, 0);
    server.stop().await;
}
