//! The CPython reader on other processes: real interpreters (every
//! CPython 3.9–3.13 pyenv has here, and `python3`), found from their
//! symbols and read while they run.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};

use flameshift_collector::cpython::process::{find, NotRead};
use flameshift_collector::cpython::Walker;

/// A program that spins in `leaf`, called through a key function of
/// `sorted` (a C call back into the evaluator): innermost first,
/// `leaf, middle, <lambda>` in one call of the evaluator and
/// `outer, <module>` in another.
const PROGRAM: &str = r#"
def leaf():
    x = 0
    while True:
        x += 1

def middle():
    leaf()

def outer():
    sorted([3, 1, 2], key=lambda v: middle() if v == 2 else v)

print("ready", flush=True)
outer()
"#;

/// The interpreters to test: `python3`, each of pyenv's 3.8–3.13 (3.8
/// to see it refused by name), Debian's 3.11.
pub(crate) fn interpreters() -> Vec<String> {
    let mut found = vec!["python3".to_owned()];
    let root = Command::new("pyenv")
        .arg("root")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|r| !r.is_empty());
    if let Some(root) = root {
        for minor in [8, 9, 10, 11, 12, 13] {
            let versions = std::fs::read_dir(format!("{root}/versions"))
                .into_iter()
                .flatten();
            let mut matching: Vec<String> = versions
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|v| v.starts_with(&format!("3.{minor}.")))
                .collect();
            matching.sort();
            if let Some(version) = matching.last() {
                found.push(format!("{root}/versions/{version}/bin/python3.{minor}"));
            }
        }
    }
    // Debian's, linked statically (`_PyRuntime` in the executable).
    if std::path::Path::new("/usr/bin/python3.11").exists() {
        found.push("/usr/bin/python3.11".to_owned());
    }
    found
}

/// A child process killed when dropped (a failed assertion included).
pub(crate) struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `source` under `python`, returning once it printed its first line.
pub(crate) fn spawn_ready(python: &str, source: &str) -> Killed {
    let mut child = Command::new(python)
        .args(["-c", source])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "{python}");
    Killed(child)
}

