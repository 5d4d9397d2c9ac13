//! OpenTelemetry profiles over OTLP/HTTP (`POST /v1development/profiles`),
//! with a body captured from OpenTelemetry's Python profiling SDK
//! (fixtures/otlp-profiles/make.sh), on every store: the service,
//! deploy, labels and functions arrive; an export of two services is
//! stored under each; a bad one stores nothing.

use super::*;

on_every_store!(the_python_sdks_export_arrives_with_its_service_version_and_functions);

fn captured() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/otlp-profiles/python-sdk.pb.gz"
    ))
    .unwrap()
}

async fn export(url: &str, body: Vec<u8>) -> (u16, Vec<u8>, String) {
    let response = client()
        .post(format!("{url}/v1development/profiles"))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, response.bytes().await.unwrap().to_vec(), content_type)
}

async fn the_python_sdks_export_arrives_with_its_service_version_and_functions(place: Place) {
    let mut config = test_config();
    config.otlp.wall_as_cpu = true;
    let server = TestServer::start(config, place.backend(8)).await;
    let (status, body, content_type) = export(&server.url, captured()).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(content_type, "application/x-protobuf");
    assert!(body.is_empty(), "an empty ExportProfilesServiceResponse");
    let (status, top) = get(&format!(
        "{}/api/v1/functions?service=pyotel&deploy=v3&label=region=eu",
        server.url
    ))
    .await;
    assert_eq!(status, 200, "{top}");
    assert!(top["samples"].as_i64().unwrap() > 100, "{top}");
    let names: Vec<&str> = top["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(names[..3].contains(&"busy_hash"), "{names:?}");

    // Bad bodies: a 400 that names the problem, nothing stored.
    let (status, body, _) = export(&server.url, b"\x0a\xff\xff".to_vec()).await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("malformed OTLP"));
    let (_, services) = get(&format!("{}/api/v1/services", server.url)).await;
    assert_eq!(services["services"].as_array().unwrap().len(), 1, "{services}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wall_clock_profiles_are_refused_by_default_and_json_is_not_taken() {
    let place = Place::dir();
    let server = place.server().await;
    let (status, body, _) = export(&server.url, captured()).await;
    assert_eq!(status, 400);
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("wall") && text.contains("--otlp-wall-as-cpu"),
        "{text}"
    );
    let response = client()
        .post(format!("{}/v1development/profiles", server.url))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);
    let (_, services) = get(&format!("{}/api/v1/services", server.url)).await;
    assert_eq!(services["services"].as_array().unwrap().len(), 0, "{services}");
    server.stop().await;
}
