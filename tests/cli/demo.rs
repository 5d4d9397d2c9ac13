//! `flameshift demo --exit`: the whole product, for real (the analyzer,
//! `demo-service` children with the agent, three deploys of load, then
//! detection): the injected regression is found and the refactor is not.

use std::process::Command;

#[test]
fn the_demo_finds_the_injected_regression_and_not_the_refactor() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_flameshift"))
        .args(["demo", "--exit", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let log = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{log}");
    let found = stdout
        .lines()
        .find(|l| l.starts_with("regression found: "))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(found.contains("score_items on GET /feed in deploy v2 (vs v1)"), "{found}");
    assert!(stdout.contains("refactor not flagged"), "{log}");
    for deploy in ["[v1] served", "[v2] served", "[v3] served"] {
        assert!(stdout.contains(deploy), "{log}");
    }
    // The data stayed where it was told to go.
    assert!(dir.path().join("data").read_dir().unwrap().next().is_some());
}
