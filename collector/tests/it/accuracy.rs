//! Accuracy against known truth: `fixtures/hot/hot.rs` spends 50%, 30% and
//! 20% of its time in `alpha`, `beta` and `gamma`. Built here with rustc,
//! with and without frame pointers, and recorded with each call-graph mode
//! that should work for it: the shares must come out within ±5 points and
//! the stacks must be whole (from `_start` or `main` down to `work`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use flameshift_collector::perf::event::{CallGraph, EventChoice, Rate};
use flameshift_collector::recorder::{record, RecordOptions};
use flameshift_profile::{FoldOptions, TopBy};

fn build(dir: &Path, frame_pointers: bool) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/hot/hot.rs");
    let exe = dir.join(if frame_pointers { "hot-fp" } else { "hot-nofp" });
    let flag = if frame_pointers {
        "force-frame-pointers=yes"
    } else {
        "force-frame-pointers=no"
    };
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let status = std::process::Command::new(rustc)
        .args(["-O", "-C", flag, "-o"])
        .arg(&exe)
        .arg(&source)
        .env_remove("RUSTFLAGS")
        .status()
        .expect("rustc");
    assert!(status.success());
    exe
}

fn check(exe: &Path, call_graph: CallGraph) {
    let options = RecordOptions {
        event: EventChoice::Auto,
        rate: Rate::Frequency(999),
        call_graph,
        ..Default::default()
    };
    let command: Vec<OsString> = vec![exe.into(), "50".into()];
    let recording = record(&command, &options).unwrap();
    let p = &recording.profile;
    let value = p.default_value_index();
    let label = format!("{} {call_graph:?}", exe.display());
    assert!(p.samples().len() > 300, "{label}: {} samples", p.samples().len());
    let top = p.top_functions(value, TopBy::Inclusive);
    let total = p.total(value) as f64;
    let share = |name: &str| {
        top.iter()
            .find(|f| f.name == name)
            .map_or(0.0, |f| 100.0 * f.inclusive_value as f64 / total)
    };
    for (name, expected) in [("hot::alpha", 50.0), ("hot::beta", 30.0), ("hot::gamma", 20.0)] {
        let got = share(name);
        assert!(
            (got - expected).abs() <= 5.0,
            "{label}: {name} {got:.1}% (expected {expected}%)"
        );
    }
    let folded = p.fold(&FoldOptions {
        value_index: value,
        root_label: None,
    });
    let whole: i64 = folded
        .iter()
        .filter(|(stack, _)| {
            (stack.starts_with("_start;") || stack.starts_with("__libc_start_call_main;"))
                && stack.contains(";hot::main;")
        })
        .map(|(_, v)| *v)
        .sum();
    assert!(
        whole as f64 > 0.9 * total,
        "{label}: only {:.0}% of stacks are whole",
        100.0 * whole as f64 / total
    );
}

#[test]
fn frame_pointer_build_in_every_mode() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let exe = build(dir.path(), true);
    for mode in [CallGraph::FramePointers, CallGraph::Dwarf, CallGraph::Auto] {
        check(&exe, mode);
    }
}

#[test]
fn build_without_frame_pointers_needs_dwarf() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let exe = build(dir.path(), false);
    for mode in [CallGraph::Dwarf, CallGraph::Auto] {
        check(&exe, mode);
    }
}
