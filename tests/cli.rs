//! The `flameshift` binary end to end: the four commands on every fixture,
//! stdout output, exit codes and error lines.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FIXTURES: &[&str] = &[
    "go/cpu.pb.gz",
    "pprof-rs/cpu.pb",
    "perf/workload.perf-script",
    "edge/names.pb",
    "edge/names.folded",
    "edge/multi.pb.gz",
    "edge/deep.folded",
    "edge/zero.folded",
    "otlp-profiles/python-sdk.pb.gz",
    "pyroscope-push/pyspy-python.pb.gz",
];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

fn flameshift(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flameshift"))
        .args(args)
        .output()
        .expect("run flameshift")
}

fn ok(args: &[&str]) -> Output {
    let out = flameshift(args);
    assert!(
        out.status.success(),
        "flameshift {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a failing command; returns its single stderr line.
fn fails(args: &[&str]) -> String {
    let out = flameshift(args);
    assert_eq!(out.status.code(), Some(2), "flameshift {args:?} should exit 2");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "one line on stderr: {stderr:?}");
    assert!(stderr.starts_with("flameshift: error: "), "{stderr}");
    stderr
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn four_commands_work_on_every_fixture() {
    let dir = tempfile::tempdir().unwrap();
    for name in FIXTURES {
        let input = fixture(name);
        let input = path_str(&input);
        let svg = dir.path().join("flame.svg");
        ok(&["flamegraph", input, "-o", path_str(&svg), "--title", "T<&>"]);
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(
            text.starts_with("<?xml") && text.trim_end().ends_with("</svg>"),
            "{name}"
        );
        assert!(text.contains("T&lt;&amp;&gt;"), "{name}: title escaped");

        ok(&["flamegraph", input, "--inverted", "-o", path_str(&svg)]);
        assert!(std::fs::read_to_string(&svg).unwrap().contains("Icicle Graph"));

        let diff = dir.path().join("diff.svg");
        ok(&["diff", input, input, "-o", path_str(&diff)]);
        assert!(std::fs::read_to_string(&diff)
            .unwrap()
            .contains("Differential Flame Graph"));

        for ext in ["pb.gz", "folded", "speedscope.json"] {
            let out = dir.path().join(format!("out.{ext}"));
            ok(&["convert", input, "-o", path_str(&out)]);
            assert!(std::fs::metadata(&out).unwrap().len() > 0, "{name} → {ext}");
        }
        let top = ok(&["top", input, "-n", "3"]);
        let top = String::from_utf8(top.stdout).unwrap();
        assert!(top.starts_with(" ") || top.starts_with("self"), "{top}");
        assert_eq!(top.lines().count(), 5, "header, 3 rows, total: {top}");
    }
}

#[test]
fn convert_to_stdout_and_back_keeps_totals() {
    let input = fixture("go/cpu.pb.gz");
    let folded = ok(&["convert", path_str(&input), "-o", "-", "--format", "folded"]).stdout;
    let total: i64 = String::from_utf8(folded)
        .unwrap()
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap().parse::<i64>().unwrap())
        .sum();
    let top = String::from_utf8(ok(&["top", path_str(&input)]).stdout).unwrap();
    assert!(total > 1_000_000_000, "Go profile ran 1.5 s: {total}");
    let seconds = format!("{:.2} s", total as f64 / 1e9);
    assert!(top.contains(&format!("total {seconds}")), "{top} vs {seconds}");
}

/// Other producers' request bodies read as files: an OTLP export and a
/// Pyroscope push, each with its profiles merged.
#[test]
fn otlp_exports_and_pyroscope_pushes_convert_to_folded_stacks() {
    let dir = tempfile::tempdir().unwrap();
    for (name, leaf) in [
        ("otlp-profiles/python-sdk.pb.gz", "busy_hash"),
        ("pyroscope-push/pyspy-python.pb.gz", "busy_hash"),
    ] {
        let out = dir.path().join("x.folded");
        ok(&["convert", path_str(&fixture(name)), "-o", path_str(&out)]);
        let folded = std::fs::read_to_string(&out).unwrap();
        let of = |f: &str| -> i64 {
            folded
                .lines()
                .filter(|l| l.split(' ').next().unwrap().ends_with(f))
                .map(|l| l.rsplit(' ').next().unwrap().parse::<i64>().unwrap())
                .sum()
        };
        let total = of("");
        assert!(
            of(leaf) * 2 > total,
            "{name}: the workload spends most of its time in {leaf}: {folded}"
        );
        assert!(
            folded.lines().any(|l| l.contains("<module>;")),
            "{name}: {folded}"
        );
    }
    let err = fails(&["top", path_str(&fixture("otlp-profiles/work.py"))]);
    assert!(err.contains("folded"), "{err}");
}

#[test]
fn speedscope_output_is_valid_json_with_one_profile_per_type() {
    let input = fixture("edge/multi.pb.gz");
    let out = ok(&["convert", path_str(&input), "-o", "-", "--format", "speedscope"]).stdout;
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(json["profiles"].as_array().unwrap().len(), 3);
    assert_eq!(json["profiles"][1]["unit"], "nanoseconds");
    assert_eq!(json["profiles"][1]["endValue"], 80_000_000);
    assert_eq!(json["activeProfileIndex"], 1);
}

#[test]
fn labels_filter_and_names_are_escaped_in_svg() {
    let input = fixture("edge/names.pb");
    let out = ok(&[
        "flamegraph",
        path_str(&input),
        "-o",
        "-",
        "--label",
        "endpoint=GET /<script>",
    ])
    .stdout;
    let svg = String::from_utf8(out).unwrap();
    assert!(!svg.contains("<img src=x"), "markup in names must be escaped");
    assert!(svg.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(svg.contains("3 samples"), "only the labelled sample (3 of 4)");
}

#[test]
fn completions_man_pages_and_help_come_from_the_same_definitions() {
    let bash = String::from_utf8(ok(&["completions", "bash"]).stdout).unwrap();
    assert!(
        bash.contains("_flameshift()") && bash.contains("--call-graph"),
        "a bash completion script"
    );
    let man = String::from_utf8(ok(&["manpage"]).stdout).unwrap();
    assert!(
        man.starts_with(".ie") || man.contains(".TH flameshift 1"),
        "a roff page: {man:.200}"
    );
    let dir = tempfile::tempdir().unwrap();
    ok(&["manpage", "--dir", path_str(dir.path())]);
    for page in ["flameshift.1", "flameshift-gate.1", "flameshift-record.1"] {
        assert!(dir.path().join(page).is_file(), "{page}");
    }
    // The demo's service is a helper: runnable, not advertised.
    let help = String::from_utf8(ok(&["--help"]).stdout).unwrap();
    assert!(help.contains("demo ") && !help.contains("demo-service"), "{help}");
    ok(&["demo-service", "--help"]);
}

#[test]
fn values_are_checked_by_the_parser_with_one_grammar() {
    // Durations: the same grammar everywhere (`1d` and `1.5s` were refused once).
    let err = fails(&["attach", "--pid", "1", "--duration", "5 fortnights"]);
    assert!(
        err.contains("--duration") && err.contains("is not a duration"),
        "{err}"
    );
    let err = fails(&["serve", "--flush-interval", "soon"]);
    assert!(err.contains("--flush-interval"), "{err}");
    let err = fails(&["serve", "--max-body", "12 parsecs"]);
    assert!(
        err.contains("--max-body") && err.contains("unknown unit"),
        "{err}"
    );
    let err = fails(&[
        "gate",
        "--baseline",
        "a",
        "--candidate",
        "b",
        "--max-regression",
        "lots",
    ]);
    assert!(err.contains("--max-regression") && err.contains("2%"), "{err}");
    let err = fails(&["changepoints", "x.csv", "--method", "binseg"]);
    assert!(err.contains("possible values: robust, e-divisive, pelt"), "{err}");
    let err = fails(&["regressions", "--state", "closed"]);
    assert!(err.contains("use open, acknowledged or resolved"), "{err}");
}

#[test]
fn errors_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pb");
    std::fs::write(&garbage, [0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 1]).unwrap();
    let err = fails(&["top", path_str(&garbage)]);
    assert!(
        err.contains("garbage.pb") && err.contains("not a valid pprof"),
        "{err}"
    );

    let err = fails(&["top", "/definitely/not/here.pb.gz"]);
    assert!(err.contains("/definitely/not/here.pb.gz: No such file"), "{err}");

    let bad_folded = dir.path().join("bad.folded");
    std::fs::write(&bad_folded, "a;b 1\na;b\n").unwrap();
    let err = fails(&["flamegraph", path_str(&bad_folded), "-o", "-"]);
    assert!(err.contains("folded line 2: missing count"), "{err}");

    let go = fixture("go/cpu.pb.gz");
    let perf = fixture("perf/workload.perf-script");
    let err = fails(&["flamegraph", path_str(&go), path_str(&perf), "-o", "-"]);
    assert!(err.contains("mismatched units"), "{err}");

    let err = fails(&["top", path_str(&go), "--sample-type", "bytes"]);
    assert!(err.contains("no sample type \"bytes\""), "{err}");

    let err = fails(&["top", path_str(&go), "--label", "novalue"]);
    assert!(err.contains("expected key=value"), "{err}");

    let err = fails(&[
        "convert",
        path_str(&go),
        "-o",
        path_str(&dir.path().join("out.unknown")),
    ]);
    assert!(err.contains("--format"), "{err}");

    let empty = fixture("edge/empty.pb.gz");
    let svg = dir.path().join("empty.svg");
    let err = fails(&["flamegraph", path_str(&empty), "-o", path_str(&svg)]);
    assert!(err.contains("no positive cpu/nanoseconds values"), "{err}");
    assert!(!svg.exists(), "a failed render writes no file");
}

#[test]
fn gzip_bomb_is_refused_with_the_configured_cap() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb.pb.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![b'a'; 3 << 20]).unwrap();
    std::fs::write(&path, gz.finish().unwrap()).unwrap();
    let err = fails(&["top", path_str(&path), "--max-decompressed", "1048576"]);
    assert!(err.contains("exceeds the limit of 1048576 bytes"), "{err}");
}

