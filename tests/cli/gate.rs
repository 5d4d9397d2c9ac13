//! `flameshift gate` on profile files: a slowdown fails the build with a
//! report, a JSON file and a diff flame graph; identical builds pass; bad
//! inputs are errors, never a silent pass.

use std::path::Path;

use flameshift_detect::sim::Rng;
use flameshift_profile::{format, LabelSetId, Period, Profile, SampleType};

/// A cpu-clock profile of one benchmark run: `funcs` (leaf, mean samples
/// at 10 ms) under `main;bench`, Poisson-drawn.
fn write_run(path: &Path, rng: &mut Rng, funcs: &[(&str, f64)]) {
    let ty = SampleType::new("cpu", "nanoseconds");
    let mut p = Profile::new(vec![SampleType::new("samples", "count"), ty.clone()]);
    p.period = Some(Period {
        kind: ty,
        value: 10_000_000,
    });
    for (leaf, mean) in funcs {
        let n = rng.poisson(*mean);
        let stack = p.stack_from_names(["main", "bench", leaf]);
        p.push_sample(stack, LabelSetId::EMPTY, &[n, n * 10_000_000]);
    }
    let mut out = Vec::new();
    format::pprof::write(&p, &mut out).unwrap();
    std::fs::write(path, out).unwrap();
}

fn runs(dir: &Path, rng: &mut Rng, count: usize, funcs: &[(&str, f64)]) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..count {
        write_run(&dir.join(format!("run-{i}.pb.gz")), rng, funcs);
    }
}

/// Counts the instructions of `program ARGS` under callgrind into `out`.
fn record_callgrind(program: &Path, out: &Path, args: &[&str]) -> std::path::PathBuf {
    record(&["--callgrind"], out, program, args)
}

const BASE: [(&str, f64); 3] = [("parse", 500.0), ("render", 2_000.0), ("sort", 2_500.0)];

#[path = "../support/gate_command.rs"]
mod gate_command;
use gate_command::{compile, gate, record};

#[test]
fn a_slowdown_fails_with_a_report_and_identical_builds_pass() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(11);
    let (base, slow, same) = (
        dir.path().join("base"),
        dir.path().join("slow"),
        dir.path().join("same"),
    );
    runs(&base, &mut rng, 5, &BASE);
    runs(
        &slow,
        &mut rng,
        5,
        &[("parse", 600.0), ("render", 2_000.0), ("sort", 2_500.0)],
    );
    runs(&same, &mut rng, 5, &BASE);
    let (report, json, svg) = (
        dir.path().join("r.md"),
        dir.path().join("r.json"),
        dir.path().join("d.svg"),
    );
    let out = gate(&[
        "--baseline",
        base.to_str().unwrap(),
        "--candidate",
        slow.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "--diff-svg",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = std::fs::read_to_string(&report).unwrap();
    assert!(md.starts_with("**flameshift gate: FAIL**"), "{md}");
    assert!(
        md.contains("5 baseline runs vs 5 candidate runs, cost per run"),
        "{md}"
    );
    assert!(md.contains("| `parse` | self |"), "{md}");
    // Before and after in seconds per run (about 5 s and 6 s), not raw ns.
    let row = md.lines().find(|l| l.starts_with("| `parse`")).unwrap();
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    for cell in [cells[3], cells[4]] {
        let seconds: f64 = cell
            .strip_suffix(" s")
            .unwrap_or_else(|| panic!("{row}"))
            .parse()
            .unwrap();
        assert!((4.5..6.8).contains(&seconds), "{row}");
    }
    let (verdict, could_see) = md.split_once("\nSmallest rise each test could see").unwrap();
    assert!(
        !verdict.contains("`render`") && !verdict.contains("`sort`"),
        "{md}"
    );
    // How small a rise each test could see: Poisson noise of five runs
    // a side hides a 2% rise in all three.
    for function in ["parse", "render", "sort"] {
        let line = could_see
            .lines()
            .find(|l| l.starts_with(&format!("- `{function}` (self): could see ≥ ")))
            .unwrap_or_else(|| panic!("{function}: {md}"));
        assert!(line.contains("more run(s) a side to see 2.0%"), "{line}");
    }
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), md.trim());
    let parsed: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(parsed["failed"], true);
    assert_eq!(parsed["report"]["measure"], "per_run");
    let change = parsed["report"]["regressions"][0]["change"].as_f64().unwrap();
    assert!((0.1..0.3).contains(&change), "{change}");
    let drawn = std::fs::read_to_string(&svg).unwrap();
    // The regressed function is drawn in red (grew); sort_items is not.
    let fill = |name: &str| {
        let at = drawn.find(&format!("<title>{name} ")).unwrap();
        let rest = &drawn[at..];
        let start = rest.find("fill=\"").unwrap() + 6;
        rest[start..start + rest[start..].find('"').unwrap()].to_owned()
    };
    assert!(
        fill("parse").starts_with("rgb(255,"),
        "parse is {}",
        fill("parse")
    );
    assert_ne!(fill("sort"), fill("parse"), "sort is drawn like parse");

    let pass = gate(&[
        "--baseline",
        base.to_str().unwrap(),
        "--candidate",
        same.to_str().unwrap(),
    ]);
    assert_eq!(
        pass.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&pass.stdout)
    );
    assert!(String::from_utf8_lossy(&pass.stdout).starts_with("**flameshift gate: pass**"));
}

