//! OpenTelemetry profiles: an OTLP `ExportProfilesServiceRequest` in
//! protobuf, gzipped or not, in the shape of opentelemetry-proto 1.9/1.10
//! (`v1development`: one shared dictionary of strings, functions,
//! locations, mappings, stacks and attributes that every profile points
//! into by index). What the OpenTelemetry eBPF profiler, the Collector's
//! `otlphttp` exporter and OpenTelemetry's Python profiling SDK send.
//!
//! Each profile becomes a [`Profile`] of its one sample type and period,
//! as sent (wall-clock or CPU: deciding what counts is the reader's
//! business). String-valued sample and profile attributes become labels,
//! except those a producer adds about itself ([`is_producer_attribute`]).
//! Resource attributes are returned as text beside the profiles. Every
//! dictionary index is checked; a bad one is an error naming the field.
//!
//! ```
//! # fn main() -> flameshift_profile::Result<()> {
//! use flameshift_profile::format::otlp;
//! let export = include_bytes!("../../../fixtures/otlp-profiles/python-sdk.pb.gz");
//! let resources = otlp::read(export, 1 << 24)?;
//! assert_eq!(resources[0].attributes["service.name"], "pyotel");
//! assert!(resources[0].profiles[0].total(0) > 100); // samples at 100 Hz
//! # Ok(()) }
//! ```

pub mod proto;

use std::collections::BTreeMap;

use prost::Message;

use super::location::{location_frames, SourceLine};
use crate::{Error, FrameId, Label, Period, Profile, Result, SampleType, StrId};

/// One resource of an export (a process or service) and its profiles.
#[derive(Debug, Clone)]
pub struct Resource {
    /// The resource's attributes as text (`service.name`, `host.name`…).
    pub attributes: BTreeMap<String, String>,
    /// Its profiles that have samples, in the order sent.
    pub profiles: Vec<Profile>,
}

/// Attribute keys that describe the producer or identify one thing
/// (`telemetry.*`, `process.*`, `otel.*`, `host.*`, `os.*`, `profiler.*`,
/// `*.id`, `*_id`): not made labels, as they would make every sample a
/// series of its own.
pub fn is_producer_attribute(key: &str) -> bool {
    ["telemetry.", "process.", "otel.", "host.", "os.", "profiler."]
        .iter()
        .any(|p| key.starts_with(p))
        || key.ends_with(".id")
        || key.ends_with("_id")
}

/// Decodes the request's protobuf (gunzipped first when it starts with
/// the gzip magic, capped at `max_decompressed` bytes).
pub fn decode(bytes: &[u8], max_decompressed: u64) -> Result<proto::ExportRequest> {
    let plain;
    let bytes = if super::is_gzip(bytes) {
        plain = super::gunzip(bytes, max_decompressed)?;
        &plain[..]
    } else {
        bytes
    };
    proto::ExportRequest::decode(bytes).map_err(|e| Error::Malformed {
        what: "OTLP profiles request (protobuf)",
        problem: e.to_string(),
    })
}

/// Whether (decompressed) `bytes` are an OTLP profiles request: they
/// decode as one, with a dictionary and at least one resource. A pprof
/// profile never does (its first field is a message of varints where
/// OTLP has messages).
pub fn looks_like(bytes: &[u8]) -> bool {
    proto::ExportRequest::decode(bytes)
        .is_ok_and(|r| r.dictionary.is_some() && !r.resource_profiles.is_empty())
}

/// Reads every resource of an export with its profiles.
pub fn read(bytes: &[u8], max_decompressed: u64) -> Result<Vec<Resource>> {
    read_request(&decode(bytes, max_decompressed)?)
}

