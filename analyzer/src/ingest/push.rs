//! Pyroscope's push API, `POST /push.v1.PusherService/Push` (the Connect
//! protocol, as the Pyroscope SDKs and Grafana Alloy's `pyroscope.write`
//! send it): a `PushRequest` of series, each a label set and raw pprof
//! profiles. Read as protobuf (`application/proto`) or Connect's JSON
//! (`application/json`, raw profiles in base64).
//!
//! Labels: `service_name` is the service (else the application part of
//! `__name__`), `version` the deploy (else `deploy`, else `unknown`),
//! `host`/`hostname`/`instance` the host; `__name__` names the profile
//! type and must be a CPU one (`process_cpu`, `cpu`, `itimer`; memory,
//! lock and wall-clock profiles are refused); labels the SDKs
//! add about themselves (`__*`, `otel.*`, `process.*`) are dropped; the
//! rest become sample labels.

use std::collections::BTreeMap;

use base64::Engine as _;
use flameshift_profile::format;
use serde::Deserialize;

use super::{check_name, check_time, profile_rows, Identity, Limits, Upload};
use crate::model::Batch;
use crate::{Error, Result};

/// The push request (`push/v1/push.proto`).
#[derive(Clone, PartialEq, prost::Message)]
struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    series: Vec<RawProfileSeries>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RawProfileSeries {
    #[prost(message, repeated, tag = "1")]
    labels: Vec<LabelPair>,
    #[prost(message, repeated, tag = "2")]
    samples: Vec<RawSample>,
}

