//! The analyzer's decoders of other producers' bodies (OTLP profiles,
//! Pyroscope's push API in protobuf and JSON) must decode or refuse with
//! an error, never panic; what is split per service must decode the same.
#![no_main]

use std::collections::BTreeMap;

use flameshift_analyzer::ingest::{self, otlp, Limits, Upload, UploadKind, PUSH_CONTENT_TYPE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_decompressed: 16 << 20, ..Limits::default() };
    let upload = |kind, params: &[(&str, &str)], body: &[u8]| Upload {
        kind,
        params: params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        received_ms: 1_800_000_000_000,
        key: None,
        body: body.to_vec(),
    };
    let _ = ingest::decode(&upload(UploadKind::Otlp, &[(otlp::WALL_AS_CPU, "true")], data), &limits);
    if let Ok(parts) = otlp::split_by_service(data, &limits) {
        for part in parts {
            let _ = ingest::decode(&upload(UploadKind::Otlp, &[(otlp::WALL_AS_CPU, "true")], &part), &limits);
        }
    }
    for content_type in ["application/proto", "application/json"] {
        let _ = ingest::decode(&upload(UploadKind::Push, &[(PUSH_CONTENT_TYPE, content_type)], data), &limits);
        let _ = ingest::split_push_by_service(content_type, data, &limits);
    }
});
