//! Decoding other producers' bodies against pprof, on the same profile:
//! OpenTelemetry's OTLP (fixtures/otlp-profiles, from its Python SDK)
//! and Pyroscope's push (fixtures/pyroscope-push, from `pyroscope-io`),
//! each beside the same profile as gzipped pprof through
//! `POST /api/v1/profiles`'s decoder. Each measures body in, rows out.
//!
//! ```text
//! cargo bench -p flameshift-analyzer --bench decode
//! ```

#![allow(clippy::unwrap_used, reason = "a benchmark of fixed inputs")]

use std::collections::BTreeMap;

use criterion::{criterion_group, criterion_main, Criterion};
use flameshift_analyzer::ingest::{self, otlp, Limits, Upload, UploadKind, PUSH_CONTENT_TYPE};
use flameshift_analyzer::profile::format;

const OTLP: &[u8] = include_bytes!("../../fixtures/otlp-profiles/python-sdk.pb.gz");
const PUSH: &[u8] = include_bytes!("../../fixtures/pyroscope-push/pyspy-python.pb.gz");

fn upload(kind: UploadKind, params: &[(&str, &str)], body: Vec<u8>) -> Upload {
    Upload {
        kind,
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        // The fixtures' own time, so that none is refused as too old.
        received_ms: 1_796_460_890_000,
        key: None,
        body,
    }
}

/// `profile` as a `/api/v1/profiles` upload (gzipped pprof).
fn as_pprof(profile: &flameshift_analyzer::profile::Profile) -> Upload {
    let mut body = Vec::new();
    format::pprof::write(profile, &mut body).unwrap();
    let time_ms = (profile.time_nanos / 1_000_000).to_string();
    upload(
        UploadKind::Profile,
        &[
            ("service", "s"),
            ("deploy", "v1"),
            ("host", "h"),
            ("time_ms", &time_ms),
        ],
        body,
    )
}

fn decode(c: &mut Criterion) {
    let limits = Limits::default();
    let otlp_upload = upload(UploadKind::Otlp, &[(otlp::WALL_AS_CPU, "true")], OTLP.to_vec());
    let profile = otlp::profiles(&otlp_upload, &limits).unwrap().remove(0);
    let otlp_pprof = as_pprof(&profile);
    let push_upload = upload(
        UploadKind::Push,
        &[(PUSH_CONTENT_TYPE, "application/proto")],
        PUSH.to_vec(),
    );
    // The push's raw profile is pprof: the same profile, read by the
    // pprof reader and written again as one upload.
    let series =
        format::pyroscope_push::decode(PUSH, format::pyroscope_push::Encoding::Protobuf, 1 << 24).unwrap();
    let push_pprof = as_pprof(&format::pprof::read(&series[0].profiles[0], 1 << 24).unwrap());
    for (name, upload) in [
        ("otlp (python sdk)", &otlp_upload),
        ("pprof of the otlp profile", &otlp_pprof),
        ("push (pyroscope-io)", &push_upload),
        ("pprof of the push profile", &push_pprof),
    ] {
        assert!(
            ingest::decode(upload, &limits).unwrap().sample_count() > 0,
            "{name}"
        );
        c.bench_function(name, |b| b.iter(|| ingest::decode(upload, &limits).unwrap()));
    }
}

criterion_group!(benches, decode);
criterion_main!(benches);
