//! Pyroscope's push API (`POST /push.v1.PusherService/Push`), with a body
//! captured from the real Python SDK (`pyroscope-io` 1.4.0, py-spy inside;
//! fixtures/pyroscope-push/make.sh), and its bad inputs.

use base64::Engine as _;

use super::*;

on_every_store!(the_python_sdks_push_arrives_with_its_service_version_and_functions);

/// What `pyroscope-io` sent: a gzipped protobuf `PushRequest` of a
/// program spending its time in `busy_hash` and `slow_sort`, tagged
/// `version=v7`, `region=eu`, as application `pyapp`.
fn captured() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/pyroscope-push/pyspy-python.pb.gz"
    ))
    .unwrap()
}

async fn push(url: &str, content_type: &str, body: Vec<u8>) -> (u16, String) {
    let response = client()
        .post(format!("{url}/push.v1.PusherService/Push"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn functions(url: &str, query: &str) -> serde_json::Value {
    let (status, top) = get(&format!("{url}/api/v1/functions?{query}")).await;
    assert_eq!(status, 200, "{top}");
    top
}

async fn the_python_sdks_push_arrives_with_its_service_version_and_functions(place: Place) {
    let server = place.server().await;
    let (status, body) = push(&server.url, "application/proto", captured()).await;
    assert_eq!(status, 200, "{body}");
    let top = functions(&server.url, "service=pyapp&deploy=v7&label=region=eu").await;
    let names: Vec<&str> = top["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(top["samples"].as_i64().unwrap() > 100, "{top}");
    let busy = names
        .iter()
        .position(|n| n.starts_with("busy_hash"))
        .expect("busy_hash");
    assert!(names.iter().any(|n| n.starts_with("slow_sort")), "{names:?}");
    assert!(busy < 3, "the busiest function is near the top: {names:?}");
    // The SDK's own labels (otel.*, process.*) are not kept.
    let none = functions(&server.url, "service=pyapp&label=process.runtime.name=cpython").await;
    assert_eq!(none["samples"], 0, "{none}");
    server.stop().await;
}

/// The captured request's one raw profile, as Connect's JSON carries it.
fn as_json(labels: &[(&str, &str)]) -> Vec<u8> {
    as_json_series(&[labels])
}

/// A JSON push of one series per label set, each with the captured profile.
fn as_json_series(series: &[&[(&str, &str)]]) -> Vec<u8> {
    use prost_free::raw_profile;
    let raw = base64::engine::general_purpose::STANDARD.encode(raw_profile(&captured()));
    let series: Vec<serde_json::Value> = series
        .iter()
        .map(|labels| {
            let labels: Vec<serde_json::Value> = labels
                .iter()
                .map(|(name, value)| serde_json::json!({ "name": name, "value": value }))
                .collect();
            serde_json::json!({ "labels": labels, "samples": [{ "rawProfile": raw, "ID": "x" }] })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "series": series })).unwrap()
}

/// Reads the first raw profile out of a gzipped `PushRequest` by walking
/// the protobuf by hand (so the test does not share the decoder it tests).
mod prost_free {
    fn varint(b: &[u8], at: &mut usize) -> u64 {
        let mut value = 0;
        for shift in (0..64).step_by(7) {
            let byte = b[*at];
            *at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                break;
            }
        }
        value
    }

    /// The bytes of field `field` (length-delimited) of message `b`.
    fn field(b: &[u8], wanted: u64) -> &[u8] {
        let mut at = 0;
        while at < b.len() {
            let key = varint(b, &mut at);
            assert_eq!(key & 7, 2, "only length-delimited fields here");
            let len = varint(b, &mut at) as usize;
            if key >> 3 == wanted {
                return &b[at..at + len];
            }
            at += len;
        }
        panic!("no field {wanted}")
    }

    pub(super) fn raw_profile(gzipped: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gzipped), &mut body).unwrap();
        let series = field(&body, 1);
        let sample = field(series, 2);
        field(sample, 1).to_vec()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_json_is_read_too_and_bad_pushes_are_refused_naming_the_problem() {
    let place = Place::dir(); // kept: its directory lives as long as it
    let server = place.server().await;
    let labels = [
        ("service_name", "jsonapp"),
        ("version", "v1"),
        ("__name__", "process_cpu"),
    ];
    let (status, body) = push(&server.url, "application/json", as_json(&labels)).await;
    assert_eq!(status, 200, "{body}");
    let top = functions(&server.url, "service=jsonapp&deploy=v1").await;
    assert!(top["samples"].as_i64().unwrap() > 100, "{top}");

    let mut truncated = captured();
    truncated.truncate(truncated.len() / 2);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "application/proto",
            b"\x0a\xff\xff".to_vec(),
            "malformed push request (protobuf)",
        ),
        ("application/proto", truncated, "gzip"),
        (
            "application/json",
            b"{\"series\": 3}".to_vec(),
            "malformed push request (JSON)",
        ),
        (
            "application/json",
            as_json(&[("service_name", "x"), ("__name__", "memory")]),
            "is not a CPU profile",
        ),
        (
            "application/json",
            as_json(&[("__name__", "process_cpu")]),
            "without a service_name",
        ),
        (
            "application/json",
            as_json(&[("service_name", "x"), ("bad key", "v")]),
            "bad label key",
        ),
        ("application/proto", Vec::new(), "without profiles"),
        (
            "application/json",
            as_json_series(&[
                &[("service_name", "fine"), ("__name__", "process_cpu")],
                &[("service_name", "heap"), ("__name__", "memory")],
            ]),
            "is not a CPU profile",
        ),
    ];
    for (content_type, body, says) in cases {
        let (status, answer) = push(&server.url, content_type, body).await;
        assert_eq!(status, 400, "{says}: {answer}");
        assert!(answer.contains(says), "{says}: {answer}");
    }
    let (_, services) = get(&format!("{}/api/v1/services", server.url)).await;
    assert_eq!(
        services["services"].as_array().unwrap().len(),
        1,
        "nothing half-stored: {services}"
    );

    // Several services in one push (as Grafana Alloy forwards them): each
    // stored under its own.
    let two = as_json_series(&[
        &[("service_name", "cart"), ("version", "v2")],
        &[("__name__", "checkout.cpu"), ("version", "v9")],
    ]);
    let (status, body) = push(&server.url, "application/json", two).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"services\""), "{body}");
    for query in ["service=cart&deploy=v2", "service=checkout&deploy=v9"] {
        let top = functions(&server.url, query).await;
        assert!(top["samples"].as_i64().unwrap() > 100, "{query}: {top}");
    }
    server.stop().await;
}
