//! The profile data model: interned strings, frames, stacks and label sets,
//! samples with one value per sample type, and profile-level metadata.
//!
//! Ids (`StrId`, `FrameId`, `StackId`, `LabelSetId`) are indexes into the
//! profile's interners; they are only meaningful within the profile that
//! handed them out. String id 0 is always the empty string and stands for
//! "unknown" in optional fields; label set 0 is always the empty set.

use crate::intern::Interner;

/// An interned string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct StrId(pub u32);

impl StrId {
    /// The empty string, meaning "unknown" where a field is optional.
    pub const EMPTY: StrId = StrId(0);
}

/// An interned frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FrameId(pub u32);

/// An interned stack (a sequence of frames, root first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StackId(pub u32);

/// An interned, sorted set of labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct LabelSetId(pub u32);

impl LabelSetId {
    /// The empty label set.
    pub const EMPTY: LabelSetId = LabelSetId(0);
}

/// One frame of a stack: a function and, where known, where it is.
///
/// `file`, `binary` are [`StrId::EMPTY`] and `line`, `address` are 0 when
/// unknown. `inlined` is true when this frame was inlined into its caller
/// (the next frame towards the root): pprof keeps such frames in one
/// location, and flameshift writes them back that way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Frame {
    /// Function name (demangled where the producer demangled it).
    pub function: StrId,
    /// Source file.
    pub file: StrId,
    /// Source line.
    pub line: u32,
    /// The binary or shared library the code lives in.
    pub binary: StrId,
    /// Instruction address.
    pub address: u64,
    /// Whether this frame was inlined into its caller.
    pub inlined: bool,
}

impl From<&Frame> for Frame {
    fn from(frame: &Frame) -> Self {
        *frame
    }
}

/// The value of a label: a string or a number with an optional unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LabelValue {
    /// A string value, e.g. `endpoint = "GET /users/{id}"`.
    Str(StrId),
    /// A numeric value, e.g. `bytes = 4096 (unit "bytes")`.
    Num {
        /// The number.
        value: i64,
        /// Its unit, or [`StrId::EMPTY`].
        unit: StrId,
    },
}

/// A key and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label {
    /// The key, e.g. `endpoint`.
    pub key: StrId,
    /// The value.
    pub value: LabelValue,
}

/// What a sample value measures, and in which unit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SampleType {
    /// What is measured, e.g. `cpu`, `samples`, `instructions`.
    pub kind: String,
    /// The unit, e.g. `nanoseconds`, `count`, `instructions`, `bytes`.
    pub unit: String,
}

impl SampleType {
    /// A sample type from its kind and unit.
    pub fn new(kind: impl Into<String>, unit: impl Into<String>) -> Self {
        SampleType {
            kind: kind.into(),
            unit: unit.into(),
        }
    }
}

impl std::fmt::Display for SampleType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind, self.unit)
    }
}

/// How often samples were taken: every `value` units of `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Period {
    /// The sampled quantity, e.g. `cpu/nanoseconds`.
    pub kind: SampleType,
    /// Units between two samples, e.g. 10,000,000 ns for 100 Hz.
    pub value: i64,
}

/// A memory mapping of the profiled process (a binary or shared library).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Mapping {
    /// First address of the mapping.
    pub start: u64,
    /// One past the last address.
    pub limit: u64,
    /// File offset of `start`.
    pub offset: u64,
    /// Path of the file.
    pub file: StrId,
    /// Build id, hex, if known.
    pub build_id: StrId,
}

/// One sample: a stack, its labels and (in [`Profile::values_of`]) one
/// value per sample type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sample {
    /// The stack.
    pub stack: StackId,
    /// Its labels.
    pub labels: LabelSetId,
}

