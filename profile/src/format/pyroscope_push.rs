//! Pyroscope's push request (`push/v1/push.proto`, what the Pyroscope
//! SDKs and Grafana Alloy's `pyroscope.write` send to
//! `POST /push.v1.PusherService/Push`): series, each a label set and raw
//! pprof profiles. Read as protobuf or as Connect's JSON (raw profiles
//! in base64), gzipped or not.
//!
//! ```
//! # fn main() -> flameshift_profile::Result<()> {
//! use flameshift_profile::format::pyroscope_push;
//! let body = include_bytes!("../../../fixtures/pyroscope-push/pyspy-python.pb.gz");
//! let series = pyroscope_push::decode(body, pyroscope_push::Encoding::Protobuf, 1 << 24)?;
//! assert!(series[0].labels.iter().any(|(k, _)| k == "service_name"));
//! let profile = pyroscope_push::read_merged(body, pyroscope_push::Encoding::Protobuf, 1 << 24)?;
//! assert!(profile.total(0) > 0);
//! # Ok(()) }
//! ```

use base64::Engine as _;
use prost::Message;
use serde::Deserialize;

use crate::{Error, Profile, Result};

/// How a push body is written: what its `Content-Type` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/proto` (and anything that is not JSON).
    Protobuf,
    /// `application/json`: Connect's JSON form.
    Json,
}

impl Encoding {
    /// The encoding a `Content-Type` names.
    pub fn of_content_type(content_type: &str) -> Encoding {
        if content_type.starts_with("application/json") {
            Encoding::Json
        } else {
            Encoding::Protobuf
        }
    }
}

/// One series of a push: its labels and its raw (pprof) profiles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Series {
    /// Label names and values, as sent (`__name__`, `service_name`…).
    pub labels: Vec<(String, String)>,
    /// The raw profiles, pprof bytes, gzipped or not.
    pub profiles: Vec<Vec<u8>>,
}

impl Series {
    /// The value of label `name`, if the series has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct PushRequest {
        #[prost(message, repeated, tag = "1")]
        pub series: Vec<RawProfileSeries>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct RawProfileSeries {
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<LabelPair>,
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<RawSample>,
    }

