//! `profile.proto` bytes → [`Profile`], checking every reference.

use prost::Message;
use rustc_hash::FxHashMap;

use super::proto;
use super::{LABEL_COMMENT, NUM_LABEL_COMMENT};
use crate::format::location::{location_frames, SourceLine};
use crate::{Error, FrameId, Label, LabelValue, Mapping, Period, Profile, Result, SampleType, StrId};

/// Decodes an uncompressed `profile.proto` message.
pub fn decode(bytes: &[u8]) -> Result<Profile> {
    let message = proto::Profile::decode(bytes)?;
    Decoder::new(&message)?.run()
}

struct Decoder<'a> {
    message: &'a proto::Profile,
    profile: Profile,
    /// pprof string index → our id.
    strings: Vec<StrId>,
    functions: FxHashMap<u64, &'a proto::Function>,
    mappings: FxHashMap<u64, StrId>,
    /// location id → its frames, root first.
    locations: FxHashMap<u64, Vec<FrameId>>,
}

impl<'a> Decoder<'a> {
    fn new(message: &'a proto::Profile) -> Result<Self> {
        if let Some(first) = message.string_table.first() {
            if !first.is_empty() {
                return Err(Error::pprof("string_table[0]", "must be the empty string"));
            }
        }
        let mut profile = Profile::default();
        profile.strings.reserve(message.string_table.len());
        profile.frames.reserve(message.location.len());
        profile.stacks.reserve(message.sample.len());
        let strings = message
            .string_table
            .iter()
            .map(|s| profile.intern_str(&String::from_utf8_lossy(s)))
            .collect();
        Ok(Decoder {
            message,
            profile,
            strings,
            functions: FxHashMap::default(),
            mappings: FxHashMap::default(),
            locations: FxHashMap::default(),
        })
    }

    fn string(&self, index: i64, field: impl FnOnce() -> String) -> Result<StrId> {
        if index == 0 {
            return Ok(StrId::EMPTY);
        }
        usize::try_from(index)
            .ok()
            .and_then(|i| self.strings.get(i).copied())
            .ok_or_else(|| {
                Error::pprof(
                    field(),
                    format!(
                        "string index {index} out of range (the string table has {} entries)",
                        self.strings.len()
                    ),
                )
            })
    }

    fn text(&self, index: i64, field: impl FnOnce() -> String) -> Result<String> {
        let id = self.string(index, field)?;
        Ok(self.profile.str(id).to_owned())
    }

    fn run(mut self) -> Result<Profile> {
        let m = self.message;
        let mut sample_types = Vec::with_capacity(m.sample_type.len());
        for (i, vt) in m.sample_type.iter().enumerate() {
            sample_types.push(self.value_type(vt, &|| format!("sample_type[{i}]"))?);
        }
        if !m.sample.is_empty() && sample_types.is_empty() {
            return Err(Error::pprof("sample_type", "samples present but no sample types"));
        }
        self.profile.sample_types = sample_types;
        self.metadata()?;
        self.read_mappings()?;
        self.read_functions()?;
        self.read_locations()?;
        self.read_samples()?;
        Ok(self.profile)
    }

