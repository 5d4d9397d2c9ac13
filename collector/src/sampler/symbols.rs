//! From the sampler's raw addresses to a profile: stacks aggregated by
//! (addresses, label set), the process's own executable mappings from
//! `/proc/self/maps` (re-read when an address falls outside them, e.g.
//! after `dlopen`), and the [`Resolver`] of `flameshift record` (symbols,
//! lines, inlined frames, demangling, a cache per address).

use std::collections::HashMap;

use flameshift_profile::{LabelSetId, Period, Profile};

use super::buffer::RawSample;
use crate::counters::CounterMode;
use crate::labels;
use crate::symbolize::{Location, Maps, Resolver};

/// (count, weight) per leaf-first addresses, for one label set.
type StacksOfLabelSet = HashMap<Box<[u64]>, (i64, i64)>;

/// Summed samples per label set and leaf-first addresses: (count,
/// weight). Keyed by label set first so that a sample whose stack was
/// seen before is counted without allocating.
#[derive(Debug, Default, Clone)]
pub struct StackCounts {
    counts: HashMap<u32, StacksOfLabelSet>,
}

impl StackCounts {
    /// Adds raw samples.
    pub fn add(&mut self, samples: &[RawSample]) {
        for s in samples {
            self.add_one(s.labels, s.weight, &s.frames);
        }
    }

    /// Adds one sample.
    pub fn add_one(&mut self, labels: u32, weight: u64, frames: &[u64]) {
        let stacks = self.counts.entry(labels).or_default();
        let entry = match stacks.get_mut(frames) {
            Some(entry) => entry,
            None => stacks.entry(frames.into()).or_default(),
        };
        entry.0 += 1;
        entry.1 = entry.1.saturating_add(weight as i64);
    }

    /// Forgets every sample, keeping the tables' memory for the next interval.
    pub fn clear(&mut self) {
        self.counts.values_mut().for_each(HashMap::clear);
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.counts.values().all(HashMap::is_empty)
    }

    /// Samples added.
    pub fn samples(&self) -> i64 {
        self.counts.values().flat_map(|s| s.values()).map(|c| c.0).sum()
    }

    /// Each stack: (addresses, label set, (count, weight)).
    fn iter(&self) -> impl Iterator<Item = (&[u64], u32, (i64, i64))> + '_ {
        self.counts
            .iter()
            .flat_map(|(&labels, stacks)| stacks.iter().map(move |(a, &c)| (&**a, labels, c)))
    }
}

/// Symbolizes this process's own addresses.
#[derive(Default)]
pub struct SelfSymbolizer {
    maps: Maps,
    resolver: Resolver,
    loaded: bool,
}

impl std::fmt::Debug for SelfSymbolizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfSymbolizer")
            .field("loaded", &self.loaded)
            .finish()
    }
}

fn pid() -> u32 {
    std::process::id()
}

impl SelfSymbolizer {
    fn reload(&mut self) {
        let Ok(text) = std::fs::read_to_string("/proc/self/maps") else {
            return;
        };
        for line in text.lines() {
            let mut fields = line.split_whitespace();
            let (Some(range), Some(perms), Some(offset)) = (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let path = fields.nth(2).unwrap_or("");
            if !perms.contains('x') {
                continue;
            }
            let Some((start, end)) = range.split_once('-') else {
                continue;
            };
            let (Ok(start), Ok(end), Ok(offset)) = (
                u64::from_str_radix(start, 16),
                u64::from_str_radix(end, 16),
                u64::from_str_radix(offset, 16),
            ) else {
                continue;
            };
            self.maps
                .mmap(pid(), start, end.saturating_sub(start), offset, path);
        }
        self.loaded = true;
    }

    fn locations(&mut self, addresses: &[u64]) -> Vec<Location> {
        addresses
            .iter()
            .enumerate()
            // Return addresses point after the call: look up the call itself.
            .map(|(i, &a)| {
                self.maps
                    .locate_with_jit(pid(), if i == 0 { a } else { a.saturating_sub(1) })
            })
            .collect()
    }

    /// The profile of `stacks`: sample types `samples/count` and the
    /// counter's (`cpu/instructions` or `cpu/nanoseconds`, the default),
    /// labels from the label sets.
    pub fn profile(&mut self, stacks: &StackCounts, mode: CounterMode, period: u64) -> Profile {
        if !self.loaded {
            self.reload();
        }
        let ty = mode.sample_type();
        let mut profile = Profile::new(vec![
            flameshift_profile::SampleType::new("samples", "count"),
            ty.clone(),
        ]);
        profile.default_sample_type = Some(1);
        profile.period = Some(Period {
            kind: ty,
            value: period as i64,
        });
        let mut located: Vec<(Vec<Location>, u32, (i64, i64))> = Vec::new();
        let mut reloaded = false;
        for (addresses, labels, counts) in stacks.iter() {
            let mut locations = self.locations(addresses);
            if !reloaded && locations.iter().any(|l| matches!(l, Location::Unknown(_))) {
                self.reload();
                reloaded = true;
                locations = self.locations(addresses);
            }
            located.push((locations, labels, counts));
        }
        // Cached frames are ids in the previous interval's profile.
        self.resolver.forget_frames();
        self.resolver.prepare(
            &mut profile,
            located.iter().flat_map(|(l, _, _)| l.iter().cloned()),
        );
        let mut label_sets: HashMap<u32, LabelSetId> = HashMap::new();
        let mut frames = Vec::new();
        for (locations, labels, (count, weight)) in located {
            frames.clear();
            for location in locations.iter().rev() {
                frames.extend_from_slice(self.resolver.frames(location));
            }
            let stack = profile.intern_stack(&frames);
            let set = match label_sets.get(&labels) {
                Some(&set) => set,
                None => {
                    let resolved = labels::resolve(labels::LabelSetId(labels));
                    let list: Vec<_> = resolved.iter().map(|(k, v)| profile.str_label(k, v)).collect();
                    let set = if list.is_empty() {
                        LabelSetId::EMPTY
                    } else {
                        profile.intern_labels(list)
                    };
                    label_sets.insert(labels, set);
                    set
                }
            };
            profile.push_sample(stack, set, &[count, weight]);
        }
        profile
    }
}
