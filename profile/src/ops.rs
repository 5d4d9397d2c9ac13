//! Operations on profiles: merge, filter by labels, scale, fold into
//! stacks, top functions. Pure functions over data.
//!
//! Length: over 600 lines with its tests: about 530 lines of code; the rest is its tests.

use std::collections::BTreeMap;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::{Error, FrameId, Label, LabelSetId, LabelValue, Profile, Result, StackId, StrId};

/// A `key=value` condition on labels (string or numeric value as text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSelector {
    /// The label key.
    pub key: String,
    /// The value it must have.
    pub value: String,
}

impl std::str::FromStr for LabelSelector {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => Ok(LabelSelector {
                key: key.trim().to_owned(),
                value: value.to_owned(),
            }),
            _ => Err(Error::BadLabelSelector(s.to_owned())),
        }
    }
}

/// One function's cost in a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionCost {
    /// Function name as displayed.
    pub name: String,
    /// Value of samples where the function is the leaf.
    pub self_value: i64,
    /// Value of samples where the function is anywhere on the stack
    /// (counted once per sample even under recursion).
    pub inclusive_value: i64,
}

/// Which cost to rank functions by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TopBy {
    /// Self cost.
    #[default]
    SelfCost,
    /// Inclusive cost.
    Inclusive,
}

/// How to fold a profile into stacks.
#[derive(Debug, Clone, Default)]
pub struct FoldOptions {
    /// Which sample type's values to use.
    pub value_index: usize,
    /// Prepend this label's value (e.g. `thread`) as an extra root frame,
    /// as `perf` + inferno do with the process name.
    pub root_label: Option<String>,
}