#[test]
fn stdin_input() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_flameshift"))
        .args(["top", "-", "--inclusive"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"main;f 2\nmain;g 6\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let first_row = text.lines().nth(1).unwrap();
    assert!(
        first_row.ends_with("main") && first_row.contains("100.00%"),
        "{text}"
    );
}

#[test]
fn writing_to_a_device_keeps_the_device() {
    use std::os::unix::fs::FileTypeExt;
    let input = fixture("edge/zero.folded");
    ok(&[
        "convert",
        path_str(&input),
        "-o",
        "/dev/null",
        "--format",
        "folded",
    ]);
    ok(&["flamegraph", path_str(&input), "-o", "/dev/null"]);
    let meta = std::fs::metadata("/dev/null").unwrap();
    assert!(meta.file_type().is_char_device(), "/dev/null must stay a device");
}

#[test]
fn output_replaces_an_existing_file_whole() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.folded");
    std::fs::write(&out, "x".repeat(100_000)).unwrap();
    let input = fixture("edge/zero.folded");
    ok(&["convert", path_str(&input), "-o", path_str(&out)]);
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text, "main 0\nmain;idle 0\nmain;work 10\nmain;work;inner 0\n");
    let entries = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(entries, 1, "no temporary file left behind");
    use std::os::unix::fs::PermissionsExt;
    let new = dir.path().join("new.folded");
    ok(&["convert", path_str(&input), "-o", path_str(&new)]);
    let mode = std::fs::metadata(&new).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o644,
        "a new output file is readable by others, like any other"
    );
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o640)).unwrap();
    ok(&["convert", path_str(&input), "-o", path_str(&out)]);
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640, "replacing a file keeps its mode");
}