fn version_of(python: &str) -> (u8, u8) {
    let out = Command::new(python)
        .args(["-c", "import sys; print(*sys.version_info[:2])"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.split_whitespace().map(|p| p.parse().unwrap());
    (parts.next().unwrap(), parts.next().unwrap())
}

#[test]
fn another_process_stacks_are_read_with_their_calls_of_the_evaluator() {
    let mut read = 0;
    for python in interpreters() {
        let version = version_of(&python);
        let child = spawn_ready(&python, PROGRAM);
        let pid = child.0.id();
        let found = find(pid);
        if !(9..=13).contains(&version.1) {
            assert!(
                matches!(found, Err(NotRead::Unsupported { .. })),
                "{python}: {found:?}"
            );
            continue;
        }
        let found = found.unwrap_or_else(|e| panic!("{python}: {e}"));
        assert_eq!(found.interpreter.version, version, "{python}");
        let mut walker = Walker::new(found.interpreter, found.memory).unwrap();
        let mut threads = Vec::new();
        walker.threads(&mut threads).unwrap();
        assert_eq!(threads.len(), 1, "{python}");
        assert_eq!(threads[0].tid as u32, pid, "{python}");
        let mut names: Vec<String> = Vec::new();
        let mut ids = Vec::new();
        // The thread runs while it is read (a read may tear; most do not)
        // and reaches `leaf` a moment after it said it was ready.
        let mut stack = Vec::new();
        for _ in 0..200 {
            walker.threads(&mut threads).unwrap();
            let read = walker.stack(
                &threads[0],
                &mut |f| {
                    names.push(format!("{}:{}", f.qualname, f.filename));
                    names.len() as u32 - 1
                },
                &mut ids,
            );
            if read.is_ok() {
                stack = ids.iter().map(|&i| names[i as usize].clone()).collect::<Vec<_>>();
                if stack.first().is_some_and(|f| f.starts_with("leaf:")) {
                    break;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // Before 3.11 a code object has no qualified name, and every
        // Python call is a call of the evaluator.
        let (lambda, entries): (&str, &[usize]) = if version.1 >= 11 {
            ("outer.<locals>.<lambda>", &[2, 4])
        } else {
            ("<lambda>", &[0, 1, 2, 3, 4])
        };
        assert_eq!(
            stack,
            [
                "leaf:<string>".to_owned(),
                "middle:<string>".to_owned(),
                format!("{lambda}:<string>"),
                "outer:<string>".to_owned(),
                "<module>:<string>".to_owned()
            ],
            "{python}"
        );
        assert_eq!(
            walker.entries(),
            entries,
            "{python}: where the evaluator was entered"
        );
        read += 1;
    }
    assert!(read >= 1, "no CPython 3.9–3.13 here");
}

#[test]
fn a_process_that_is_not_python_or_is_gone_says_so() {
    let child = Killed(Command::new("sleep").arg("30").spawn().unwrap());
    let pid = child.0.id();
    // `sleep` has not always mapped its libraries at once.
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(find(pid).unwrap_err(), NotRead::NotPython(pid));
    drop(child);
    assert_eq!(find(pid).unwrap_err(), NotRead::Gone(pid));
}

/// `record` of the standard-library workload: its Python functions in
/// the stacks, each C call under its Python caller, and the run's
/// counts in the comments; the program exits while it is sampled
/// (reads of a process gone lose those samples' Python frames only).
#[cfg(feature = "record")]
#[test]
fn record_merges_python_frames_into_native_stacks() {
    use flameshift_collector::perf::event::{EventChoice, Rate};
    use flameshift_collector::python_frames::PythonMode;
    use flameshift_collector::recorder::{record, RecordOptions};
    use flameshift_profile::FoldOptions;

    let _serial = crate::serial();
    // Absolute: outside the working directory, its frames are `(work.py)`.
    let workload = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/python-frames/work.py")
        .canonicalize()
        .unwrap();
    let options = RecordOptions {
        event: EventChoice::Auto,
        rate: Rate::Frequency(499),
        python: PythonMode::On,
        ..RecordOptions::default()
    };
    let command: Vec<std::ffi::OsString> = vec!["python3".into(), workload.into(), "2".into()];
    let recording = record(&command, &options).unwrap();
    assert!(recording.status.success());
    let python = recording.python.unwrap();
    assert!(python.starts_with("python: CPython 3."), "{python}");
    assert!(recording.profile.comments.contains(&python));
    let folded = recording.profile.fold(&FoldOptions {
        value_index: 0,
        root_label: None,
    });
    let samples = |pattern: &str| -> i64 {
        folded
            .iter()
            .filter(|(stack, _)| stack.contains(pattern))
            .map(|(_, v)| *v)
            .sum()
    };
    let total: i64 = folded.values().sum();
    let in_module = samples("<module> (work.py);main (work.py);one_round (work.py)");
    assert!(
        in_module * 10 > total * 8,
        "{in_module} of {total} samples under the workload's Python frames"
    );
    // The hashing is OpenSSL's, called from `digest`.
    let hashing = samples(";_hashlib_openssl_sha256");
    let under_digest = samples("digest (work.py);_hashlib_openssl_sha256");
    assert!(hashing > 20, "{hashing} samples hashing");
    assert!(
        under_digest * 10 >= hashing * 8,
        "{under_digest} of {hashing} under digest"
    );
    // The evaluator's own frames gave way to the Python ones.
    assert!(
        samples("_PyEval_EvalFrameDefault") * 10 < total,
        "evaluator frames left in stacks"
    );
}

/// At a high rate the first sample of a new process comes before the
/// dynamic loader mapped libpython: the process is looked at again when
/// it maps more code, not written off.
#[cfg(feature = "record")]
#[test]
fn a_python_sampled_before_its_libpython_is_mapped_is_still_found() {
    use flameshift_collector::perf::event::{EventChoice, Rate};
    use flameshift_collector::python_frames::PythonMode;
    use flameshift_collector::recorder::{record, RecordOptions};

    let _serial = crate::serial();
    let options = RecordOptions {
        event: EventChoice::Auto,
        rate: Rate::Frequency(9_999),
        python: PythonMode::On,
        ..RecordOptions::default()
    };
    let python = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .unwrap();
    let python = String::from_utf8_lossy(&python.stdout).trim().to_owned();
    for _ in 0..3 {
        let command: Vec<std::ffi::OsString> = vec![
            python.clone().into(),
            "-c".into(),
            "sum(i * i for i in range(3 * 10**6))".into(),
        ];
        let recording = record(&command, &options).unwrap();
        let said = recording.python.unwrap();
        assert!(said.starts_with("python: CPython 3."), "{said}");
    }
}