impl Profile {
    /// Appends `other`'s samples to this profile.
    ///
    /// Sample types must match exactly (kind and unit, in order): flameshift
    /// never mixes or converts units. Profile-level labels that the two do
    /// not share are moved down onto the samples they came with, so that
    /// filtering by them still works after the merge.
    pub fn merge(&mut self, other: &Profile) -> Result<()> {
        if self.sample_types != other.sample_types {
            let show = |p: &Profile| {
                p.sample_types
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            return Err(Error::MismatchedUnits {
                left: show(self),
                right: show(other),
            });
        }
        let other_labels: Vec<Label> = other
            .labels
            .iter()
            .map(|l| remap_label(self, other, *l))
            .collect();
        let (shared, only_self): (Vec<Label>, Vec<Label>) =
            self.labels.iter().partition(|l| other_labels.contains(l));
        let only_other: Vec<Label> = other_labels
            .iter()
            .filter(|l| !shared.contains(l))
            .copied()
            .collect();
        if !only_self.is_empty() {
            self.push_labels_down(&only_self);
        }
        self.labels = shared;

        let mut frame_map: FxHashMap<FrameId, FrameId> = FxHashMap::default();
        let mut stack_map: FxHashMap<StackId, StackId> = FxHashMap::default();
        let mut label_map: FxHashMap<LabelSetId, LabelSetId> = FxHashMap::default();
        let mut buf = Vec::new();
        for (sample, values) in other.iter_samples() {
            let stack = match stack_map.get(&sample.stack) {
                Some(&s) => s,
                None => {
                    buf.clear();
                    for &f in other.stack(sample.stack) {
                        let mapped = *frame_map.entry(f).or_insert_with(|| remap_frame(self, other, f));
                        buf.push(mapped);
                    }
                    let s = self.intern_stack(&buf);
                    stack_map.insert(sample.stack, s);
                    s
                }
            };
            let labels = match label_map.get(&sample.labels) {
                Some(&l) => l,
                None => {
                    let mut set: Vec<Label> = other
                        .label_set(sample.labels)
                        .iter()
                        .map(|l| remap_label(self, other, *l))
                        .collect();
                    add_missing_keys(&mut set, &only_other);
                    let l = self.intern_labels(set);
                    label_map.insert(sample.labels, l);
                    l
                }
            };
            self.push_sample(stack, labels, values);
        }
        for mapping in &other.mappings {
            let mapping = crate::Mapping {
                file: remap_str(self, other, mapping.file),
                build_id: remap_str(self, other, mapping.build_id),
                ..mapping.clone()
            };
            if !self.mappings.contains(&mapping) {
                self.mappings.push(mapping);
            }
        }
        self.merge_time_range(other);
        if self.period.is_none() {
            self.period = other.period.clone();
        }
        for comment in &other.comments {
            if !self.comments.contains(comment) {
                self.comments.push(comment.clone());
            }
        }
        Ok(())
    }

    fn merge_time_range(&mut self, other: &Profile) {
        if other.time_nanos == 0 {
            return;
        }
        if self.time_nanos == 0 {
            self.time_nanos = other.time_nanos;
            self.duration_nanos = other.duration_nanos;
            return;
        }
        let end = (self.time_nanos + self.duration_nanos).max(other.time_nanos + other.duration_nanos);
        self.time_nanos = self.time_nanos.min(other.time_nanos);
        self.duration_nanos = end - self.time_nanos;
    }

    /// Copies `labels` onto every sample that has no label with that key.
    fn push_labels_down(&mut self, labels: &[Label]) {
        let mut cache: FxHashMap<LabelSetId, LabelSetId> = FxHashMap::default();
        let (samples, values) = self.take_samples();
        for (i, sample) in samples.iter().enumerate() {
            let set = match cache.get(&sample.labels) {
                Some(&s) => s,
                None => {
                    let mut set = self.label_set(sample.labels).to_vec();
                    add_missing_keys(&mut set, labels);
                    let s = self.intern_labels(set);
                    cache.insert(sample.labels, s);
                    s
                }
            };
            let n = self.sample_types.len();
            self.push_sample(sample.stack, set, &values[i * n..(i + 1) * n]);
        }
    }

    /// Merges several profiles into one (see [`Profile::merge`]).
    pub fn merge_all(profiles: impl IntoIterator<Item = Profile>) -> Result<Profile> {
        let mut iter = profiles.into_iter();
        let Some(mut first) = iter.next() else {
            return Ok(Profile::default());
        };
        for p in iter {
            first.merge(&p)?;
        }
        Ok(first)
    }

    /// Keeps only the samples whose labels match every selector. A sample
    /// without the key matches when the profile-level label does.
    pub fn filter_labels(&self, selectors: &[LabelSelector]) -> Profile {
        let mut out = self.clone();
        if selectors.is_empty() {
            return out;
        }
        let mut verdicts: FxHashMap<LabelSetId, bool> = FxHashMap::default();
        let (samples, values) = out.take_samples();
        let n = out.sample_types.len();
        for (i, sample) in samples.iter().enumerate() {
            let keep = *verdicts
                .entry(sample.labels)
                .or_insert_with(|| self.labels_match(sample.labels, selectors));
            if keep {
                out.push_sample(sample.stack, sample.labels, &values[i * n..(i + 1) * n]);
            }
        }
        out
    }

    fn labels_match(&self, set: LabelSetId, selectors: &[LabelSelector]) -> bool {
        let set = self.label_set(set);
        selectors.iter().all(|sel| {
            let found = set
                .iter()
                .chain(self.labels.iter())
                .find(|l| self.str(l.key) == sel.key);
            found.is_some_and(|l| self.label_text_matches(l.value, &sel.value))
        })
    }

    fn label_text_matches(&self, value: LabelValue, wanted: &str) -> bool {
        match value {
            LabelValue::Str(s) => self.str(s) == wanted,
            num @ LabelValue::Num { value, .. } => {
                wanted.parse::<i64>() == Ok(value) || self.label_value_text(num) == wanted
            }
        }
    }

    /// Multiplies every value by `factor`, rounding to the nearest integer.
    pub fn scale(&mut self, factor: f64) {
        for v in self.values_mut() {
            *v = (*v as f64 * factor).round() as i64;
        }
    }

    /// Folds the profile into `stack → value` with frame names joined by
    /// `;`, root first, sorted by stack text: the folded-stacks format of
    /// Brendan Gregg's tools and inferno. A `;` inside a name is written as
    /// `:` and line breaks as spaces, so that every line parses back.
    pub fn fold(&self, options: &FoldOptions) -> BTreeMap<String, i64> {
        self.fold_sorted(options).into_iter().collect()
    }

    /// [`Profile::fold`] as a vector sorted by stack text, each stack once.
    pub fn fold_sorted(&self, options: &FoldOptions) -> Vec<(String, i64)> {
        let index = options.value_index;
        let mut by_stack: FxHashMap<(StackId, LabelSetId), i64> = FxHashMap::default();
        for (sample, values) in self.iter_samples() {
            let Some(&value) = values.get(index) else {
                continue;
            };
            let labels = if options.root_label.is_some() {
                sample.labels
            } else {
                LabelSetId::EMPTY
            };
            let entry = by_stack.entry((sample.stack, labels)).or_default();
            *entry = entry.saturating_add(value);
        }
        let root_key = options
            .root_label
            .as_deref()
            .and_then(|k| self.strings.lookup(k))
            .map(StrId);
        // Display names, each distinct text once; frames and root labels
        // map to name ids, so that sorting compares integers until the
        // first frame whose text differs.
        let mut names = NameTable::default();
        let mut frame_names: Vec<u32> = vec![u32::MAX; self.frames.len()];
        let mut entries: Vec<FoldEntry> = Vec::with_capacity(by_stack.len());
        for ((stack, labels), value) in by_stack {
            let root = root_key.and_then(|key| {
                let label = self
                    .label_set(labels)
                    .iter()
                    .chain(self.labels.iter())
                    .find(|l| l.key == key)?;
                Some(names.intern(folded_name(&self.label_value_text(label.value))))
            });
            for &frame in self.stack(stack) {
                if frame_names[frame.0 as usize] == u32::MAX {
                    frame_names[frame.0 as usize] = names.intern(folded_name(&self.frame_name(frame)));
                }
            }
            entries.push(FoldEntry { root, stack, value });
        }
        let sequence = |e: &FoldEntry| {
            e.root
                .into_iter()
                .chain(self.stack(e.stack).iter().map(|f| frame_names[f.0 as usize]))
        };
        entries.sort_unstable_by(|a, b| names.compare_joined(sequence(a), sequence(b)));
        let mut lines: Vec<(String, i64)> = Vec::with_capacity(entries.len());
        let mut previous: Option<&FoldEntry> = None;
        for entry in &entries {
            if let Some(prev) = previous {
                if sequence(prev).eq(sequence(entry)) {
                    if let Some(last) = lines.last_mut() {
                        last.1 = last.1.saturating_add(entry.value);
                    }
                    continue;
                }
            }
            previous = Some(entry);
            let mut line = String::with_capacity(self.stack(entry.stack).len() * 24);
            for (i, id) in sequence(entry).enumerate() {
                if i > 0 {
                    line.push(';');
                }
                line.push_str(names.text(id));
            }
            lines.push((line, entry.value));
        }
        lines
    }

    /// Self and inclusive cost per function name, ranked by `by`
    /// (descending, then by name), for sample type `value_index`.
    pub fn top_functions(&self, value_index: usize, by: TopBy) -> Vec<FunctionCost> {
        let mut by_stack: FxHashMap<StackId, i64> = FxHashMap::default();
        for (sample, values) in self.iter_samples() {
            if let Some(&v) = values.get(value_index) {
                let e = by_stack.entry(sample.stack).or_default();
                *e = e.saturating_add(v);
            }
        }
        let mut costs: FxHashMap<StrId, (i64, i64)> = FxHashMap::default();
        let mut synthetic: FxHashMap<FrameId, StrId> = FxHashMap::default();
        let mut extra_names: Vec<String> = Vec::new();
        let mut seen: FxHashSet<StrId> = FxHashSet::default();
        for (stack, value) in by_stack {
            seen.clear();
            let frames = self.stack(stack);
            for (i, &frame) in frames.iter().enumerate() {
                let key = self.function_key(frame, &mut synthetic, &mut extra_names);
                let entry = costs.entry(key).or_default();
                if i + 1 == frames.len() {
                    entry.0 = entry.0.saturating_add(value);
                }
                if seen.insert(key) {
                    entry.1 = entry.1.saturating_add(value);
                }
            }
        }
        let mut out: Vec<FunctionCost> = costs
            .into_iter()
            .map(|(key, (self_value, inclusive_value))| FunctionCost {
                name: self.function_key_name(key, &extra_names),
                self_value,
                inclusive_value,
            })
            .collect();
        out.sort_by(|a, b| {
            let (ka, kb) = match by {
                TopBy::SelfCost => (
                    (a.self_value, a.inclusive_value),
                    (b.self_value, b.inclusive_value),
                ),
                TopBy::Inclusive => (
                    (a.inclusive_value, a.self_value),
                    (b.inclusive_value, b.self_value),
                ),
            };
            kb.cmp(&ka).then_with(|| a.name.cmp(&b.name))
        });
        out
    }

    /// Frames with a function name are keyed by that name; frames without
    /// one get a synthetic key (above the string table) for their display name.
    fn function_key(
        &self,
        frame: FrameId,
        synthetic: &mut FxHashMap<FrameId, StrId>,
        extra_names: &mut Vec<String>,
    ) -> StrId {
        let function = self.frame(frame).function;
        if function != StrId::EMPTY {
            return function;
        }
        *synthetic.entry(frame).or_insert_with(|| {
            let name = self.frame_name(frame).into_owned();
            let existing = extra_names.iter().position(|n| *n == name);
            let index = existing.unwrap_or_else(|| {
                extra_names.push(name);
                extra_names.len() - 1
            });
            StrId(self.strings.len() as u32 + index as u32)
        })
    }

    fn function_key_name(&self, key: StrId, extra_names: &[String]) -> String {
        let n = self.strings.len() as u32;
        if key.0 < n {
            self.str(key).to_owned()
        } else {
            extra_names[(key.0 - n) as usize].clone()
        }
    }
}

struct FoldEntry {
    root: Option<u32>,
    stack: StackId,
    value: i64,
}

/// Distinct display names, by id.
#[derive(Default)]
struct NameTable {
    texts: Vec<String>,
    ids: FxHashMap<String, u32>,
}

impl NameTable {
    fn intern(&mut self, text: String) -> u32 {
        if let Some(&id) = self.ids.get(&text) {
            return id;
        }
        let id = self.texts.len() as u32;
        self.texts.push(text.clone());
        self.ids.insert(text, id);
        id
    }

