//! `flameshift gate` on profiles recorded with cpu-clock sampling: a 20%
//! slowdown is caught, identical builds pass. These measure CPU time, so
//! they are a test binary of their own (cargo runs test binaries one
//! after another, so no other test competes for the cores), take turns
//! within it, and are run a second time when the first attempt fails
//! (a failure must repeat to count: see `twice_if_needed`).

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

#[path = "support/gate_command.rs"]
mod gate_command;
use gate_command::{compile, gate, record};

/// Held by each test for its whole run: one measurement at a time.
fn alone() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

/// Builds `fixtures/gate/bench.c` into `dir`.
fn bench_program(dir: &Path) -> std::path::PathBuf {
    build(dir, "bench")
}

/// Builds `fixtures/gate/NAME.c` into `dir`.
fn build(dir: &Path, name: &str) -> std::path::PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("fixtures/gate/{name}.c"));
    compile(&source, &dir.join(name))
}

/// Profiles one run of `program` with cpu-clock sampling at 4 kHz.
fn record_sampled(program: &Path, out: &Path, args: &[&str]) {
    record(&["-F", "4000"], out, program, args);
}

/// Runs `experiment` and, if it fails, once more: these tests time real
/// runs on a shared 2-core VM, where a neighbour's load now and then
/// lands on one side only. Two failures in a row fail the test with
/// both reports.
fn twice_if_needed(experiment: impl Fn() -> Result<(), String>) {
    let _turn = alone();
    let Err(first) = experiment() else { return };
    if let Err(second) = experiment() {
        panic!("failed twice in a row:\n{first}\n---\n{second}");
    }
}

#[test]
fn with_cpu_clock_sampling_and_5_runs_a_side_a_20_percent_slowdown_is_caught() {
    twice_if_needed(slowdown_is_caught);
}

fn slowdown_is_caught() -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let program = bench_program(dir.path());
    let record = |side: &str, i: usize, args: &[&str]| {
        record_sampled(&program, &dir.path().join(side).join(format!("{i}.pb.gz")), args);
    };
    for i in 0..5 {
        record("base", i, &[]);
        record("slow", i, &["--slow", "parse=20"]);
    }
    let (base, slow) = (dir.path().join("base"), dir.path().join("slow"));
    let out = gate(&[
        "--baseline",
        base.to_str().unwrap(),
        "--candidate",
        slow.to_str().unwrap(),
    ]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("5 baseline runs vs 5 candidate runs"), "{report}");
    let verdict = report.split("\nSmallest rise").next().unwrap_or_default();
    let caught = out.status.code() == Some(1)
        && verdict.contains("| `parse` | self |")
        && !verdict.contains("`render`")
        && !verdict.contains("`sort_items`");
    match caught {
        true => Ok(()),
        false => Err(format!("exit {:?}:\n{report}", out.status.code())),
    }
}

#[test]
fn with_cpu_clock_sampling_a_rise_in_a_shared_helper_names_the_caller_that_changed() {
    twice_if_needed(helper_rise_is_placed_under_its_caller);
}