    #[derive(Clone, PartialEq, prost::Message, serde::Deserialize)]
    pub(super) struct LabelPair {
        #[prost(string, tag = "1")]
        #[serde(default)]
        pub name: String,
        #[prost(string, tag = "2")]
        #[serde(default)]
        pub value: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct RawSample {
        #[prost(bytes = "vec", tag = "1")]
        pub raw_profile: Vec<u8>,
        #[prost(string, tag = "2")]
        pub id: String,
    }
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
    labels: Vec<proto::LabelPair>,
    #[serde(default)]
    samples: Vec<JsonSample>,
}

#[derive(Deserialize)]
struct JsonSample {
    #[serde(rename = "rawProfile", alias = "raw_profile", default)]
    raw_profile: String,
}

fn malformed(what: &'static str, problem: impl ToString) -> Error {
    Error::Malformed {
        what,
        problem: problem.to_string(),
    }
}

/// Decodes a push body (gunzipped first when it starts with the gzip
/// magic, capped at `max_decompressed` bytes) into its series.
pub fn decode(body: &[u8], encoding: Encoding, max_decompressed: u64) -> Result<Vec<Series>> {
    let plain;
    let body = if super::is_gzip(body) {
        plain = super::gunzip(body, max_decompressed)?;
        &plain[..]
    } else {
        body
    };
    match encoding {
        Encoding::Protobuf => {
            let request =
                proto::PushRequest::decode(body).map_err(|e| malformed("push request (protobuf)", e))?;
            Ok(request
                .series
                .into_iter()
                .map(|s| Series {
                    labels: s.labels.into_iter().map(|l| (l.name, l.value)).collect(),
                    profiles: s.samples.into_iter().map(|r| r.raw_profile).collect(),
                })
                .collect())
        }
        Encoding::Json => {
            let request: JsonRequest =
                serde_json::from_slice(body).map_err(|e| malformed("push request (JSON)", e))?;
            request
                .series
                .into_iter()
                .map(|s| {
                    let profiles = s
                        .samples
                        .iter()
                        .map(|sample| {
                            base64::engine::general_purpose::STANDARD
                                .decode(sample.raw_profile.as_bytes())
                                .map_err(|e| malformed("push request (rawProfile is not base64)", e))
                        })
                        .collect::<Result<Vec<_>>>()?;
                    Ok(Series {
                        labels: s.labels.into_iter().map(|l| (l.name, l.value)).collect(),
                        profiles,
                    })
                })
                .collect()
        }
    }
}

/// Encodes series as a protobuf push body (uncompressed).
pub fn encode(series: &[Series]) -> Vec<u8> {
    proto::PushRequest {
        series: series
            .iter()
            .map(|s| proto::RawProfileSeries {
                labels: s
                    .labels
                    .iter()
                    .map(|(name, value)| proto::LabelPair {
                        name: name.clone(),
                        value: value.clone(),
                    })
                    .collect(),
                samples: s
                    .profiles
                    .iter()
                    .map(|raw| proto::RawSample {
                        raw_profile: raw.clone(),
                        id: String::new(),
                    })
                    .collect(),
            })
            .collect(),
    }
    .encode_to_vec()
}

/// Whether (decompressed) `bytes` are a protobuf push request: series
/// with labels whose first raw profile is pprof. Tried after OTLP, whose
/// requests can also decode as a push.
pub fn looks_like(bytes: &[u8]) -> bool {
    let Ok(request) = proto::PushRequest::decode(bytes) else {
        return false;
    };
    let first = request.series.first();
    first.is_some_and(|s| {
        !s.labels.is_empty()
            && s.samples.first().is_some_and(|raw| {
                super::is_gzip(&raw.raw_profile) || super::pprof::read(&raw.raw_profile, 1 << 28).is_ok()
            })
    })
}

/// Whether (decompressed, text) `bytes` look like a JSON push request.
pub fn looks_like_json(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    let text = text.trim_start();
    text.starts_with('{') && text.contains("\"series\"")
}

/// Every raw profile of every series merged into one (for `convert` and
/// the other file commands).
pub fn read_merged(body: &[u8], encoding: Encoding, max_decompressed: u64) -> Result<Profile> {
    let mut profiles = Vec::new();
    for series in decode(body, encoding, max_decompressed)? {
        for raw in &series.profiles {
            profiles.push(super::pprof::read(raw, max_decompressed)?);
        }
    }
    Profile::merge_all(profiles)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPTURED: &[u8] = include_bytes!("../../../fixtures/pyroscope-push/pyspy-python.pb.gz");

    #[test]
    fn a_push_reads_as_protobuf_and_as_json_alike() {
        let series = decode(CAPTURED, Encoding::Protobuf, 1 << 24).unwrap();
        assert!(
            series[0].label("service_name").is_some(),
            "{:?}",
            series[0].labels
        );
        let json = serde_json::json!({"series": series.iter().map(|s| serde_json::json!({
            "labels": s.labels.iter().map(|(k, v)| serde_json::json!({"name": k, "value": v})).collect::<Vec<_>>(),
            "samples": s.profiles.iter().map(|p| serde_json::json!({
                "rawProfile": base64::engine::general_purpose::STANDARD.encode(p)
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>()})
        .to_string();
        assert_eq!(decode(json.as_bytes(), Encoding::Json, 1 << 24).unwrap(), series);
        assert!(looks_like_json(json.as_bytes()));
        assert_eq!(
            decode(&encode(&series), Encoding::Protobuf, 1 << 24).unwrap(),
            series
        );
        let plain = super::super::gunzip(CAPTURED, 1 << 24).unwrap();
        assert!(looks_like(&plain));
        assert_eq!(
            super::super::detect(&plain).unwrap(),
            super::super::Format::PyroscopePush
        );
        assert_eq!(
            super::super::detect(json.as_bytes()).unwrap(),
            super::super::Format::PyroscopePush
        );
        let merged = read_merged(CAPTURED, Encoding::Protobuf, 1 << 24).unwrap();
        let first = super::super::pprof::read(&series[0].profiles[0], 1 << 24).unwrap();
        assert!(merged.total(0) >= first.total(0) && first.total(0) > 0);
    }

    #[test]
    fn bad_bodies_are_refused_naming_the_encoding() {
        let text = decode(
            b"{\"series\": [{\"samples\": [{\"rawProfile\": \"%%\"}]}]}",
            Encoding::Json,
            1 << 20,
        )
        .unwrap_err()
        .to_string();
        assert!(text.contains("base64"), "{text}");
        let text = decode(&[0x0a, 0x05, 0x0a], Encoding::Protobuf, 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(text.contains("push request (protobuf)"), "{text}");
    }
}
