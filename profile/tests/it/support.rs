//! Shared helpers: fixture paths and a canonical view of a profile.

use std::path::PathBuf;

use flameshift_profile::format::{self, ReadOptions};
use flameshift_profile::{LabelValue, Profile};

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// Every fixture made by a real tool or by hand, by name.
pub const FIXTURES: &[&str] = &[
    "go/cpu.pb.gz",
    "pprof-rs/cpu.pb",
    "perf/workload.perf-script",
    "edge/empty.pb.gz",
    "edge/names.pb",
    "edge/names.folded",
    "edge/multi.pb.gz",
    "edge/deep.folded",
    "edge/zero.folded",
];

pub fn read_fixture(name: &str) -> Profile {
    format::read_path(&fixtures().join(name), &ReadOptions::default())
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A sample in plain data: frames as (name, file, line, inlined), labels
/// as sorted text, values. Independent of interning order.
pub type CanonicalSample = (Vec<(String, String, u32, bool)>, Vec<(String, String)>, Vec<i64>);

pub fn canonical(p: &Profile) -> Vec<CanonicalSample> {
    let mut out: Vec<CanonicalSample> = p
        .iter_samples()
        .map(|(s, values)| {
            let frames = p
                .stack(s.stack)
                .iter()
                .map(|&f| {
                    let fr = p.frame(f);
                    (
                        p.frame_name(f).into_owned(),
                        p.str(fr.file).to_owned(),
                        fr.line,
                        fr.inlined,
                    )
                })
                .collect();
            let mut labels: Vec<(String, String)> = p
                .label_set(s.labels)
                .iter()
                .map(|l| {
                    let v = match l.value {
                        LabelValue::Str(v) => format!("s:{}", p.str(v)),
                        LabelValue::Num { value, unit } => format!("n:{value}:{}", p.str(unit)),
                    };
                    (p.str(l.key).to_owned(), v)
                })
                .collect();
            labels.sort();
            (frames, labels, values.to_vec())
        })
        .collect();
    out.sort();
    out
}