#[test]
fn folded_fast_path_draws_the_same_svg_as_the_profile_path() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["edge/deep.folded", "edge/zero.folded", "edge/names.folded"] {
        let input = fixture(name);
        let fast = dir.path().join("fast.svg");
        let model = dir.path().join("model.svg");
        ok(&["flamegraph", path_str(&input), "-o", path_str(&fast)]);
        // Naming the sample type forces the parse-into-a-profile path.
        ok(&[
            "flamegraph",
            path_str(&input),
            "--sample-type",
            "samples",
            "-o",
            path_str(&model),
        ]);
        let (fast, model) = (std::fs::read(&fast).unwrap(), std::fs::read(&model).unwrap());
        assert!(fast == model, "{name}: the two paths draw different SVGs");
    }
    let bad = dir.path().join("bad.folded");
    std::fs::write(&bad, "a;b 1\n\na;b;c x\n").unwrap();
    let err = fails(&["flamegraph", path_str(&bad), "-o", "-"]);
    assert!(err.contains("folded line 3"), "{err}");
}

#[test]
fn record_writes_a_profile_and_returns_the_commands_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("workload");
    let source = fixture("perf/workload.c");
    let built = Command::new("gcc")
        .args([
            "-O0",
            "-fno-omit-frame-pointer",
            "-o",
            path_str(&exe),
            path_str(&source),
        ])
        .status()
        .unwrap();
    assert!(built.success());
    let svg = dir.path().join("rec.svg");
    let script = format!("{} 200 >/dev/null; exit 5", exe.display());
    let out = flameshift(&[
        "record",
        "-F",
        "499",
        "-o",
        path_str(&svg),
        "--",
        "sh",
        "-c",
        &script,
    ]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(
        text.contains("flameshift record") && text.contains("mul"),
        "flame graph of the workload"
    );

    let pb = dir.path().join("rec.pb.gz");
    let said = ok(&["record", "-o", path_str(&pb), "--", path_str(&exe), "100"]).stderr;
    let said = String::from_utf8(said).unwrap();
    // What it is doing, then a summary and where the profile went.
    let lines: Vec<&str> = said.lines().collect();
    assert!(
        lines[0].starts_with("flameshift: recording pid ") && lines[0].contains(" at 99 Hz"),
        "{said}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" samples (") && l.contains("records lost")),
        "{said}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with(&format!("wrote {}", pb.display()))),
        "{said}"
    );
    let top = String::from_utf8(ok(&["top", path_str(&pb), "--inclusive"]).stdout).unwrap();
    assert!(top.contains("main") && top.contains("run"), "{top}");

    let err = fails(&["record", "-o", path_str(&pb), "--", "/no/such/program"]);
    assert!(err.contains("cannot start"), "{err}");
    let usage = flameshift(&["record", "-o", path_str(&pb)]);
    assert_eq!(usage.status.code(), Some(2), "a missing command is a usage error");
}

#[test]
fn attach_stops_cleanly_on_ctrl_c_and_writes_what_it_has() {
    let dir = tempfile::tempdir().unwrap();
    let mut target = Command::new("sh")
        .args(["-c", "while :; do :; done"])
        .spawn()
        .unwrap();
    let out = dir.path().join("attach.folded");
    let attach = Command::new(env!("CARGO_BIN_EXE_flameshift"))
        .args([
            "attach",
            "--pid",
            &target.id().to_string(),
            "-F",
            "499",
            "-o",
            path_str(&out),
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1200));
    // Ctrl-C, as a terminal sends it.
    let sent = Command::new("kill")
        .args(["-INT", &attach.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let attached = attach.wait_with_output().unwrap();
    target.kill().unwrap();
    target.wait().unwrap();
    assert_eq!(attached.status.code(), Some(0));
    let said = String::from_utf8(attached.stderr).unwrap();
    assert!(
        said.contains(&format!("recording pid {} (sh -c", target.id())),
        "{said}"
    );
    assert!(said.contains(" samples (") && said.contains("wrote"), "{said}");
    let folded = std::fs::read_to_string(&out).unwrap();
    assert!(
        folded.lines().count() > 0,
        "samples of the busy shell were written"
    );

    let err = fails(&["attach", "--pid", "4294967000", "--duration", "1s"]);
    assert!(err.contains("no such process"), "{err}");
    let err = fails(&["attach", "--pid", "1", "--duration", "soon"]);
    assert!(
        err.contains("is not a duration") && err.contains("--duration"),
        "{err}"
    );
    let err = fails(&["attach", "--pid", "1", "--event", "cycles"]);
    assert!(
        err.contains("possible values: auto, instructions, cpu-clock"),
        "{err}"
    );
}

/// `attach --python on` refuses a target that is not CPython, and a
/// CPython whose memory it may not read (another user's: here flameshift
/// runs as `nobody`), with the fix named.
#[test]
fn attach_python_on_names_what_stops_it() {
    let mut shell = Command::new("sh")
        .args(["-c", "while :; do sleep 1; done"])
        .spawn()
        .unwrap();
    let err = fails(&[
        "attach",
        "--python",
        "on",
        "--pid",
        &shell.id().to_string(),
        "--duration",
        "1s",
    ]);
    assert!(
        err.contains("--python on") && err.contains("runs no CPython"),
        "{err}"
    );
    shell.kill().unwrap();
    shell.wait().unwrap();

    // A copy of the binary that `nobody` may run.
    let dir = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let binary = dir.path().join("flameshift");
    std::fs::copy(env!("CARGO_BIN_EXE_flameshift"), &binary).unwrap();
    let mut python = Command::new("python3")
        .args(["-c", "import time\nwhile True: time.sleep(0.1)"])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let out = Command::new("setpriv")
        .args(["--reuid", "nobody", "--regid", "nogroup", "--clear-groups"])
        .arg(&binary)
        .args([
            "attach",
            "--python",
            "on",
            "--pid",
            &python.id().to_string(),
            "--duration",
            "1s",
        ])
        .output()
        .unwrap();
    python.kill().unwrap();
    python.wait().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cannot read the memory of process") && err.contains("ptrace_scope"),
        "{err}"
    );
}

#[path = "support/serve_process.rs"]
mod serve_process;

#[path = "cli/serve.rs"]
mod serve;

use flameshift_testkit::clickhouse as clickhouse_server;

#[path = "cli/fleet.rs"]
mod fleet;

#[path = "cli/producers.rs"]
mod producers;

#[path = "cli/tls.rs"]
mod tls;

#[path = "cli/access.rs"]
mod access;

#[path = "support/git.rs"]
mod git_command;

#[path = "cli/deploy.rs"]
mod deploy;

#[test]
fn changepoints_finds_a_step_in_a_csv_column_and_refuses_bad_series() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("history.csv");
    let mut text = String::from("run,ns_per_iter\n");
    for i in 0..60 {
        // A deterministic wobble of ±1% around 100, then 115 from run 40.
        let level = if i < 40 { 100.0 } else { 115.0 };
        text.push_str(&format!("{i},{}\n", level + ((i * 37) % 7) as f64 * 0.3 - 0.9));
    }
    std::fs::write(&csv, text).unwrap();
    for method in ["robust", "e-divisive", "pelt"] {
        let out = ok(&[
            "changepoints",
            path_str(&csv),
            "--column",
            "ns_per_iter",
            "--json",
            "--method",
            method,
        ]);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let points = json[0]["change_points"].as_array().unwrap();
        assert_eq!(points.len(), 1, "{method}: {json}");
        assert_eq!(points[0]["index"], 40);
        assert!((points[0]["change"].as_f64().unwrap() - 0.15).abs() < 0.01);
    }
    let table =
        String::from_utf8(ok(&["changepoints", path_str(&csv), "--column", "ns_per_iter"]).stdout).unwrap();
    assert!(
        table.contains("1 change point(s)") && table.contains("+15."),
        "{table}"
    );

    let bad = |name: &str, content: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        fails(&["changepoints", path_str(&path)])
    };
    assert!(bad("empty.csv", "").contains("empty"));
    assert!(bad("ragged.csv", "a,b\n1,2\n3\n").contains("line 3 has 1 cells"));
    assert!(bad("words.json", "[1, \"two\"]").contains("JSON array of numbers"));
    assert!(bad("text.csv", "a\nx\ny\n").contains("no numeric column"));
    assert!(bad("holes.csv", "a,b\n,\nNA,null\n").contains("no numeric column"));
    assert!(bad("short.csv", "a\n1\n2\n3\n").contains("3 values, robust needs at least 10"));
    let only = bad("inf.csv", "a\n1\ninf\n");
    assert!(only.contains("\"a\": line 3: `inf` is infinite"), "{only}");
    let named = fails(&["changepoints", path_str(&csv), "--column", "ns"]);
    assert!(named.contains("no numeric column named \"ns\""), "{named}");
}

