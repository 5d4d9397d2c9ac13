//! speedscope's JSON file format (write only): opens in
//! <https://www.speedscope.app> and in the Firefox Profiler.
//!
//! One speedscope profile of type `sampled` is written per sample type;
//! frames are shared. Units speedscope does not know (instructions,
//! counts) are written as `none`.

use std::io::Write;

use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::{Error, FrameId, Profile, Result};

#[derive(Serialize)]
struct File<'a> {
    #[serde(rename = "$schema")]
    schema: &'static str,
    shared: Shared,
    profiles: Vec<Sampled<'a>>,
    name: String,
    #[serde(rename = "activeProfileIndex")]
    active_profile_index: usize,
    exporter: String,
}

#[derive(Serialize)]
struct Shared {
    frames: Vec<FrameJson>,
}

#[derive(Serialize)]
struct FrameJson {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u32>,
}

#[derive(Serialize)]
struct Sampled<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: String,
    unit: &'static str,
    #[serde(rename = "startValue")]
    start_value: i64,
    #[serde(rename = "endValue")]
    end_value: i64,
    samples: &'a [Vec<usize>],
    weights: Vec<i64>,
}

/// speedscope's name for a pprof unit.
fn speedscope_unit(unit: &str) -> &'static str {
    match unit {
        "nanoseconds" => "nanoseconds",
        "microseconds" => "microseconds",
        "milliseconds" => "milliseconds",
        "seconds" => "seconds",
        "bytes" => "bytes",
        _ => "none",
    }
}

/// Writes `profile` as speedscope JSON, titled `name`.
pub fn write(profile: &Profile, name: &str, out: &mut dyn Write) -> Result<()> {
    let mut frame_index: FxHashMap<FrameId, usize> = FxHashMap::default();
    let mut frames = Vec::new();
    let mut stacks: Vec<Vec<usize>> = Vec::with_capacity(profile.samples().len());
    for sample in profile.samples() {
        let stack = profile
            .stack(sample.stack)
            .iter()
            .map(|&f| {
                *frame_index.entry(f).or_insert_with(|| {
                    let frame = profile.frame(f);
                    let file = profile.str(frame.file);
                    frames.push(FrameJson {
                        name: profile.frame_name(f).into_owned(),
                        file: (!file.is_empty()).then(|| file.to_owned()),
                        line: (frame.line != 0).then_some(frame.line),
                    });
                    frames.len() - 1
                })
            })
            .collect();
        stacks.push(stack);
    }
    let profiles = profile
        .sample_types
        .iter()
        .enumerate()
        .map(|(i, ty)| {
            let weights: Vec<i64> = profile.iter_samples().map(|(_, v)| v[i]).collect();
            Sampled {
                kind: "sampled",
                name: format!("{name} ({ty})"),
                unit: speedscope_unit(&ty.unit),
                start_value: 0,
                end_value: weights.iter().sum(),
                samples: &stacks,
                weights,
            }
        })
        .collect();
    let file = File {
        schema: "https://www.speedscope.app/file-format-schema.json",
        shared: Shared { frames },
        profiles,
        name: name.to_owned(),
        active_profile_index: profile.default_value_index(),
        exporter: format!("flameshift {}", env!("CARGO_PKG_VERSION")),
    };
    serde_json::to_writer(&mut *out, &file)?;
    out.write_all(b"\n").map_err(Error::io)
}