/// Reads a decoded request (see [`read`]).
pub fn read_request(request: &proto::ExportRequest) -> Result<Vec<Resource>> {
    let empty = proto::Dictionary::default();
    let dict = request.dictionary.as_ref().unwrap_or(&empty);
    let mut out = Vec::with_capacity(request.resource_profiles.len());
    for (r, resource) in request.resource_profiles.iter().enumerate() {
        let attributes = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .filter_map(|a| Some((a.key.clone(), a.value.as_ref()?.text()?.0)))
            .collect();
        let mut profiles = Vec::new();
        for (p, otlp) in resource
            .scope_profiles
            .iter()
            .flat_map(|s| &s.profiles)
            .enumerate()
        {
            let profile = read_profile(dict, otlp, &|| format!("resource_profiles[{r}] profile {p}"))?;
            if !profile.samples().is_empty() {
                profiles.push(profile);
            }
        }
        out.push(Resource { attributes, profiles });
    }
    Ok(out)
}

/// Every profile of an export merged into one (for `convert` and the
/// other file commands); profiles of other sample types than the first
/// are refused by the merge, naming both.
pub fn read_merged(bytes: &[u8], max_decompressed: u64) -> Result<Profile> {
    let profiles = read(bytes, max_decompressed)?
        .into_iter()
        .flat_map(|r| r.profiles);
    Profile::merge_all(profiles)
}

/// The request as one body per value of the resource attribute `key`
/// (e.g. `service.name`), each with the whole dictionary: a host's eBPF
/// profiler exports every process of the host together. A request with
/// one value comes back as it is.
pub fn split_by_resource(bytes: &[u8], max_decompressed: u64, key: &str) -> Result<Vec<Vec<u8>>> {
    let request = decode(bytes, max_decompressed)?;
    let value_of = |resource: &proto::ResourceProfiles| -> Option<String> {
        resource
            .resource
            .as_ref()?
            .attributes
            .iter()
            .find(|a| a.key == key)
            .and_then(|a| a.value.as_ref()?.text())
            .map(|(text, _)| text)
    };
    let mut groups: BTreeMap<Option<String>, Vec<proto::ResourceProfiles>> = BTreeMap::new();
    for resource in &request.resource_profiles {
        groups
            .entry(value_of(resource))
            .or_default()
            .push(resource.clone());
    }
    if groups.len() <= 1 {
        return Ok(vec![bytes.to_vec()]);
    }
    Ok(groups
        .into_values()
        .map(|resource_profiles| {
            proto::ExportRequest {
                resource_profiles,
                dictionary: request.dictionary.clone(),
            }
            .encode_to_vec()
        })
        .collect())
}

/// Looks up `index` in `table`, or names the field that holds a bad one.
fn at<T>(table: &[T], index: i32, field: impl FnOnce() -> String) -> Result<&T> {
    usize::try_from(index)
        .ok()
        .and_then(|i| table.get(i))
        .ok_or_else(|| Error::InvalidOtlp {
            field: field(),
            problem: format!("index {index} is out of range (the table has {})", table.len()),
        })
}

fn read_profile(
    dict: &proto::Dictionary,
    otlp: &proto::Profile,
    field: &dyn Fn() -> String,
) -> Result<Profile> {
    let value_type = |vt: &proto::ValueType, what: &str| -> Result<SampleType> {
        let kind = at(&dict.string_table, vt.type_strindex, || {
            format!("{} {what}", field())
        })?;
        let unit = at(&dict.string_table, vt.unit_strindex, || {
            format!("{} {what}", field())
        })?;
        Ok(SampleType::new(kind.as_str(), unit.as_str()))
    };
    let sample_type = value_type(&otlp.sample_type.unwrap_or_default(), "sample_type")?;
    let mut reader = Reader::new(dict, sample_type);
    reader.samples(&otlp.samples)?;
    let mut labels = Vec::new();
    for (j, &a) in otlp.attribute_indices.iter().enumerate() {
        if let Some(label) = reader.attribute(a, || format!("{} attribute_indices[{j}]", field()))? {
            labels.push(label);
        }
    }
    let mut profile = reader.profile;
    profile.labels = labels;
    profile.period = otlp
        .period_type
        .as_ref()
        .map(|vt| value_type(vt, "period_type"))
        .transpose()?
        .map(|kind| Period {
            kind,
            value: otlp.period,
        });
    profile.time_nanos = i64::try_from(otlp.time_unix_nano).unwrap_or(0);
    profile.duration_nanos = i64::try_from(otlp.duration_nano).unwrap_or(0);
    Ok(profile)
}

