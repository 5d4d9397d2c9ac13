//! The tower layer in a real axum server on 127.0.0.1:0: exact counts per
//! route template, per-request CPU cost in the counter's unit, and the
//! `endpoint` label visible to the handler's own code.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use flameshift_collector::labels::{current, resolve};
use flameshift_collector::layer::{AxumRoute, CpuLayer};
use flameshift_collector::requests::RequestStats;

fn burn(ms: u64) {
    let end = std::time::Instant::now() + std::time::Duration::from_millis(ms);
    let mut x = 0u64;
    while std::time::Instant::now() < end {
        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
    }
}

async fn heavy(axum::extract::Path(ms): axum::extract::Path<u64>) -> String {
    burn(ms);
    tokio::task::yield_now().await; // a second poll, maybe on another worker
    burn(ms);
    resolve(current()).get("endpoint").unwrap_or("none").to_owned()
}

async fn light() -> String {
    resolve(current()).get("endpoint").unwrap_or("none").to_owned()
}

fn get_body(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

#[test]
fn counts_costs_and_labels_requests_per_route_template() {
    let _serial = crate::serial();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stats = Arc::new(RequestStats::default());
    let app = Router::new()
        .route("/heavy/{ms}", get(heavy))
        .route("/light", get(light))
        .layer(CpuLayer::new(stats.clone(), AxumRoute));
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });

    for _ in 0..5 {
        let (status, body) = get_body(addr, "/heavy/10");
        assert_eq!(
            (status, body.as_str()),
            (200, "GET /heavy/{ms}"),
            "the handler sees its endpoint label"
        );
    }
    for _ in 0..10 {
        assert_eq!(get_body(addr, "/light").1, "GET /light");
    }
    assert_eq!(get_body(addr, "/nowhere").0, 404);

    let snapshot = stats.snapshot();
    let heavy = &snapshot["GET /heavy/{ms}"];
    let light = &snapshot["GET /light"];
    assert_eq!((heavy.count, light.count), (5, 10), "{snapshot:?}");
    assert_eq!(snapshot["GET (unmatched)"].count, 1);
    // Each heavy request burns ~20 ms of CPU: in ns (task-clock) or
    // instructions, far above a light one.
    let per_heavy = heavy.cost_sum / heavy.count;
    let per_light = light.cost_sum / light.count;
    assert!(
        per_heavy > 10 * per_light.max(1),
        "heavy {per_heavy} vs light {per_light}"
    );
    let pmu = std::path::Path::new("/sys/bus/event_source/devices/cpu/events/instructions").exists();
    if !pmu {
        assert!(
            (15_000_000..60_000_000).contains(&per_heavy),
            "{per_heavy} ns for ~20 ms of CPU"
        );
    }
    assert!(heavy.costs.quantile(0.5) > 10_000_000 || pmu);
    runtime.shutdown_background();
}
