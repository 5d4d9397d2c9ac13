//! OpenTelemetry profiles over OTLP/HTTP, `POST /v1development/profiles`
//! (what the OpenTelemetry eBPF profiler, the Collector's `otlphttp`
//! exporter and OpenTelemetry's Python profiling SDK send): an
//! `ExportProfilesServiceRequest` in protobuf, gzipped or not, in the
//! shape of opentelemetry-proto 1.9/1.10 (`v1development`: one shared
//! `ProfilesDictionary` of strings, functions, locations, mappings,
//! stacks and attributes that every profile points into by index).
//!
//! Mapping (docs/operations.md): resource `service.name` is the service
//! (required), `service.version` the deploy (or the resource attribute
//! the server names with `--otlp-deploy-attribute`; else `unknown`),
//! `host.name` the host; other resource and profile attributes become
//! labels, except those a producer adds about itself (`telemetry.*`,
//! `process.*`, `otel.*`, `host.*`, `os.*`) and identifiers (`*.id`,
//! `*_id`), which would make every sample its own series. String-valued
//! sample attributes (e.g. `thread.name`) become sample labels.
//!
//! Only CPU profiles are taken: a sample type in instructions or CPU
//! time, or sample counts with a period in CPU time or instructions. A
//! wall-clock profile (period `wall`, as the Python SDK's stack sampler
//! sends) is refused with a 400 naming it unless the server counts wall
//! time as CPU time (`--otlp-wall-as-cpu`: right for CPU-bound,
//! single-threaded programs, wrong where threads wait). Every dictionary
//! index is checked; a bad one is a 400 naming the field.

use std::collections::BTreeMap;

use flameshift_profile::{format, Frame, FrameId, Label, LabelValue, Period, Profile, SampleType, StrId};

use super::{check_label, check_name, check_time, profile_rows, Identity, Limits, Upload};
use crate::model::Batch;
use crate::{Error, Result};

/// The upload parameter naming the resource attribute that is the deploy.
pub const DEPLOY_ATTRIBUTE: &str = "otlp_deploy_attribute";
/// The upload parameter that is `true` when wall time counts as CPU time.
pub const WALL_AS_CPU: &str = "otlp_wall_as_cpu";