#[test]
fn changepoints_tells_a_trend_and_a_season_from_level_changes_on_real_series() {
    let real = |name: &str| {
        format!(
            "{}/fixtures/changepoints/real/{name}.csv",
            env!("CARGO_MANIFEST_DIR")
        )
    };
    let json = |args: &[&str]| -> serde_json::Value { serde_json::from_slice(&ok(args).stdout).unwrap() };
    // Australia's population: a steady rise, one drift, no change point
    // (E-Divisive cuts it into a staircase of ten).
    let austres = real("austres");
    let found = json(&["changepoints", &austres, "--column", "value", "--json"]);
    assert_eq!(found[0]["change_points"].as_array().unwrap().len(), 0, "{found}");
    let drifts = found[0]["drifts"].as_array().unwrap();
    assert_eq!(drifts.len(), 1, "{found}");
    assert!(drifts[0]["slope"].as_f64().unwrap() > 0.0);
    let staircase = json(&[
        "changepoints",
        &austres,
        "--column",
        "value",
        "--json",
        "--method",
        "e-divisive",
    ]);
    assert!(
        staircase[0]["change_points"].as_array().unwrap().len() >= 5,
        "{staircase}"
    );
    // The Nile's flow: the change near 1898 (row 27).
    let nile = json(&["changepoints", &real("nile"), "--column", "value", "--json"]);
    let points = nile[0]["change_points"].as_array().unwrap();
    assert_eq!(points.len(), 1, "{nile}");
    assert!(points[0]["index"].as_u64().unwrap().abs_diff(27) <= 2, "{nile}");
    // Monthly temperatures in Nottingham: a yearly season, found, and no
    // change point.
    let nottem = json(&["changepoints", &real("nottem"), "--column", "value", "--json"]);
    assert_eq!(nottem[0]["period"], 12, "{nottem}");
    assert_eq!(
        nottem[0]["change_points"].as_array().unwrap().len(),
        0,
        "{nottem}"
    );
    let table = String::from_utf8(ok(&["changepoints", &austres, "--column", "value"]).stdout).unwrap();
    assert!(
        table.contains("0 change point(s), 1 drift(s)") && table.contains("drift from row"),
        "{table}"
    );
    let err = fails(&["changepoints", &austres, "--period", "1"]);
    assert!(err.contains("not a period"), "{err}");
    let err = fails(&["changepoints", &austres, "--penalty=-1"]);
    assert!(err.contains("not a penalty"), "{err}");
}

