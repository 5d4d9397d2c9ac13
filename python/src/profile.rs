//! A cut table of Python stacks made into a profile: samples and a
//! cost per stack (frame ids of [`FrameIds`], root first) and endpoint.

use flameshift_profile::{Frame, LabelSetId, Period, Profile, SampleType};
use rustc_hash::FxHashMap;

use crate::reader::FrameIds;

/// The profile of `stacks` (endpoint, frame ids root first, samples,
/// cost in `cost`'s unit), each sample standing for `period` of it on
/// average, with `comment` saying how it was sampled.
pub fn build<'a>(
    stacks: impl IntoIterator<Item = (Option<&'a str>, &'a [u32], i64, i64)>,
    frames: &FrameIds,
    cost: SampleType,
    period: i64,
    comment: String,
) -> Profile {
    let mut profile = Profile::new(vec![SampleType::new("samples", "count"), cost.clone()]);
    profile.default_sample_type = Some(1);
    profile.period = Some(Period {
        kind: cost,
        value: period,
    });
    profile.comments.push(comment);
    let mut ids: FxHashMap<u32, flameshift_profile::FrameId> = FxHashMap::default();
    let mut sets: FxHashMap<&str, LabelSetId> = FxHashMap::default();
    let mut stack = Vec::new();
    for (endpoint, frame_ids, count, weight) in stacks {
        stack.clear();
        for id in frame_ids {
            let frame = match ids.get(id) {
                Some(&frame) => frame,
                None => {
                    let (name, file, line) = &frames.frames[*id as usize];
                    let frame = Frame {
                        function: profile.intern_str(name),
                        file: profile.intern_str(file),
                        line: u32::try_from(*line).unwrap_or(0),
                        ..Frame::default()
                    };
                    let frame = profile.intern_frame(frame);
                    ids.insert(*id, frame);
                    frame
                }
            };
            stack.push(frame);
        }
        let stack = profile.intern_stack(&stack);
        let labels = match endpoint {
            None => LabelSetId::EMPTY,
            Some(endpoint) => match sets.get(endpoint) {
                Some(&set) => set,
                None => {
                    let label = profile.str_label("endpoint", endpoint);
                    let set = profile.intern_labels(vec![label]);
                    sets.insert(endpoint, set);
                    set
                }
            },
        };
        profile.push_sample(stack, labels, &[count, weight]);
    }
    profile
}