/// A profile: samples of stacks with values in one or more sample types.
///
/// ```
/// use flameshift_profile::{Profile, SampleType};
/// let mut p = Profile::new(vec![SampleType::new("instructions", "instructions")]);
/// let stack = p.stack_from_names(["main", "handle", "parse"]);
/// p.push_sample(stack, flameshift_profile::LabelSetId::EMPTY, &[1_000]);
/// assert_eq!(p.total(0), 1_000);
/// ```
#[derive(Debug, Clone)]
pub struct Profile {
    /// Interned strings; id 0 is "".
    pub strings: Interner<Box<str>>,
    /// Interned frames.
    pub frames: Interner<Frame>,
    /// Interned stacks, root first.
    pub stacks: Interner<Box<[FrameId]>>,
    /// Interned label sets, each sorted; id 0 is the empty set.
    pub label_sets: Interner<Box<[Label]>>,
    /// What each sample value measures.
    pub sample_types: Vec<SampleType>,
    /// The sample type shown by default, if the producer said.
    pub default_sample_type: Option<usize>,
    /// The sampling period, if known.
    pub period: Option<Period>,
    /// Start of the profile, nanoseconds since the Unix epoch (0 if unknown).
    pub time_nanos: i64,
    /// Length of the profile in nanoseconds (0 if unknown).
    pub duration_nanos: i64,
    /// Labels that hold for every sample (e.g. `service`, `deploy`).
    pub labels: Vec<Label>,
    /// Free-form comments (the command line, the event, ...).
    pub comments: Vec<String>,
    /// Memory mappings, where the producer recorded them.
    pub mappings: Vec<Mapping>,
    samples: Vec<Sample>,
    values: Vec<i64>,
}

impl Default for Profile {
    fn default() -> Self {
        Profile::new(Vec::new())
    }
}

impl Profile {
    /// An empty profile with these sample types.
    pub fn new(sample_types: Vec<SampleType>) -> Self {
        let mut profile = Profile {
            strings: Interner::default(),
            frames: Interner::default(),
            stacks: Interner::default(),
            label_sets: Interner::default(),
            sample_types,
            default_sample_type: None,
            period: None,
            time_nanos: 0,
            duration_nanos: 0,
            labels: Vec::new(),
            comments: Vec::new(),
            mappings: Vec::new(),
            samples: Vec::new(),
            values: Vec::new(),
        };
        profile.strings.intern("");
        profile.label_sets.intern_owned(Box::default());
        profile
    }

    /// Interns a string.
    pub fn intern_str(&mut self, s: &str) -> StrId {
        StrId(self.strings.intern(s))
    }

    /// The text of an interned string.
    pub fn str(&self, id: StrId) -> &str {
        self.strings.get(id.0)
    }

    /// Interns a frame.
    pub fn intern_frame(&mut self, frame: Frame) -> FrameId {
        FrameId(self.frames.intern_owned(frame))
    }

    /// Interns a frame that has only a function name.
    pub fn frame_named(&mut self, function: &str) -> FrameId {
        let function = self.intern_str(function);
        self.intern_frame(Frame {
            function,
            ..Frame::default()
        })
    }

    /// A frame by id.
    pub fn frame(&self, id: FrameId) -> &Frame {
        self.frames.get(id.0)
    }

    /// Interns a stack given root first.
    pub fn intern_stack(&mut self, frames: &[FrameId]) -> StackId {
        StackId(self.stacks.intern(frames))
    }