    fn text(&self, id: u32) -> &str {
        &self.texts[id as usize]
    }

    /// Orders two name sequences exactly as their `;`-joined texts would
    /// order, comparing text only at the first position where they differ.
    /// Names never contain `;` (see [`folded_name`]).
    fn compare_joined(
        &self,
        mut a: impl Iterator<Item = u32>,
        mut b: impl Iterator<Item = u32>,
    ) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        loop {
            let (x, y) = match (a.next(), b.next()) {
                (None, None) => return Ordering::Equal,
                (None, Some(_)) => return Ordering::Less,
                (Some(_), None) => return Ordering::Greater,
                (Some(x), Some(y)) if x == y => continue,
                (Some(x), Some(y)) => (self.text(x).as_bytes(), self.text(y).as_bytes()),
            };
            let common = x.len().min(y.len());
            if x[..common] != y[..common] || x.len() == y.len() {
                return x.cmp(y);
            }
            // One name is a proper prefix of the other: the shorter side
            // continues with `;`, or ends if it has no more frames.
            return if x.len() < y.len() {
                match a.next() {
                    None => Ordering::Less,
                    Some(_) => b';'.cmp(&y[common]),
                }
            } else {
                match b.next() {
                    None => Ordering::Greater,
                    Some(_) => x[common].cmp(&b';'),
                }
            };
        }
    }
}