#[derive(Clone, PartialEq, prost::Message, Deserialize)]
struct LabelPair {
    #[prost(string, tag = "1")]
    #[serde(default)]
    name: String,
    #[prost(string, tag = "2")]
    #[serde(default)]
    value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RawSample {
    #[prost(bytes = "vec", tag = "1")]
    raw_profile: Vec<u8>,
    #[prost(string, tag = "2")]
    id: String,
}

/// Connect's JSON form of the same messages.
#[derive(Deserialize)]
struct JsonRequest {
    #[serde(default)]
    series: Vec<JsonSeries>,
}

#[derive(Deserialize)]
struct JsonSeries {
    #[serde(default)]
    labels: Vec<LabelPair>,
    #[serde(default)]
    samples: Vec<JsonSample>,
}

#[derive(Deserialize)]
struct JsonSample {
    #[serde(rename = "rawProfile", alias = "raw_profile", default)]
    raw_profile: String,
}

/// Profile types (`__name__`) that measure CPU time.
const CPU_TYPES: &[&str] = &["process_cpu", "cpu", "itimer"];

/// Label keys that say who sent, not what ran: dropped.
fn is_sdk_label(key: &str) -> bool {
    key.starts_with("__") || key.starts_with("otel.") || key.starts_with("process.")
}

/// The upload parameter the handler puts the request's `Content-Type` in
/// (kept with the body in the write-ahead log, to decode it again).
pub const CONTENT_TYPE: &str = "content_type";

fn decode_request(upload: &Upload, limits: &Limits) -> Result<PushRequest> {
    let json = upload
        .params
        .get(CONTENT_TYPE)
        .is_some_and(|t| t.starts_with("application/json"));
    // `Content-Encoding: gzip` (as the SDKs send): told by its magic bytes.
    let body = if upload.body.starts_with(&[0x1f, 0x8b]) {
        std::borrow::Cow::Owned(format::gunzip(&upload.body, limits.max_decompressed)?)
    } else {
        std::borrow::Cow::Borrowed(upload.body.as_slice())
    };
    if !json {
        return <PushRequest as prost::Message>::decode(&*body)
            .map_err(|e| Error::bad(format!("malformed push request (protobuf): {e}")));
    }
    let request: JsonRequest = serde_json::from_slice(&body)
        .map_err(|e| Error::bad(format!("malformed push request (JSON): {e}")))?;
    let series = request
        .series
        .into_iter()
        .map(|s| {
            let samples = s
                .samples
                .into_iter()
                .map(|sample| {
                    let raw_profile = base64::engine::general_purpose::STANDARD
                        .decode(sample.raw_profile.as_bytes())
                        .map_err(|e| Error::bad(format!("rawProfile is not base64: {e}")))?;
                    Ok(RawSample {
                        raw_profile,
                        id: String::new(),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(RawProfileSeries {
                labels: s.labels,
                samples,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(PushRequest { series })
}

/// The service, deploy, host and labels of one series.
fn series_identity(labels: &[LabelPair]) -> Result<(String, String, String, BTreeMap<String, String>)> {
    let mut map: BTreeMap<&str, &str> = BTreeMap::new();
    for label in labels {
        map.insert(&label.name, &label.value);
    }
    let profile_type = map.get("__name__").copied().unwrap_or("process_cpu");
    let (app, kind) = profile_type.rsplit_once('.').unwrap_or(("", profile_type));
    if !CPU_TYPES.contains(&kind) {
        return Err(Error::bad(format!(
            "profile type {profile_type:?} is not a CPU profile (flameshift takes {})",
            CPU_TYPES.join(", ")
        )));
    }
    let service = map
        .get("service_name")
        .copied()
        .or((!app.is_empty()).then_some(app))
        .ok_or_else(|| Error::bad("push series without a service_name label"))?
        .to_owned();
    check_name("service", &service)?;
    let pick = |keys: &[&str], default: &str| {
        keys.iter()
            .find_map(|k| map.get(k).copied())
            .unwrap_or(default)
            .to_owned()
    };
    let deploy = pick(&["version", "deploy"], "unknown");
    let host = pick(&["host", "hostname", "instance"], "unknown");
    check_name("deploy", &deploy)?;
    check_name("host", &host)?;
    let identity_keys = [
        "service_name",
        "version",
        "deploy",
        "host",
        "hostname",
        "instance",
    ];
    let mut tags = BTreeMap::new();
    for (key, value) in map {
        if !is_sdk_label(key) && !identity_keys.contains(&key) {
            super::check_label(key, value)?;
            tags.insert(key.to_owned(), value.to_owned());
        }
    }
    Ok((service, deploy, host, tags))
}

/// The push as one body per service, for a push that carries several
/// (Grafana Alloy forwards many applications' profiles together); parts
/// are protobuf whatever the request was. A push of one service comes
/// back as it is, with `None`; parts come with `Some("application/proto")`,
/// their content type.
pub fn split_by_service(
    content_type: &str,
    body: &[u8],
    limits: &Limits,
) -> Result<(Option<&'static str>, Vec<Vec<u8>>)> {
    let upload = Upload {
        kind: super::UploadKind::Push,
        params: BTreeMap::from([(CONTENT_TYPE.to_owned(), content_type.to_owned())]),
        received_ms: 0,
        key: None,
        body: body.to_vec(),
    };
    let request = decode_request(&upload, limits)?;
    let service_of = |series: &RawProfileSeries| {
        let label = |name: &str| {
            series
                .labels
                .iter()
                .find(|l| l.name == name)
                .map(|l| l.value.clone())
        };
        label("service_name")
            .or_else(|| label("__name__").and_then(|n| n.rsplit_once('.').map(|(app, _)| app.to_owned())))
    };
    let mut groups: BTreeMap<Option<String>, Vec<RawProfileSeries>> = BTreeMap::new();
    for series in request.series {
        groups.entry(service_of(&series)).or_default().push(series);
    }
    if groups.len() <= 1 {
        return Ok((None, vec![upload.body]));
    }
    let parts = groups
        .into_values()
        .map(|series| prost::Message::encode_to_vec(&PushRequest { series }))
        .collect();
    Ok((Some("application/proto"), parts))
}

/// The rows of a push request: every raw profile of every series, all of
/// one service.
pub(super) fn push_upload(upload: &Upload, limits: &Limits) -> Result<Batch> {
    let request = decode_request(upload, limits)?;
    let mut out: Option<Batch> = None;
    for series in &request.series {
        let (service, deploy, host, tags) = series_identity(&series.labels)?;
        for sample in &series.samples {
            let profile = format::pprof::read(&sample.raw_profile, limits.max_decompressed)?;
            let time_ms = match profile.time_nanos / 1_000_000 {
                t if t > 0 => t,
                _ => upload.received_ms,
            };
            let id = Identity {
                service: service.clone(),
                deploy: deploy.as_str().into(),
                host: host.as_str().into(),
                time_ms: check_time(time_ms, upload.received_ms)?,
                tags: tags.clone(),
            };
            super::add_profile_rows(&mut out, profile_rows(&profile, &id, limits)?)?;
        }
    }
    out.ok_or_else(|| Error::bad("push request without profiles"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(body: Vec<u8>) -> Upload {
        Upload {
            kind: super::super::UploadKind::Push,
            params: BTreeMap::from([(CONTENT_TYPE.to_owned(), "application/proto".to_owned())]),
            received_ms: 1_800_000_000_000,
            key: None,
            body,
        }
    }

    /// The captured request, decompressed: mutated bytes must decode or
    /// fail with an error, never panic (the fuzzing the pprof reader gets,
    /// deterministic and in every test run).
    #[test]
    fn mutated_push_requests_never_panic() {
        let captured = include_bytes!("../../../fixtures/pyroscope-push/pyspy-python.pb.gz");
        let plain = format::gunzip(captured, 1 << 20).unwrap();
        let limits = Limits::default();
        assert!(push_upload(&upload(plain.clone()), &limits).is_ok());
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut refused, mut taken) = (0, 0);
        for _ in 0..3_000 {
            let mut body = plain.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() % body.len() as u64) as usize;
                body[at] = next() as u8;
            }
            if next() % 4 == 0 {
                body.truncate((next() % body.len() as u64) as usize);
            }
            match push_upload(&upload(body), &limits) {
                Ok(_) => taken += 1,
                Err(e) => {
                    assert!(
                        matches!(e, Error::BadRequest(_) | Error::Profile(_) | Error::MixedUnits(_)),
                        "{e:?}"
                    );
                    refused += 1;
                }
            }
        }
        assert!(refused > 100 && taken > 100, "{refused} refused, {taken} taken");
    }
}