    /// Interns a stack of name-only frames given root first.
    pub fn stack_from_names<'a>(&mut self, names: impl IntoIterator<Item = &'a str>) -> StackId {
        let frames: Vec<FrameId> = names.into_iter().map(|n| self.frame_named(n)).collect();
        self.intern_stack(&frames)
    }

    /// The frames of a stack, root first.
    pub fn stack(&self, id: StackId) -> &[FrameId] {
        self.stacks.get(id.0)
    }

    /// Interns a label set (sorted by key, then value, before interning).
    pub fn intern_labels(&mut self, mut labels: Vec<Label>) -> LabelSetId {
        self.intern_label_buf(&mut labels)
    }

    /// Like [`Profile::intern_labels`], sorting `labels` in place and
    /// allocating only when the set is new (for readers' hot loops).
    pub fn intern_label_buf(&mut self, labels: &mut Vec<Label>) -> LabelSetId {
        if labels.is_empty() {
            return LabelSetId::EMPTY;
        }
        labels.sort_unstable();
        labels.dedup();
        LabelSetId(self.label_sets.intern(&labels[..]))
    }

    /// The labels of a set.
    pub fn label_set(&self, id: LabelSetId) -> &[Label] {
        self.label_sets.get(id.0)
    }

    /// Interns a string label.
    pub fn str_label(&mut self, key: &str, value: &str) -> Label {
        Label {
            key: self.intern_str(key),
            value: LabelValue::Str(self.intern_str(value)),
        }
    }

    /// Interns a numeric label with an optional unit ("" for none).
    pub fn num_label(&mut self, key: &str, value: i64, unit: &str) -> Label {
        Label {
            key: self.intern_str(key),
            value: LabelValue::Num {
                value,
                unit: self.intern_str(unit),
            },
        }
    }

    /// Renders a label's value as text (`123` or `123 bytes` for numbers).
    pub fn label_value_text(&self, value: LabelValue) -> String {
        match value {
            LabelValue::Str(s) => self.str(s).to_owned(),
            LabelValue::Num { value, unit } if unit == StrId::EMPTY => value.to_string(),
            LabelValue::Num { value, unit } => format!("{value} {}", self.str(unit)),
        }
    }

    /// Adds a sample. `values` must have one entry per sample type.
    ///
    /// # Panics
    /// If `values.len()` differs from the number of sample types: that is a
    /// programming error, not bad input (readers check their input first).
    pub fn push_sample(&mut self, stack: StackId, labels: LabelSetId, values: &[i64]) {
        assert_eq!(values.len(), self.sample_types.len(), "one value per sample type");
        self.samples.push(Sample { stack, labels });
        self.values.extend_from_slice(values);
    }

    /// The samples, in insertion order.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// The values of sample `index`, one per sample type.
    pub fn values_of(&self, index: usize) -> &[i64] {
        let n = self.sample_types.len();
        &self.values[index * n..(index + 1) * n]
    }

    /// Samples with their values.
    pub fn iter_samples(&self) -> impl Iterator<Item = (Sample, &[i64])> + '_ {
        let n = self.sample_types.len().max(1);
        self.samples
            .iter()
            .copied()
            .zip(self.values.chunks(n).chain(std::iter::repeat(&[][..])))
    }

    /// Mutable access to all values (sample-major, one per sample type).
    pub(crate) fn values_mut(&mut self) -> &mut [i64] {
        &mut self.values
    }

    /// Removes all samples, keeping interned data and metadata.
    pub(crate) fn take_samples(&mut self) -> (Vec<Sample>, Vec<i64>) {
        (
            std::mem::take(&mut self.samples),
            std::mem::take(&mut self.values),
        )
    }

    /// Sum of the values of sample type `index` over all samples.
    pub fn total(&self, index: usize) -> i64 {
        if index >= self.sample_types.len() {
            return 0;
        }
        self.iter_samples()
            .fold(0i64, |acc, (_, v)| acc.saturating_add(v[index]))
    }

    /// The index of the sample type shown by default: the producer's
    /// choice, else the last one (pprof's convention: Go CPU profiles list
    /// `samples/count` then `cpu/nanoseconds`).
    pub fn default_value_index(&self) -> usize {
        self.default_sample_type
            .filter(|&i| i < self.sample_types.len())
            .unwrap_or(self.sample_types.len().saturating_sub(1))
    }

    /// Finds a sample type by `kind`, `unit` or `kind/unit`; `None` gives
    /// the default one.
    pub fn sample_type_index(&self, name: Option<&str>) -> crate::Result<usize> {
        let Some(name) = name else {
            if self.sample_types.is_empty() {
                return Err(crate::Error::NoSuchSampleType(
                    "(the profile has no sample types)".into(),
                ));
            }
            return Ok(self.default_value_index());
        };
        self.sample_types
            .iter()
            .position(|t| t.kind == name || t.to_string() == name)
            .or_else(|| self.sample_types.iter().position(|t| t.unit == name))
            .ok_or_else(|| {
                let known: Vec<String> = self.sample_types.iter().map(|t| t.to_string()).collect();
                crate::Error::NoSuchSampleType(format!("{name:?} (it has {})", known.join(", ")))
            })
    }

    /// The display name of a frame: its function, or for frames without a
    /// symbol the binary and address (`libc.so.6+0x1a2b`), or `[unknown]`.
    pub fn frame_name(&self, id: FrameId) -> std::borrow::Cow<'_, str> {
        let frame = self.frame(id);
        let name = self.str(frame.function);
        if !name.is_empty() {
            return name.into();
        }
        let binary = self.str(frame.binary);
        let base = binary.rsplit('/').next().unwrap_or(binary);
        match (base.is_empty(), frame.address) {
            (_, 0) if !base.is_empty() => format!("[{base}]").into(),
            (true, 0) => "[unknown]".into(),
            (true, addr) => format!("{addr:#x}").into(),
            (false, addr) => format!("{base}+{addr:#x}").into(),
        }
    }
}
