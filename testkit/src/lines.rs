//! A profile that says where functions' code is: what a profile with
//! debug info adds to the analyzer's facts about a deploy (the spans
//! suspect commits are ranked by).

use flameshift_analyzer::profile::{format, Frame, LabelSetId, Profile, SampleType};

/// A tiny gzipped pprof at `time_ms`: for each `(function, file, lines)`,
/// one sample (1 ns) on a frame of each line.
pub fn profile_with_lines(functions: &[(&str, &str, &[u32])], time_ms: i64) -> Vec<u8> {
    let mut p = Profile::new(vec![
        SampleType::new("samples", "count"),
        SampleType::new("cpu", "nanoseconds"),
    ]);
    p.time_nanos = time_ms * 1_000_000;
    for (function, file, lines) in functions {
        let (name, file) = (p.intern_str(function), p.intern_str(file));
        for &line in *lines {
            let frame = p.intern_frame(Frame {
                function: name,
                file,
                line,
                ..Frame::default()
            });
            let stack = p.intern_stack(&[frame]);
            p.push_sample(stack, LabelSetId::EMPTY, &[1, 1]);
        }
    }
    let mut out = Vec::new();
    format::pprof::write(&p, &mut out).unwrap();
    out
}