#[test]
fn changepoints_skips_missing_values_and_reports_file_rows() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("history.csv");
    // A commit column (text), a step at row 40, and holes before it: the
    // change point is reported at row 40 of the file, not at its position
    // among the values present.
    let mut text = String::from("commit,\"ns, per iter\",broken\n");
    for i in 0..60 {
        let level = if i < 40 { 100.0 } else { 115.0 };
        let value = match i {
            3 => String::new(),
            11 => "NA".to_owned(),
            25 => "NaN".to_owned(),
            _ => format!("{}", level + ((i * 37) % 7) as f64 * 0.3 - 0.9),
        };
        let broken = if i == 30 { "12ms".to_owned() } else { i.to_string() };
        text.push_str(&format!("\"c{i:03}\",{value},{broken}\n"));
    }
    std::fs::write(&csv, text).unwrap();
    let out = flameshift(&["changepoints", path_str(&csv), "--json"]);
    assert_eq!(out.status.code(), Some(2), "a refused column makes the status 2");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("column \"broken\" skipped: line 32: `12ms` is not a number"),
        "{stderr}"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 1, "{json}");
    assert_eq!(json[0]["column"], "ns, per iter");
    assert_eq!(
        (json[0]["points"].as_u64(), json[0]["missing"].as_u64()),
        (Some(57), Some(3))
    );
    let points = json[0]["change_points"].as_array().unwrap();
    assert_eq!(points.len(), 1, "{json}");
    assert_eq!(points[0]["index"], 40);
    let table = ok(&["changepoints", path_str(&csv), "--column", "ns, per iter"]).stdout;
    let table = String::from_utf8(table).unwrap();
    assert!(
        table.contains("57 points (3 missing, skipped), 1 change point(s)"),
        "{table}"
    );
}

#[path = "cli/gate.rs"]
mod gate;

#[path = "cli/workspace.rs"]
mod workspace;