/// Reads one profile's samples against the dictionary.
struct Reader<'a> {
    dict: &'a proto::Dictionary,
    profile: Profile,
    /// Each dictionary string's id in `profile`, made on first use.
    strings: Vec<Option<StrId>>,
    /// Each location's frames (root first), made on first use.
    locations: Vec<Option<Vec<FrameId>>>,
}

impl<'a> Reader<'a> {
    fn new(dict: &'a proto::Dictionary, sample_type: SampleType) -> Reader<'a> {
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
            let mut lines = Vec::with_capacity(location.lines.len());
            for (j, line) in location.lines.iter().enumerate() {
                let function = *at(&self.dict.function_table, line.function_index, || {
                    format!("location_table[{i}].lines[{j}].function_index")
                })?;
                let f = line.function_index;
                lines.push(SourceLine {
                    name: self.string(function.name_strindex, || {
                        format!("function_table[{f}].name_strindex")
                    })?,
                    system_name: self.string(function.system_name_strindex, || {
                        format!("function_table[{f}].system_name_strindex")
                    })?,
                    file: self.string(function.filename_strindex, || {
                        format!("function_table[{f}].filename_strindex")
                    })?,
                    line: line.line,
                });
            }
            self.locations[i] = Some(location_frames(
                &mut self.profile,
                binary,
                location.address,
                &lines,
            ));
        }
        Ok(self.locations[i].as_deref().unwrap_or_default())
    }

    /// The attribute at `index` as a label, if it is a string attribute
    /// that is not about the producer.
    fn attribute(&mut self, index: i32, field: impl FnOnce() -> String) -> Result<Option<Label>> {
        let attribute = at(&self.dict.attribute_table, index, field)?;
        let key = self.text(attribute.key_strindex, || {
            "attribute_table key_strindex".to_owned()
        })?;
        Ok(match attribute.value.as_ref().and_then(proto::AnyValue::text) {
            Some((text, true)) if !is_producer_attribute(key) => Some(self.profile.str_label(key, &text)),
            _ => None,
        })
    }

