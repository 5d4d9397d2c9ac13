//! Against `perf record -g` + `perf script` on the same workload, a real
//! program not written here (Debian's python3 running a CPU-bound job):
//! the ten functions with the most self time must mostly agree.
//!
//! perf reports the function that contains each address; flameshift also
//! reports the functions inlined there. To compare like with like, a
//! sample's "self" function here is the innermost frame that was not
//! inlined. And where the two name one function differently — perf the
//! ELF symbol (`f.constprop.0`, glibc's public `malloc`), flameshift the
//! DWARF name (`f`, glibc's internal `__GI___libc_malloc`) — names are
//! normalised before comparing.

use std::collections::HashMap;
use std::ffi::OsString;

use flameshift_collector::perf::event::{CallGraph, EventChoice, Rate};
use flameshift_collector::python_frames::PythonMode;
use flameshift_collector::recorder::{record, RecordOptions};
use flameshift_profile::{format, Profile, TopBy};

const WORKLOAD: &str = r#"
import json, re
def work(n):
    total = 0
    for i in range(n):
        s = json.dumps({"k": i, "v": [i, str(i), i * 2.5]})
        total += len(re.findall(r"\d", s)) + int(json.loads(s)["k"]) % 7
    return total
print(work(300000))
"#;

/// One spelling per function: compiler clone suffixes and glibc's
/// internal alias prefixes removed.
fn normalise(name: &str) -> String {
    let mut name = name;
    for prefix in ["__GI_", "__libc_"] {
        name = name.strip_prefix(prefix).unwrap_or(name);
    }
    let cut = [".constprop.", ".isra.", ".part.", ".cold"]
        .iter()
        .filter_map(|suffix| name.find(suffix))
        .min()
        .unwrap_or(name.len());
    name[..cut].to_owned()
}

/// Self time per containing (non-inlined) function, top `n` names.
fn top_containing(p: &Profile, n: usize) -> Vec<String> {
    let value = p.default_value_index();
    let mut by_name: HashMap<String, i64> = HashMap::new();
    for (sample, values) in p.iter_samples() {
        let stack = p.stack(sample.stack);
        let Some(&leaf) = stack.iter().rev().find(|&&f| !p.frame(f).inlined) else {
            continue;
        };
        *by_name.entry(normalise(&p.frame_name(leaf))).or_default() += values[value];
    }
    let mut ranked: Vec<(String, i64)> = by_name.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ranked.into_iter().take(n).map(|(name, _)| name).collect()
}

#[test]
fn top_ten_self_functions_agree_with_perf() {
    let _serial = crate::serial();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("load.py");
    std::fs::write(&script, WORKLOAD).unwrap();
    let data = dir.path().join("perf.data");
    let status = std::process::Command::new("perf")
        .args(["record", "-q", "-g", "-F", "999", "-o"])
        .arg(&data)
        .args(["--", "python3"])
        .arg(&script)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("perf (linux-perf) must be installed");
    assert!(status.success());
    let text = std::process::Command::new("perf")
        .args(["script", "-i"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(text.status.success());
    let theirs = format::perf_script::read(&text.stdout).unwrap();
    let theirs = top_containing(&theirs, 20);

    let options = RecordOptions {
        event: EventChoice::CpuClock,
        rate: Rate::Frequency(999),
        call_graph: CallGraph::FramePointers,
        // perf sees the interpreter's C functions; so must we, to compare
        // like with like (with Python frames, the evaluator's own time is
        // the Python functions': `work (load.py)` and the like filled 3
        // of our top 10 in a fresh-clone CI run of 2b219a6 and failed it).
        python: PythonMode::Off,
        ..Default::default()
    };
    let command: Vec<OsString> = vec!["python3".into(), script.clone().into()];
    let ours = record(&command, &options).unwrap().profile;
    let ours_top = top_containing(&ours, 10);
    // The two runs are separate: functions with near-equal shares in the
    // tail swap places from run to run. So: four of our five biggest are
    // among perf's ten, and eight of our ten among perf's twenty. (Not
    // five of five: glibc's allocator fast path is named `malloc` here
    // and not by perf, whose top twenty had no name for it in one CI run
    // of 2026-12-06, with `malloc` fifth here.)
    let in_theirs = |n: usize, f: &String| theirs[..n.min(theirs.len())].contains(f);
    let head = ours_top.iter().take(5).filter(|f| in_theirs(10, f)).count();
    let agree = ours_top.iter().filter(|f| in_theirs(20, f)).count();
    assert!(
        head >= 4 && agree >= 8,
        "{head} of our top 5 in perf's top 10, {agree} of our top 10 in its top 20:\n\
         perf:       {theirs:?}\nflameshift: {ours_top:?}"
    );
    // Everything that was sampled is named (a symbol, or binary+offset).
    assert!(ours
        .top_functions(1, TopBy::SelfCost)
        .iter()
        .all(|f| !f.name.is_empty()));
}
