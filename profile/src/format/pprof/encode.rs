//! [`Profile`] → `profile.proto` message.

use rustc_hash::FxHashMap;

use super::proto;
use super::{LABEL_COMMENT, NUM_LABEL_COMMENT};
use crate::{FrameId, LabelValue, Profile, StackId, StrId};

/// Builds the pprof message for `profile`.
pub fn encode(profile: &Profile) -> proto::Profile {
    Encoder::new(profile).run()
}

struct Encoder<'p> {
    profile: &'p Profile,
    message: proto::Profile,
    /// Our string id → pprof string index (-1: not yet written).
    string_index: Vec<i64>,
    extra_strings: FxHashMap<String, i64>,
    functions: FxHashMap<(StrId, StrId), u64>,
    /// A location is a run of frames (outermost first) sharing one address.
    locations: FxHashMap<Vec<FrameId>, u64>,
    mappings: FxHashMap<StrId, u64>,
    stacks: FxHashMap<StackId, Vec<u64>>,
}

impl<'p> Encoder<'p> {
    fn new(profile: &'p Profile) -> Self {
        let mut string_index = vec![-1; profile.strings.len()];
        string_index[0] = 0;
        let message = proto::Profile {
            string_table: vec![Vec::new()],
            ..Default::default()
        };
        Encoder {
            profile,
            message,
            string_index,
            extra_strings: FxHashMap::default(),
            functions: FxHashMap::default(),
            locations: FxHashMap::default(),
            mappings: FxHashMap::default(),
            stacks: FxHashMap::default(),
        }
    }

    fn push_string(&mut self, text: &str) -> i64 {
        self.message.string_table.push(text.as_bytes().to_vec());
        self.message.string_table.len() as i64 - 1
    }

    fn string(&mut self, id: StrId) -> i64 {
        let index = self.string_index[id.0 as usize];
        if index >= 0 {
            return index;
        }
        let index = self.push_string(self.profile.str(id));
        self.string_index[id.0 as usize] = index;
        index
    }

    fn text(&mut self, text: &str) -> i64 {
        if let Some(id) = self.profile.strings.lookup(text) {
            return self.string(StrId(id));
        }
        if let Some(&index) = self.extra_strings.get(text) {
            return index;
        }
        let index = self.push_string(text);
        self.extra_strings.insert(text.to_owned(), index);
        index
    }

    fn value_type(&mut self, ty: &crate::SampleType) -> proto::ValueType {
        proto::ValueType {
            r#type: self.text(&ty.kind),
            unit: self.text(&ty.unit),
        }
    }

    fn run(mut self) -> proto::Profile {
        let p = self.profile;
        self.message.sample_type = p.sample_types.iter().map(|t| self.value_type(t)).collect();
        for (i, mapping) in p.mappings.iter().enumerate() {
            let id = i as u64 + 1;
            let filename = self.string(mapping.file);
            let build_id = self.string(mapping.build_id);
            self.message.mapping.push(proto::Mapping {
                id,
                memory_start: mapping.start,
                memory_limit: mapping.limit,
                file_offset: mapping.offset,
                filename,
                build_id,
                has_functions: true,
                ..Default::default()
            });
            self.mappings.entry(mapping.file).or_insert(id);
        }
        for (sample, values) in p.iter_samples() {
            let location_id = self.stack_locations(sample.stack);
            let label = p.label_set(sample.labels).iter().map(|l| self.label(l)).collect();
            self.message.sample.push(proto::Sample {
                location_id,
                value: values.to_vec(),
                label,
            });
        }
        self.metadata();
        self.message
    }

    fn label(&mut self, label: &crate::Label) -> proto::Label {
        let key = self.string(label.key);
        match label.value {
            LabelValue::Str(s) => proto::Label {
                key,
                str: self.string(s),
                ..Default::default()
            },
            LabelValue::Num { value, unit } => proto::Label {
                key,
                num: value,
                num_unit: self.string(unit),
                ..Default::default()
            },
        }
    }

    fn metadata(&mut self) {
        let p = self.profile;
        self.message.time_nanos = p.time_nanos;
        self.message.duration_nanos = p.duration_nanos;
        if let Some(period) = &p.period {
            self.message.period_type = Some(self.value_type(&period.kind));
            self.message.period = period.value;
        }
        if let Some(ty) = p.default_sample_type.and_then(|i| p.sample_types.get(i)) {
            self.message.default_sample_type = self.text(&ty.kind);
        }
        let mut comments: Vec<String> = p.comments.clone();
        for label in &p.labels {
            let key = p.str(label.key);
            comments.push(match label.value {
                LabelValue::Str(s) => format!("{LABEL_COMMENT}{key}={}", p.str(s)),
                LabelValue::Num { value, unit } if unit == StrId::EMPTY => {
                    format!("{NUM_LABEL_COMMENT}{key}={value}")
                }
                LabelValue::Num { value, unit } => {
                    format!("{NUM_LABEL_COMMENT}{key}={value} {}", p.str(unit))
                }
            });
        }
        self.message.comment = comments.iter().map(|c| self.text(c)).collect();
    }

    /// Location ids of a stack, leaf first as pprof wants.
    fn stack_locations(&mut self, stack: StackId) -> Vec<u64> {
        if let Some(ids) = self.stacks.get(&stack) {
            return ids.clone();
        }
        let frames = self.profile.stack(stack);
        let mut ids = Vec::with_capacity(frames.len());
        let mut start = 0;
        while start < frames.len() {
            let mut end = start + 1;
            while end < frames.len() && self.profile.frame(frames[end]).inlined {
                end += 1;
            }
            ids.push(self.location(&frames[start..end]));
            start = end;
        }
        ids.reverse();
        self.stacks.insert(stack, ids.clone());
        ids
    }

    /// The location for a run of frames, outermost first.
    fn location(&mut self, frames: &[FrameId]) -> u64 {
        if let Some(&id) = self.locations.get(frames) {
            return id;
        }
        let outer = *self.profile.frame(frames[0]);
        let mapping_id = self.mapping(outer.binary);
        let mut line = Vec::new();
        for &f in frames.iter().rev() {
            let frame = *self.profile.frame(f);
            if frame.function == StrId::EMPTY && frame.file == StrId::EMPTY && frame.line == 0 {
                continue; // an address-only frame: a location without lines
            }
            line.push(proto::Line {
                function_id: self.function(frame.function, frame.file),
                line: i64::from(frame.line),
                column: 0,
            });
        }
        let id = self.message.location.len() as u64 + 1;
        self.message.location.push(proto::Location {
            id,
            mapping_id,
            address: outer.address,
            line,
            is_folded: false,
        });
        self.locations.insert(frames.to_vec(), id);
        id
    }

    fn function(&mut self, name: StrId, file: StrId) -> u64 {
        if let Some(&id) = self.functions.get(&(name, file)) {
            return id;
        }
        let id = self.message.function.len() as u64 + 1;
        let name_index = self.string(name);
        let filename = self.string(file);
        self.message.function.push(proto::Function {
            id,
            name: name_index,
            system_name: name_index,
            filename,
            start_line: 0,
        });
        self.functions.insert((name, file), id);
        id
    }

    fn mapping(&mut self, binary: StrId) -> u64 {
        if binary == StrId::EMPTY {
            return 0;
        }
        if let Some(&id) = self.mappings.get(&binary) {
            return id;
        }
        let id = self.message.mapping.len() as u64 + 1;
        let filename = self.string(binary);
        self.message.mapping.push(proto::Mapping {
            id,
            filename,
            has_functions: true,
            ..Default::default()
        });
        self.mappings.insert(binary, id);
        id
    }
}