/// A frame name made safe for one field of a folded line.
pub fn folded_name(name: &str) -> String {
    if name.contains([';', '\n', '\r']) {
        name.replace(';', ":").replace(['\n', '\r'], " ")
    } else {
        name.to_owned()
    }
}

fn add_missing_keys(set: &mut Vec<Label>, labels: &[Label]) {
    for label in labels {
        if !set.iter().any(|l| l.key == label.key) {
            set.push(*label);
        }
    }
}

fn remap_str(to: &mut Profile, from: &Profile, id: StrId) -> StrId {
    to.intern_str(from.str(id))
}

fn remap_frame(to: &mut Profile, from: &Profile, id: FrameId) -> FrameId {
    let f = *from.frame(id);
    let frame = crate::Frame {
        function: remap_str(to, from, f.function),
        file: remap_str(to, from, f.file),
        binary: remap_str(to, from, f.binary),
        ..f
    };
    to.intern_frame(frame)
}

fn remap_label(to: &mut Profile, from: &Profile, label: Label) -> Label {
    Label {
        key: remap_str(to, from, label.key),
        value: match label.value {
            LabelValue::Str(s) => LabelValue::Str(remap_str(to, from, s)),
            LabelValue::Num { value, unit } => LabelValue::Num {
                value,
                unit: remap_str(to, from, unit),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SampleType;

    fn profile(kind: &str, unit: &str, stacks: &[(&[&str], i64)]) -> Profile {
        let mut p = Profile::new(vec![SampleType::new(kind, unit)]);
        for (names, v) in stacks {
            let s = p.stack_from_names(names.iter().copied());
            p.push_sample(s, LabelSetId::EMPTY, &[*v]);
        }
        p
    }

    #[test]
    fn merge_refuses_mismatched_units() {
        let mut a = profile("cpu", "nanoseconds", &[(&["main"], 1)]);
        let b = profile("instructions", "instructions", &[(&["main"], 1)]);
        let err = a.merge(&b).unwrap_err();
        assert!(matches!(err, Error::MismatchedUnits { .. }));
        assert!(err.to_string().contains("cpu/nanoseconds"), "{err}");
        assert_eq!(a.samples().len(), 1, "a failed merge changes nothing");
    }

    #[test]
    fn merge_adds_values_and_keeps_distinct_profile_labels_on_samples() {
        let mut a = profile("cpu", "nanoseconds", &[(&["main", "f"], 10)]);
        let label = a.str_label("deploy", "v1");
        a.labels.push(label);
        let mut b = profile("cpu", "nanoseconds", &[(&["main", "f"], 5), (&["main", "g"], 1)]);
        let label = b.str_label("deploy", "v2");
        b.labels.push(label);
        a.merge(&b).unwrap();
        assert_eq!(a.total(0), 16);
        assert!(a.labels.is_empty(), "deploy differs, so it is not profile-level");
        let v1 = a.filter_labels(&["deploy=v1".parse().unwrap()]);
        let v2 = a.filter_labels(&["deploy=v2".parse().unwrap()]);
        assert_eq!((v1.total(0), v2.total(0)), (10, 6));
        assert_eq!(a.fold(&FoldOptions::default()).get("main;f"), Some(&15));
    }

    #[test]
    fn filter_matches_sample_and_numeric_labels() {
        let mut p = profile("cpu", "nanoseconds", &[]);
        let s = p.stack_from_names(["a"]);
        let l1 = p.str_label("endpoint", "GET /x");
        let l2 = p.num_label("pid", 42, "");
        let set = p.intern_labels(vec![l1, l2]);
        p.push_sample(s, set, &[3]);
        p.push_sample(s, LabelSetId::EMPTY, &[4]);
        assert_eq!(p.filter_labels(&["endpoint=GET /x".parse().unwrap()]).total(0), 3);
        assert_eq!(p.filter_labels(&["pid=42".parse().unwrap()]).total(0), 3);
        assert_eq!(p.filter_labels(&["pid=43".parse().unwrap()]).total(0), 0);
        assert!("novalue".parse::<LabelSelector>().is_err());
        assert!("=x".parse::<LabelSelector>().is_err());
    }

    #[test]
    fn top_counts_recursion_once_and_self_only_at_leaf() {
        let p = profile(
            "cpu",
            "nanoseconds",
            &[(&["main", "rec", "rec", "leaf"], 10), (&["main", "rec"], 5)],
        );
        let top = p.top_functions(0, TopBy::Inclusive);
        let get = |n: &str| top.iter().find(|f| f.name == n).unwrap().clone();
        assert_eq!(get("rec").inclusive_value, 15);
        assert_eq!(get("rec").self_value, 5);
        assert_eq!(get("leaf").self_value, 10);
        assert_eq!(get("main").self_value, 0);
        // main and rec tie on inclusive cost; self cost breaks the tie.
        assert_eq!(top[0].name, "rec");
        assert_eq!(top[1].name, "main");
        assert_eq!(p.top_functions(0, TopBy::SelfCost)[0].name, "leaf");
    }

    #[test]
    fn fold_order_is_exactly_the_order_of_the_joined_text() {
        // Prefixes and characters below and above `;` (0x3B) are the cases
        // where comparing names one by one could differ from the text.
        let names: &[&[&str]] = &[
            &["a"],
            &["a", "b"],
            &["a b"],
            &["a", "b c"],
            &["ab"],
            &["a", "b", "c"],
            &["a!"],
            &["a<"],
            &["a", "bb"],
            &["a", "b!"],
            &["a", "b<"],
            &["b"],
            &["a:"],
        ];
        let stacks: Vec<(&[&str], i64)> = names.iter().map(|n| (*n, 1)).collect();
        let p = profile("cpu", "nanoseconds", &stacks);
        let folded: Vec<String> = p
            .fold_sorted(&FoldOptions::default())
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        let mut expected: Vec<String> = names.iter().map(|n| n.join(";")).collect();
        expected.sort();
        assert_eq!(folded, expected);
    }

    #[test]
    fn fold_merges_stacks_whose_names_are_equal() {
        let mut p = profile("cpu", "nanoseconds", &[]);
        let f = p.intern_str("f");
        let a = p.intern_frame(crate::Frame {
            function: f,
            line: 1,
            ..Default::default()
        });
        let b = p.intern_frame(crate::Frame {
            function: f,
            line: 2,
            ..Default::default()
        });
        let (sa, sb) = (p.intern_stack(&[a]), p.intern_stack(&[b]));
        p.push_sample(sa, LabelSetId::EMPTY, &[2]);
        p.push_sample(sb, LabelSetId::EMPTY, &[3]);
        assert_eq!(p.fold_sorted(&FoldOptions::default()), vec![("f".to_owned(), 5)]);
    }

    #[test]
    fn scale_rounds_and_fold_escapes_separators() {
        let mut p = profile("cpu", "nanoseconds", &[(&["a;b", "c\nd"], 3)]);
        p.scale(2.5);
        let folded = p.fold(&FoldOptions::default());
        assert_eq!(
            folded.into_iter().collect::<Vec<_>>(),
            vec![("a:b;c d".to_owned(), 8)]
        );
    }
}