    fn value_type(&self, vt: &proto::ValueType, field: &dyn Fn() -> String) -> Result<SampleType> {
        Ok(SampleType::new(
            self.text(vt.r#type, || format!("{}.type", field()))?,
            self.text(vt.unit, || format!("{}.unit", field()))?,
        ))
    }

    fn metadata(&mut self) -> Result<()> {
        let m = self.message;
        self.profile.time_nanos = m.time_nanos;
        self.profile.duration_nanos = m.duration_nanos;
        if let Some(pt) = &m.period_type {
            let kind = self.value_type(pt, &|| "period_type".into())?;
            self.profile.period = Some(Period {
                kind,
                value: m.period,
            });
        }
        if m.default_sample_type != 0 {
            let name = self.text(m.default_sample_type, || "default_sample_type".into())?;
            self.profile.default_sample_type = self.profile.sample_types.iter().position(|t| t.kind == name);
        }
        for (i, &c) in m.comment.iter().enumerate() {
            let text = self.text(c, || format!("comment[{i}]"))?;
            if let Some(label) = self.profile_label(&text) {
                self.profile.labels.push(label);
            } else {
                self.profile.comments.push(text);
            }
        }
        Ok(())
    }

    /// Profile-level labels travel as comments (pprof has no field for them).
    fn profile_label(&mut self, comment: &str) -> Option<Label> {
        if let Some(rest) = comment.strip_prefix(LABEL_COMMENT) {
            let (key, value) = rest.split_once('=')?;
            return Some(self.profile.str_label(key, value));
        }
        let rest = comment.strip_prefix(NUM_LABEL_COMMENT)?;
        let (key, value) = rest.split_once('=')?;
        let (number, unit) = value.split_once(' ').unwrap_or((value, ""));
        Some(self.profile.num_label(key, number.parse().ok()?, unit))
    }

    fn read_mappings(&mut self) -> Result<()> {
        for (i, mapping) in self.message.mapping.iter().enumerate() {
            let file = self.string(mapping.filename, || format!("mapping[{i}].filename"))?;
            let build_id = self.string(mapping.build_id, || format!("mapping[{i}].build_id"))?;
            if mapping.id == 0 {
                return Err(Error::pprof(format!("mapping[{i}].id"), "must not be 0"));
            }
            self.mappings.insert(mapping.id, file);
            self.profile.mappings.push(Mapping {
                start: mapping.memory_start,
                limit: mapping.memory_limit,
                offset: mapping.file_offset,
                file,
                build_id,
            });
        }
        Ok(())
    }

    fn read_functions(&mut self) -> Result<()> {
        for (i, function) in self.message.function.iter().enumerate() {
            if function.id == 0 {
                return Err(Error::pprof(format!("function[{i}].id"), "must not be 0"));
            }
            self.string(function.name, || format!("function[{i}].name"))?;
            self.string(function.system_name, || format!("function[{i}].system_name"))?;
            self.string(function.filename, || format!("function[{i}].filename"))?;
            self.functions.insert(function.id, function);
        }
        Ok(())
    }

    fn read_locations(&mut self) -> Result<()> {
        for (i, location) in self.message.location.iter().enumerate() {
            if location.id == 0 {
                return Err(Error::pprof(format!("location[{i}].id"), "must not be 0"));
            }
            let binary = match location.mapping_id {
                0 => StrId::EMPTY,
                id => *self.mappings.get(&id).ok_or_else(|| {
                    Error::pprof(
                        format!("location[{i}].mapping_id"),
                        format!("mapping {id} does not exist"),
                    )
                })?,
            };
            let mut lines = Vec::with_capacity(location.line.len());
            for (j, line) in location.line.iter().enumerate() {
                let function = self.functions.get(&line.function_id).ok_or_else(|| {
                    Error::pprof(
                        format!("location[{i}].line[{j}].function_id"),
                        format!("function {} does not exist", line.function_id),
                    )
                })?;
                lines.push(SourceLine {
                    name: self.string(function.name, String::new)?,
                    system_name: self.string(function.system_name, String::new)?,
                    file: self.string(function.filename, String::new)?,
                    line: line.line,
                });
            }
            let frames = location_frames(&mut self.profile, binary, location.address, &lines);
            self.locations.insert(location.id, frames);
        }
        Ok(())
    }

    fn read_samples(&mut self) -> Result<()> {
        let types = self.profile.sample_types.len();
        let mut stack = Vec::new();
        let mut labels = Vec::new();
        for (i, sample) in self.message.sample.iter().enumerate() {
            if sample.value.len() != types {
                return Err(Error::pprof(
                    format!("sample[{i}].value"),
                    format!("has {} values for {types} sample types", sample.value.len()),
                ));
            }
            stack.clear();
            for (j, id) in sample.location_id.iter().enumerate().rev() {
                let frames = self.locations.get(id).ok_or_else(|| {
                    Error::pprof(
                        format!("sample[{i}].location_id[{j}]"),
                        format!("location {id} does not exist"),
                    )
                })?;
                stack.extend_from_slice(frames);
            }
            labels.clear();
            for (j, label) in sample.label.iter().enumerate() {
                let key = self.string(label.key, || format!("sample[{i}].label[{j}].key"))?;
                let value = if label.str != 0 {
                    LabelValue::Str(self.string(label.str, || format!("sample[{i}].label[{j}].str"))?)
                } else {
                    LabelValue::Num {
                        value: label.num,
                        unit: self.string(label.num_unit, || format!("sample[{i}].label[{j}].num_unit"))?,
                    }
                };
                labels.push(Label { key, value });
            }
            let stack_id = self.profile.intern_stack(&stack);
            let label_id = self.profile.intern_label_buf(&mut labels);
            self.profile.push_sample(stack_id, label_id, &sample.value);
        }
        Ok(())
    }
}