#[test]
fn bad_inputs_are_errors_not_a_pass() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(12);
    let base = dir.path().join("base.pb.gz");
    write_run(&base, &mut rng, &BASE);
    let other = dir.path().join("other.pb.gz");
    write_run(&other, &mut rng, &[("unrelated", 1_000.0)]);
    let folded = dir.path().join("counts.folded");
    std::fs::write(&folded, "main;bench;parse 10\n").unwrap();
    let empty = dir.path().join("empty.pb.gz");
    format::pprof::write(
        &Profile::new(vec![SampleType::new("cpu", "nanoseconds")]),
        &mut std::fs::File::create(&empty).unwrap(),
    )
    .unwrap();
    for (candidate, message) in [
        (&other, "no function in common"),
        (&folded, "mismatched units"),
        (&empty, "candidate has no samples"),
    ] {
        let out = gate(&[
            "--baseline",
            base.to_str().unwrap(),
            "--candidate",
            candidate.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(2), "{candidate:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(message),
            "{candidate:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = gate(&[
        "--baseline",
        base.to_str().unwrap(),
        "--candidate",
        base.to_str().unwrap(),
        "--max-regression",
        "lots",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a percentage"));
}

#[test]
fn under_callgrind_a_2_percent_instruction_increase_is_caught_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("bench.c");
    std::fs::write(
        &source,
        "#include <stdlib.h>\n\
         static volatile long sink;\n\
         __attribute__((noinline)) void work(long n) { for (long i = 0; i < n; i++) sink += i * 7; }\n\
         __attribute__((noinline)) void other(long n) { for (long i = 0; i < n; i++) sink ^= i; }\n\
         int main(int argc, char **argv) {\n\
           long extra = argc > 1 ? atol(argv[1]) : 0;\n\
           for (int r = 0; r < 10; r++) { work(100000 + extra); other(50000); }\n\
           return 0;\n\
         }\n",
    )
    .unwrap();
    let program = compile(&source, &dir.path().join("bench"));
    let record = |name: &str, extra: &str| record_callgrind(&program, &dir.path().join(name), &[extra]);
    // `work` runs 2,100 more iterations of 100,000: +2.1% of its instructions.
    let (base, again, slower) = (
        record("base.pb.gz", "0"),
        record("again.pb.gz", "0"),
        record("slow.pb.gz", "2100"),
    );
    let same = gate(&[
        "--baseline",
        base.to_str().unwrap(),
        "--candidate",
        again.to_str().unwrap(),
    ]);
    assert_eq!(
        same.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&same.stdout)
    );
    assert!(String::from_utf8_lossy(&same.stdout).contains("exact counts"));
    let out = gate(&[
        "--baseline",
        base.to_str().unwrap(),
        "--candidate",
        slower.to_str().unwrap(),
    ]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("| `work` | self |") && report.contains("+2.1%"),
        "{report}"
    );
    let verdict = report.split("\nSmallest rise").next().unwrap();
    assert!(!verdict.contains("`other`"), "{report}");
    // Exact counts see any rise past the threshold.
    assert!(report.contains("- `other` (self): could see ≥ 2.0%"), "{report}");
}

#[test]
fn under_callgrind_a_rise_in_a_shared_helper_names_the_caller_that_changed() {
    let dir = tempfile::tempdir().unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/gate/helper.c");
    let program = compile(&source, &dir.path().join("helper"));
    let record = |name: &str, beta_calls: &str| {
        record_callgrind(
            &program,
            &dir.path().join(name),
            &["--units", "2", "--beta-calls", beta_calls],
        )
    };
    // `beta` calls `mix` 13 times a unit instead of 10: `mix` self +6%
    // (50 → 53 calls), `beta` inclusive +20% (300k → 360k instructions'
    // worth of iterations).
    let (base, cand) = (record("base.pb.gz", "10"), record("cand.pb.gz", "13"));
    let json = dir.path().join("r.json");
    let out = gate(&[
        "--baseline",
        base.to_str().unwrap(),
        "--candidate",
        cand.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("- `mix` self +6.0%: 100% of it under `beta` ← `main`")
            && report.contains("(`beta` inclusive +20.0%)"),
        "{report}"
    );
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let row = &json["report"]["regressions"][0];
    assert_eq!(row["function"], "mix", "{json}");
    assert_eq!(row["call_path"]["callers"][0], "beta", "{json}");
    assert!(row["call_path"]["caller_after"].as_f64() > row["call_path"]["caller_before"].as_f64());
}

#[test]
fn history_mode_fails_when_the_newest_point_starts_a_regression() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(13);
    let mut rows = vec!["parse_ms,render_ms".to_owned()];
    for _ in 0..30 {
        rows.push(format!(
            "{:.3},{:.3}",
            100.0 + rng.normal(),
            50.0 + 0.5 * rng.normal()
        ));
    }
    let write = |name: &str, last: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("{}\n{last}\n", rows.join("\n"))).unwrap();
        path
    };
    let (steady, worse) = (write("ok.csv", "100.2,50.1"), write("bad.csv", "100.2,56.0"));
    let ok = gate(&["--history", steady.to_str().unwrap()]);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let bad = gate(&["--history", worse.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL") && text.contains("`render_ms` | 56.0000"),
        "{text}"
    );
    let one = gate(&["--history", worse.to_str().unwrap(), "--column", "parse_ms"]);
    assert_eq!(one.status.code(), Some(0));
    let short = dir.path().join("short.json");
    std::fs::write(&short, "[1, 2, 3]").unwrap();
    let too_few = gate(&["--history", short.to_str().unwrap()]);
    assert_eq!(too_few.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&too_few.stderr).contains("too few"));
}