    fn samples(&mut self, samples: &[proto::Sample]) -> Result<()> {
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
                    return Err(Error::InvalidOtlp {
                        field: format!("samples[{i}]"),
                        problem: format!("{v} values for {t} timestamps"),
                    })
                }
            };
            if value < 0 {
                return Err(Error::InvalidOtlp {
                    field: format!("samples[{i}]"),
                    problem: format!("negative value {value}"),
                });
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
                if let Some(label) = self.attribute(a, || format!("samples[{i}].attribute_indices[{j}]"))? {
                    labels.push(label);
                }
            }
            let stack_id = self.profile.intern_stack(&stack);
            let label_id = self.profile.intern_label_buf(&mut labels);
            self.profile.push_sample(stack_id, label_id, &[value]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first export of fixtures/otlp-profiles/work.py (OpenTelemetry's
    /// Python SDK), gzipped as sent.
    const CAPTURED: &[u8] = include_bytes!("../../../fixtures/otlp-profiles/python-sdk.pb.gz");

    fn plain() -> Vec<u8> {
        super::super::gunzip(CAPTURED, 1 << 20).unwrap()
    }

    #[test]
    fn the_python_sdk_export_reads_exactly() {
        let request = decode(CAPTURED, 1 << 24).unwrap();
        let sent: i64 = request.resource_profiles[0].scope_profiles[0].profiles[0]
            .samples
            .iter()
            .flat_map(|s| &s.values)
            .sum();
        assert!(sent > 100, "about 4 s at 100 Hz: {sent}");
        let resources = read(CAPTURED, 1 << 24).unwrap();
        let profile = &resources[0].profiles[0];
        let read: i64 = profile.iter_samples().map(|(_, v)| v[0]).sum();
        assert_eq!(read, sent);
        assert_eq!(resources[0].attributes["service.version"], "v3");
        let period = profile.period.as_ref().unwrap();
        assert_eq!((period.kind.kind.as_str(), period.value), ("wall", 10_000_000));
        let labels: Vec<(&str, String)> = profile
            .label_set(profile.samples()[0].labels)
            .iter()
            .map(|l| (profile.str(l.key), profile.label_value_text(l.value)))
            .collect();
        assert_eq!(labels, [("thread.name", "MainThread".to_owned())]);
        let names: Vec<String> = profile
            .samples()
            .iter()
            .flat_map(|s| profile.stack(s.stack))
            .map(|&f| profile.frame_name(f).into_owned())
            .collect();
        assert!(
            names.iter().any(|n| n == "busy_hash") && names.iter().any(|n| n == "slow_sort"),
            "{names:?}"
        );
    }

    /// Edits the decoded fixture and re-encodes it.
    fn edited(edit: impl FnOnce(&mut proto::ExportRequest)) -> Vec<u8> {
        let mut request = decode(CAPTURED, 1 << 24).unwrap();
        edit(&mut request);
        request.encode_to_vec()
    }

    fn refusal(body: Vec<u8>) -> String {
        read(&body, 1 << 24).unwrap_err().to_string()
    }

    #[test]
    fn bad_indexes_are_refused_naming_the_field() {
        let text = refusal(edited(|r| {
            r.resource_profiles[0].scope_profiles[0].profiles[0].samples[0].stack_index = 9_999
        }));
        assert!(
            text.contains("samples[0].stack_index") && text.contains("9999"),
            "{text}"
        );
        let text = refusal(edited(|r| {
            r.dictionary.as_mut().unwrap().location_table[1].lines[0].function_index = -1
        }));
        assert!(text.contains("function_index"), "{text}");
        let mut truncated = plain();
        truncated.truncate(truncated.len() / 2);
        let text = refusal(truncated);
        assert!(text.contains("malformed OTLP"), "{text}");
    }

    #[test]
    fn an_export_is_told_from_pprof_and_merged_for_files() {
        let plain = plain();
        assert!(looks_like(&plain));
        let mut pprof = Vec::new();
        let merged = read_merged(CAPTURED, 1 << 24).unwrap();
        super::super::pprof::write(&merged, &mut pprof).unwrap();
        let pprof = super::super::gunzip(&pprof, 1 << 24).unwrap();
        assert!(!looks_like(&pprof));
        assert_eq!(super::super::detect(&plain).unwrap(), super::super::Format::Otlp);
        assert_eq!(super::super::detect(&pprof).unwrap(), super::super::Format::Pprof);
    }

    #[test]
    fn an_export_of_several_resources_is_split_by_attribute() {
        let two = edited(|r| {
            let mut other = r.resource_profiles[0].clone();
            for a in &mut other.resource.as_mut().unwrap().attributes {
                if a.key == "service.name" {
                    a.value = Some(proto::AnyValue {
                        value: Some(proto::Value::Str("other".into())),
                    });
                }
            }
            r.resource_profiles.push(other);
        });
        assert_eq!(
            split_by_resource(CAPTURED, 1 << 24, "service.name").unwrap(),
            vec![CAPTURED.to_vec()]
        );
        let services: Vec<String> = split_by_resource(&two, 1 << 24, "service.name")
            .unwrap()
            .iter()
            .map(|part| read(part, 1 << 24).unwrap()[0].attributes["service.name"].clone())
            .collect();
        assert_eq!(services, ["other", "pyotel"]);
    }
}