/// `ExportProfilesServiceRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ExportRequest {
    #[prost(message, repeated, tag = "1")]
    resource_profiles: Vec<ResourceProfiles>,
    #[prost(message, optional, tag = "2")]
    dictionary: Option<Dictionary>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ResourceProfiles {
    #[prost(message, optional, tag = "1")]
    resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    scope_profiles: Vec<ScopeProfiles>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Resource {
    #[prost(message, repeated, tag = "1")]
    attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct KeyValue {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(message, optional, tag = "2")]
    value: Option<AnyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct AnyValue {
    #[prost(oneof = "Value", tags = "1, 2, 3, 4")]
    value: Option<Value>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum Value {
    #[prost(string, tag = "1")]
    Str(String),
    #[prost(bool, tag = "2")]
    Bool(bool),
    #[prost(int64, tag = "3")]
    Int(i64),
    #[prost(double, tag = "4")]
    Double(f64),
}

impl AnyValue {
    /// The value as label text; arrays, maps and bytes have none.
    fn text(&self) -> Option<(String, bool)> {
        match self.value.as_ref()? {
            Value::Str(s) => Some((s.clone(), true)),
            Value::Bool(b) => Some((b.to_string(), false)),
            Value::Int(i) => Some((i.to_string(), false)),
            Value::Double(d) => Some((d.to_string(), false)),
        }
    }
}

#[derive(Clone, PartialEq, prost::Message)]
struct ScopeProfiles {
    #[prost(message, repeated, tag = "2")]
    profiles: Vec<OtlpProfile>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct OtlpProfile {
    #[prost(message, optional, tag = "1")]
    sample_type: Option<ValueType>,
    #[prost(message, repeated, tag = "2")]
    samples: Vec<Sample>,
    #[prost(fixed64, tag = "3")]
    time_unix_nano: u64,
    #[prost(uint64, tag = "4")]
    duration_nano: u64,
    #[prost(message, optional, tag = "5")]
    period_type: Option<ValueType>,
    #[prost(int64, tag = "6")]
    period: i64,
    #[prost(int32, repeated, tag = "11")]
    attribute_indices: Vec<i32>,
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
struct ValueType {
    #[prost(int32, tag = "1")]
    type_strindex: i32,
    #[prost(int32, tag = "2")]
    unit_strindex: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Sample {
    #[prost(int32, tag = "1")]
    stack_index: i32,
    #[prost(int64, repeated, tag = "2")]
    values: Vec<i64>,
    #[prost(int32, repeated, tag = "3")]
    attribute_indices: Vec<i32>,
    #[prost(fixed64, repeated, tag = "5")]
    timestamps_unix_nano: Vec<u64>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Dictionary {
    #[prost(message, repeated, tag = "1")]
    mapping_table: Vec<Mapping>,
    #[prost(message, repeated, tag = "2")]
    location_table: Vec<Location>,
    #[prost(message, repeated, tag = "3")]
    function_table: Vec<Function>,
    #[prost(string, repeated, tag = "5")]
    string_table: Vec<String>,
    #[prost(message, repeated, tag = "6")]
    attribute_table: Vec<KeyValueAndUnit>,
    #[prost(message, repeated, tag = "7")]
    stack_table: Vec<Stack>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Mapping {
    #[prost(int32, tag = "4")]
    filename_strindex: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Location {
    #[prost(int32, tag = "1")]
    mapping_index: i32,
    #[prost(uint64, tag = "2")]
    address: u64,
    #[prost(message, repeated, tag = "3")]
    lines: Vec<Line>,
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
struct Line {
    #[prost(int32, tag = "1")]
    function_index: i32,
    #[prost(int64, tag = "2")]
    line: i64,
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
struct Function {
    #[prost(int32, tag = "1")]
    name_strindex: i32,
    #[prost(int32, tag = "2")]
    system_name_strindex: i32,
    #[prost(int32, tag = "3")]
    filename_strindex: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Stack {
    #[prost(int32, repeated, tag = "1")]
    location_indices: Vec<i32>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct KeyValueAndUnit {
    #[prost(int32, tag = "1")]
    key_strindex: i32,
    #[prost(message, optional, tag = "2")]
    value: Option<AnyValue>,
}

/// Attribute keys that describe the producer or identify one thing:
/// dropped rather than made labels.
fn is_dropped_attribute(key: &str) -> bool {
    ["telemetry.", "process.", "otel.", "host.", "os.", "profiler."]
        .iter()
        .any(|p| key.starts_with(p))
        || key.ends_with(".id")
        || key.ends_with("_id")
}

/// Looks up `index` in `table`, or names the field that holds a bad one.
fn at<T>(table: &[T], index: i32, field: impl FnOnce() -> String) -> Result<&T> {
    usize::try_from(index)
        .ok()
        .and_then(|i| table.get(i))
        .ok_or_else(|| {
            Error::bad(format!(
                "OTLP {}: index {index} is out of range (the table has {})",
                field(),
                table.len()
            ))
        })
}

/// Reads one profile against the dictionary into flameshift's model.
struct Reader<'a> {
    dict: &'a Dictionary,
    profile: Profile,
    /// Each dictionary string's id in `profile`, made on first use.
    strings: Vec<Option<StrId>>,
    /// Each location's frames (root first), made on first use.
    locations: Vec<Option<Vec<FrameId>>>,
}

impl<'a> Reader<'a> {
    fn new(dict: &'a Dictionary, sample_type: SampleType) -> Reader<'a> {
        Reader {
            dict,
            profile: Profile::new(vec![sample_type]),
            strings: vec![None; dict.string_table.len()],
            locations: vec![None; dict.location_table.len()],
        }
    }

    fn text(&self, index: i32, field: impl FnOnce() -> String) -> Result<&'a str> {
        at(&self.dict.string_table, index, field).map(String::as_str)
    }

    fn string(&mut self, index: i32, field: impl FnOnce() -> String) -> Result<StrId> {
        let text = self.text(index, field)?;
        let slot = &mut self.strings[index as usize];
        Ok(*slot.get_or_insert_with(|| self.profile.intern_str(text)))
    }

    fn location(&mut self, index: i32) -> Result<&[FrameId]> {
        let location = at(&self.dict.location_table, index, || {
            "stack location index".to_owned()
        })?;
        let i = index as usize;
        if self.locations[i].is_none() {
            let binary = match location.mapping_index {
                // Index 0 is the dictionary's empty mapping, by convention.
                0 => StrId::EMPTY,
                m => {
                    let mapping = at(&self.dict.mapping_table, m, || {
                        format!("location_table[{i}].mapping_index")
                    })?;
                    self.string(mapping.filename_strindex, || {
                        format!("mapping_table[{m}].filename_strindex")
                    })?
                }
            };
            let mut frames = Vec::with_capacity(location.lines.len().max(1));
            // As in pprof: innermost line first, the last one is the
            // function the others were inlined into.
            for (j, line) in location.lines.iter().enumerate().rev() {
                let function = *at(&self.dict.function_table, line.function_index, || {
                    format!("location_table[{i}].lines[{j}].function_index")
                })?;
                let name = if function.name_strindex != 0 {
                    function.name_strindex
                } else {
                    function.system_name_strindex
                };
                let f = line.function_index;
                let frame = Frame {
                    function: self.string(name, || format!("function_table[{f}].name_strindex"))?,
                    file: self.string(function.filename_strindex, || {
                        format!("function_table[{f}].filename_strindex")
                    })?,
                    line: u32::try_from(line.line).unwrap_or(0),
                    binary,
                    address: location.address,
                    inlined: j + 1 != location.lines.len(),
                };
                frames.push(self.profile.intern_frame(frame));
            }
            if frames.is_empty() {
                frames.push(self.profile.intern_frame(Frame {
                    binary,
                    address: location.address,
                    ..Frame::default()
                }));
            }
            self.locations[i] = Some(frames);
        }
        Ok(self.locations[i].as_deref().unwrap_or_default())
    }

    /// The attribute at `index` as a label, if it is one flameshift keeps.
    fn attribute(&self, index: i32, field: impl FnOnce() -> String) -> Result<Option<(&'a str, String)>> {
        let attribute = at(&self.dict.attribute_table, index, field)?;
        let key = self.text(attribute.key_strindex, || {
            "attribute_table key_strindex".to_owned()
        })?;
        let value = attribute.value.as_ref().and_then(AnyValue::text);
        Ok(match value {
            Some((text, true)) if !is_dropped_attribute(key) => Some((key, text)),
            _ => None,
        })
    }

    fn samples(&mut self, samples: &[Sample]) -> Result<()> {
        let mut stack = Vec::new();
        let mut labels = Vec::new();
        for (i, sample) in samples.iter().enumerate() {
            // One value, or one per timestamp (summed), or timestamps
            // only (each a sample of weight 1).
            let (values, times) = (sample.values.len(), sample.timestamps_unix_nano.len());
            let value = match (values, times) {
                (0, n) => i64::try_from(n).unwrap_or(i64::MAX),
                (1, _) => sample.values[0],
                (v, t) if v == t => sample.values.iter().fold(0i64, |sum, v| sum.saturating_add(*v)),
                (v, t) => {
                    return Err(Error::bad(format!(
                        "OTLP samples[{i}]: {v} values for {t} timestamps"
                    )))
                }
            };
            if value < 0 {
                return Err(Error::bad(format!("OTLP samples[{i}]: negative value {value}")));
            }
            let locations = &at(&self.dict.stack_table, sample.stack_index, || {
                format!("samples[{i}].stack_index")
            })?
            .location_indices;
            stack.clear();
            // OTLP lists a stack leaf first; flameshift keeps it root first.
            for &location in locations.iter().rev() {
                stack.extend_from_slice(self.location(location)?);
            }
            labels.clear();
            for (j, &a) in sample.attribute_indices.iter().enumerate() {
                if let Some((key, value)) =
                    self.attribute(a, || format!("samples[{i}].attribute_indices[{j}]"))?
                {
                    check_label(key, &value)?;
                    labels.push(self.profile.str_label(key, &value));
                }
            }
            let stack_id = self.profile.intern_stack(&stack);
            let label_id = self.profile.intern_label_buf(&mut labels);
            self.profile.push_sample(stack_id, label_id, &[value]);
        }
        Ok(())
    }
}

/// Refuses what is not a CPU profile, naming it; with `wall_as_cpu`, a
/// wall-clock period is read as CPU time.
fn cpu_period(
    sample: &SampleType,
    period: Option<&SampleType>,
    wall_as_cpu: bool,
) -> Result<Option<SampleType>> {
    let is_time = |unit: &str| flameshift_profile::units::nanoseconds_per_unit(unit).is_some();
    let cpu_value = sample.unit == "instructions" || (sample.kind == "cpu" && is_time(&sample.unit));
    if cpu_value {
        return Ok(period.cloned());
    }
    let counts = sample.unit == "count" || sample.unit.is_empty();
    match period {
        Some(p) if counts && (p.unit == "instructions" || (p.kind == "cpu" && is_time(&p.unit))) => {
            Ok(Some(p.clone()))
        }
        Some(p) if counts && wall_as_cpu && p.kind == "wall" && is_time(&p.unit) => {
            Ok(Some(SampleType::new("cpu", p.unit.clone())))
        }
        _ => {
            let period = period.map_or("none".to_owned(), |p| p.to_string());
            let hint = if period.starts_with("wall") {
                " (wall-clock time; serve --otlp-wall-as-cpu counts it as CPU time)"
            } else {
                ""
            };
            Err(Error::bad(format!(
                "OTLP profile of {sample} with period {period} is not a CPU profile{hint}; flameshift takes CPU time or instructions"
            )))
        }
    }
}

/// The service, deploy, host and labels of a resource.
fn resource_identity(
    resource: Option<&Resource>,
    deploy_attribute: &str,
) -> Result<(String, String, String, BTreeMap<String, String>)> {
    let mut map = BTreeMap::new();
    for attribute in resource.map_or(&[][..], |r| &r.attributes) {
        if let Some((text, _)) = attribute.value.as_ref().and_then(AnyValue::text) {
            map.insert(attribute.key.as_str(), text);
        }
    }
    let service = map
        .remove("service.name")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::bad("OTLP resource without a service.name attribute"))?;
    let deploy = map
        .remove(deploy_attribute)
        .unwrap_or_else(|| "unknown".to_owned());
    let host = map.remove("host.name").unwrap_or_else(|| "unknown".to_owned());
    check_name("service", &service)?;
    check_name("deploy", &deploy)?;
    check_name("host", &host)?;
    let mut tags = BTreeMap::new();
    for (key, value) in map {
        if !is_dropped_attribute(key) && !key.starts_with("service.") {
            check_label(key, &value)?;
            tags.insert(key.to_owned(), value);
        }
    }
    Ok((service, deploy, host, tags))
}

/// Decodes the request body (gzip told by its magic bytes).
pub(crate) fn decode_request(body: &[u8], limits: &Limits) -> Result<ExportRequest> {
    let body = if body.starts_with(&[0x1f, 0x8b]) {
        std::borrow::Cow::Owned(format::gunzip(body, limits.max_decompressed)?)
    } else {
        std::borrow::Cow::Borrowed(body)
    };
    <ExportRequest as prost::Message>::decode(&*body)
        .map_err(|e| Error::bad(format!("malformed OTLP profiles request (protobuf): {e}")))
}

/// Each profile of an OTLP export in flameshift's model, with who sent it
/// (service, deploy, host, labels; `time_ms` from the profile, else
/// `received_ms`). Profiles without samples are left out.
fn read_profiles(upload: &Upload, limits: &Limits) -> Result<Vec<(Identity, Profile)>> {
    let request = decode_request(&upload.body, limits)?;
    let deploy_attribute = upload
        .params
        .get(DEPLOY_ATTRIBUTE)
        .map_or("service.version", String::as_str);
    let wall_as_cpu = upload.params.get(WALL_AS_CPU).is_some_and(|v| v == "true");
    let empty = Dictionary::default();
    let dict = request.dictionary.as_ref().unwrap_or(&empty);
    let mut out = Vec::new();
    for (r, resource) in request.resource_profiles.iter().enumerate() {
        let (service, deploy, host, tags) = resource_identity(resource.resource.as_ref(), deploy_attribute)?;
        for (p, otlp) in resource
            .scope_profiles
            .iter()
            .flat_map(|s| &s.profiles)
            .enumerate()
        {
            let value_type = |vt: &ValueType, what: &str| -> Result<SampleType> {
                let field = || format!("resource_profiles[{r}] profile {p} {what}");
                let kind = at(&dict.string_table, vt.type_strindex, field)?;
                let unit = at(&dict.string_table, vt.unit_strindex, field)?;
                Ok(SampleType::new(kind.as_str(), unit.as_str()))
            };
            let sample_type = value_type(&otlp.sample_type.unwrap_or_default(), "sample_type")?;
            let period_type = otlp
                .period_type
                .as_ref()
                .map(|vt| value_type(vt, "period_type"))
                .transpose()?;
            let period_type = cpu_period(&sample_type, period_type.as_ref(), wall_as_cpu)?;
            let mut reader = Reader::new(dict, sample_type);
            reader.samples(&otlp.samples)?;
            let mut profile = reader.profile;
            profile.period = period_type.map(|kind| Period {
                kind,
                value: otlp.period,
            });
            let mut labels: Vec<Label> = Vec::new();
            for (j, &a) in otlp.attribute_indices.iter().enumerate() {
                let kept = Reader::new(dict, SampleType::new("", ""))
                    .attribute(a, || format!("profile attribute_indices[{j}]"))?;
                if let Some((key, value)) = kept {
                    check_label(key, &value)?;
                    labels.push(Label {
                        key: profile.intern_str(key),
                        value: LabelValue::Str(profile.intern_str(&value)),
                    });
                }
            }
            profile.labels = labels;
            profile.time_nanos = i64::try_from(otlp.time_unix_nano).unwrap_or(0);
            profile.duration_nanos = i64::try_from(otlp.duration_nano).unwrap_or(0);
            if profile.samples().is_empty() {
                continue;
            }
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
            out.push((id, profile));
        }
    }
    Ok(out)
}

/// The profiles of an OTLP export in flameshift's model (for tools and
/// benchmarks; ingest turns them into rows).
pub fn profiles(upload: &Upload, limits: &Limits) -> Result<Vec<Profile>> {
    Ok(read_profiles(upload, limits)?
        .into_iter()
        .map(|(_, p)| p)
        .collect())
}

/// The rows of an OTLP export: every profile of every resource, all of
/// one service.
pub(super) fn otlp_upload(upload: &Upload, limits: &Limits) -> Result<Batch> {
    let mut out: Option<Batch> = None;
    for (id, profile) in read_profiles(upload, limits)? {
        super::add_profile_rows(&mut out, profile_rows(&profile, &id, limits)?)?;
    }
    out.ok_or_else(|| Error::bad("OTLP profiles request without samples"))
}

/// The request as one body per service (`service.name`), each with the
/// whole dictionary: a host's eBPF profiler exports every process of the
/// host together, and flameshift stores each upload under one service.
/// A request of one service comes back as it is.
pub fn split_by_service(body: &[u8], limits: &Limits) -> Result<Vec<Vec<u8>>> {
    let request = decode_request(body, limits)?;
    let service_of = |resource: &ResourceProfiles| -> Option<String> {
        resource
            .resource
            .as_ref()?
            .attributes
            .iter()
            .find(|a| a.key == "service.name")
            .and_then(|a| a.value.as_ref()?.text())
            .map(|(text, _)| text)
    };
    let mut groups: BTreeMap<Option<String>, Vec<ResourceProfiles>> = BTreeMap::new();
    for resource in &request.resource_profiles {
        groups
            .entry(service_of(resource))
            .or_default()
            .push(resource.clone());
    }
    if groups.len() <= 1 {
        return Ok(vec![body.to_vec()]);
    }
    Ok(groups
        .into_values()
        .map(|resource_profiles| {
            prost::Message::encode_to_vec(&ExportRequest {
                resource_profiles,
                dictionary: request.dictionary.clone(),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::UploadKind;

    /// The first export of fixtures/otlp-profiles/work.py (OpenTelemetry's
    /// Python SDK), gzipped as sent.
    const CAPTURED: &[u8] = include_bytes!("../../../fixtures/otlp-profiles/python-sdk.pb.gz");

    fn upload(body: Vec<u8>, wall_as_cpu: bool) -> Upload {
        Upload {
            kind: UploadKind::Otlp,
            params: BTreeMap::from([(WALL_AS_CPU.to_owned(), wall_as_cpu.to_string())]),
            received_ms: 1_796_460_890_000,
            key: None,
            body,
        }
    }

    fn plain() -> Vec<u8> {
        format::gunzip(CAPTURED, 1 << 20).unwrap()
    }

    #[test]
    fn the_python_sdk_export_decodes_exactly() {
        let limits = Limits::default();
        let batch = otlp_upload(&upload(CAPTURED.to_vec(), true), &limits).unwrap();
        assert_eq!(batch.service, "pyotel");
        let request = decode_request(CAPTURED, &limits).unwrap();
        let samples: i64 = request.resource_profiles[0].scope_profiles[0].profiles[0]
            .samples
            .iter()
            .flat_map(|s| &s.values)
            .sum();
        assert!(samples > 100, "about 4 s at 100 Hz: {samples}");
        assert_eq!(batch.sample_count(), samples);
        let key = &batch.samples[0].0;
        assert_eq!((&*key.deploy, &*key.host), ("v3", "unknown"));
        assert!(key.labels.contains("\"region\":\"eu\""), "{}", key.labels);
        assert!(
            key.labels.contains("\"thread.name\":\"MainThread\""),
            "{}",
            key.labels
        );
        assert!(
            !key.labels.contains("thread.id") && !key.labels.contains("telemetry"),
            "{}",
            key.labels
        );
        // 10 ms of wall time per sample, stored as CPU time.
        assert!(batch
            .samples
            .iter()
            .all(|(_, w)| w.weight == w.count * 10_000_000));
        let names: Vec<&str> = batch.stack_nodes.iter().map(|n| &*n.function).collect();
        assert!(
            names.iter().any(|n| *n == "busy_hash" || *n == "slow_sort"),
            "{names:?}"
        );
    }

    #[test]
    fn a_sample_attribute_named_by_endpoint_labels_is_the_endpoint() {
        // The SDK puts `thread.name` on each sample; as if it were
        // `http.route`, with `serve --endpoint-label thread.name`.
        let limits = Limits {
            endpoint_labels: vec!["thread.name".to_owned()],
            ..Limits::default()
        };
        let batch = otlp_upload(&upload(CAPTURED.to_vec(), true), &limits).unwrap();
        assert!(batch
            .samples
            .iter()
            .all(|(k, _)| &*k.endpoint == "MainThread" && !k.labels.contains("thread.name")));
        let plain = otlp_upload(&upload(CAPTURED.to_vec(), true), &Limits::default()).unwrap();
        assert!(plain.samples.iter().all(|(k, _)| k.endpoint.is_empty()));
    }

    #[test]
    fn wall_clock_is_refused_by_name_unless_counted_as_cpu() {
        let e = otlp_upload(&upload(CAPTURED.to_vec(), false), &Limits::default()).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("wall") && text.contains("--otlp-wall-as-cpu"),
            "{text}"
        );
    }

    /// Edits the decoded fixture and re-encodes it.
    fn edited(edit: impl FnOnce(&mut ExportRequest)) -> Vec<u8> {
        let mut request = decode_request(CAPTURED, &Limits::default()).unwrap();
        edit(&mut request);
        prost::Message::encode_to_vec(&request)
    }

    fn refusal(body: Vec<u8>) -> String {
        match otlp_upload(&upload(body, true), &Limits::default()) {
            Err(e @ Error::BadRequest(_)) => e.to_string(),
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn bad_exports_are_refused_naming_the_problem() {
        let text = refusal(edited(|r| r.resource_profiles[0].resource = None));
        assert!(text.contains("service.name"), "{text}");
        let text = refusal(edited(|r| {
            r.resource_profiles[0].scope_profiles[0].profiles[0].samples[0].stack_index = 9_999
        }));
        assert!(
            text.contains("samples[0].stack_index") && text.contains("9999"),
            "{text}"
        );
        let text = refusal(edited(|r| {
            let dict = r.dictionary.as_mut().unwrap();
            dict.location_table[1].lines[0].function_index = -1
        }));
        assert!(text.contains("function_index"), "{text}");
        let text = refusal(edited(|r| {
            let dict = r.dictionary.as_mut().unwrap();
            let bytes = dict.string_table.len() as i32;
            dict.string_table.push("memory.heap.bytes".into());
            dict.string_table.push("bytes".into());
            let profile = &mut r.resource_profiles[0].scope_profiles[0].profiles[0];
            profile.sample_type = Some(ValueType {
                type_strindex: bytes,
                unit_strindex: bytes + 1,
            });
            profile.period_type = None;
        }));
        assert!(
            text.contains("memory.heap.bytes/bytes") && text.contains("not a CPU profile"),
            "{text}"
        );
        let mut truncated = plain();
        truncated.truncate(truncated.len() / 2);
        let text = refusal(truncated);
        assert!(text.contains("malformed OTLP"), "{text}");
    }

    #[test]
    fn an_export_of_several_services_is_split_per_service() {
        let two = edited(|r| {
            let mut other = r.resource_profiles[0].clone();
            for a in &mut other.resource.as_mut().unwrap().attributes {
                if a.key == "service.name" {
                    a.value = Some(AnyValue {
                        value: Some(Value::Str("other".into())),
                    });
                }
            }
            r.resource_profiles.push(other);
        });
        let limits = Limits::default();
        assert_eq!(
            split_by_service(CAPTURED, &limits).unwrap(),
            vec![CAPTURED.to_vec()]
        );
        let parts = split_by_service(&two, &limits).unwrap();
        let services: Vec<String> = parts
            .into_iter()
            .map(|p| otlp_upload(&upload(p, true), &limits).unwrap().service)
            .collect();
        assert_eq!(services, ["other", "pyotel"]);
    }

    /// Mutated bytes decode or fail with an error, never panic (the
    /// fuzzing the pprof reader gets, deterministic and in every run).
    #[test]
    fn mutated_exports_never_panic() {
        let plain = plain();
        let limits = Limits::default();
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
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
            let _ = split_by_service(&body, &limits);
            match otlp_upload(&upload(body, true), &limits) {
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