/// `beta` calls the shared `mix` 40 times a unit instead of 10: `mix`'s
/// self cost rises by 60%, and the report says it is under `beta`. The
/// rise is large on purpose: this test is about where the rise is placed,
/// and on a CI runner whose neighbours steal CPU the same run's CPU time
/// varies by up to ±20% (a 10% rise was missed there at 5 runs a side).
fn helper_rise_is_placed_under_its_caller() -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let program = build(dir.path(), "helper");
    for i in 0..5 {
        for (side, calls) in [("base", "10"), ("cand", "40")] {
            let out = dir.path().join(side).join(format!("{i}.pb.gz"));
            record_sampled(&program, &out, &["--units", "300", "--beta-calls", calls]);
        }
    }
    let json = dir.path().join("report.json");
    let out = gate(&[
        "--baseline",
        dir.path().join("base").to_str().unwrap(),
        "--candidate",
        dir.path().join("cand").to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    let report = String::from_utf8_lossy(&out.stdout);
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let rows = json["report"]["regressions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mix = rows.iter().find(|r| r["function"] == "mix");
    let placed = mix.is_some_and(|m| {
        m["call_path"]["callers"][0] == "beta" && m["call_path"]["share"].as_f64().is_some_and(|s| s > 0.8)
    });
    match out.status.code() == Some(1) && placed && report.contains("under `beta`") {
        true => Ok(()),
        false => Err(format!("exit {:?}:\n{report}", out.status.code())),
    }
}

/// Two builds of the same source, 15 sampled runs each; 20 comparisons of
/// 5 runs of one against 5 of the other (sliding windows over the runs,
/// so each comparison is a different pair of sets) all pass at the
/// defaults.
#[test]
fn with_cpu_clock_sampling_identical_builds_compared_20_times_never_fail() {
    twice_if_needed(identical_builds_never_fail);
}

fn identical_builds_never_fail() -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let builds = [
        bench_program(&dir.path().join("a")),
        bench_program(&dir.path().join("b")),
    ];
    let pool = 15;
    let run = |build: usize, i: usize| dir.path().join(format!("runs{build}")).join(format!("{i}.pb.gz"));
    for i in 0..pool {
        for (build, program) in builds.iter().enumerate() {
            record_sampled(program, &run(build, i), &[]);
        }
    }
    let mut failures = Vec::new();
    for k in 0..20 {
        let side = |build: usize, offset: usize| -> Vec<String> {
            (0..5)
                .map(|j| run(build, (k + offset + j) % pool).to_string_lossy().into_owned())
                .collect()
        };
        // Past the 15th comparison the baseline windows repeat; shift the
        // candidate's so the pair is still new.
        let (base, cand) = (side(0, 0), side(1, k / pool * 5));
        let mut args = vec!["--baseline"];
        args.extend(base.iter().map(String::as_str));
        args.push("--candidate");
        args.extend(cand.iter().map(String::as_str));
        let out = gate(&args);
        if out.status.code() != Some(0) {
            failures.push(format!(
                "comparison {k}:\n{}",
                String::from_utf8_lossy(&out.stdout)
            ));
        }
    }
    match failures.is_empty() {
        true => Ok(()),
        false => Err(failures.join("\n")),
    }
}

/// The attribution on programs flameshift's authors did not write:
/// CPython's standard library (`fixtures/attribution/stdlib.py`), two
/// versions that differ in one known way each, recorded with Python
/// frames. `json.dumps(sort_keys=True)` makes the C encoder's
/// `encoder_listencode_dict` sort each dict (a new code path: the rise
/// in `memcmp` splits over the sort's comparisons, below frames the
/// baseline never ran); `re.IGNORECASE` makes the matcher
/// `sre_ucs1_match` lower each character (`_PyUnicode_ToLowercase`, new).
/// The report names the frame where the change is, and no `inf`.
#[test]
fn on_the_standard_library_the_frame_where_the_change_is_is_named() {
    twice_if_needed(stdlib_changes_are_placed);
}

fn stdlib_changes_are_placed() -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/attribution/stdlib.py");
    let python = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .unwrap();
    let python = std::path::PathBuf::from(String::from_utf8_lossy(&python.stdout).trim());
    let mut problems = Vec::new();
    for (what, option, holder) in [
        ("json", "--sort-keys", "encoder_listencode_dict"),
        ("re", "--ignore-case", "sre_ucs1_match"),
    ] {
        for i in 0..5 {
            for (side, args) in [
                ("base", vec![script.to_str().unwrap(), what]),
                ("cand", vec![script.to_str().unwrap(), what, option]),
            ] {
                let out = dir.path().join(format!("{what}-{side}/{i}.pb.gz"));
                record(&["-F", "4999", "--python", "on"], &out, &python, &args);
            }
        }
        let json = dir.path().join(format!("{what}.json"));
        let out = gate(&[
            "--baseline",
            dir.path().join(format!("{what}-base")).to_str().unwrap(),
            "--candidate",
            dir.path().join(format!("{what}-cand")).to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ]);
        let report = String::from_utf8_lossy(&out.stdout).into_owned();
        let text = std::fs::read_to_string(&json).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        let rows = parsed["report"]["regressions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let named = rows.iter().any(|r| {
            r["call_path"]["callers"][0] == holder
                && r["call_path"]["share"].as_f64().is_some_and(|s| s >= 0.8)
        });
        if out.status.code() != Some(1) || !named || !report.contains(&format!("under `{holder}`")) {
            problems.push(format!("{what}: `{holder}` not named:\n{report}"));
        }
        if report.contains("inf") || text.contains("inf") {
            problems.push(format!("{what}: an infinite change printed:\n{report}"));
        }
        if what == "re"
            && !rows
                .iter()
                .any(|r| r["function"] == "_PyUnicode_ToLowercase" && r["new"] == true)
        {
            problems.push(format!(
                "re: `_PyUnicode_ToLowercase` not reported as new:\n{report}"
            ));
        }
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(problems.join("\n---\n")),
    }
}
