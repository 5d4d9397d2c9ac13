//! The workspace as the docs describe it: the crate graph in
//! docs/architecture.md is the one in the manifests, dependencies point
//! one way, and `rust-version` is true for the locked dependencies.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

fn metadata(no_deps: bool) -> serde_json::Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if no_deps {
        command.arg("--no-deps");
    } else {
        // This machine's dependencies only: the others' are not downloaded.
        command.args(["--filter-platform", &host_triple()]);
    }
    let output = command.output().expect("run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn host_triple() -> String {
    let output = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned()))
        .arg("-vV")
        .output()
        .expect("run rustc -vV");
    let text = String::from_utf8(output.stdout).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_owned()
}

/// `(crate, dependency)` for every normal (not dev, not build) dependency
/// of a workspace crate on another workspace crate.
fn workspace_edges(metadata: &serde_json::Value) -> BTreeSet<(String, String)> {
    let packages = metadata["packages"].as_array().unwrap();
    let ours: BTreeSet<&str> = packages.iter().map(|p| p["name"].as_str().unwrap()).collect();
    let mut edges = BTreeSet::new();
    for package in packages {
        for dependency in package["dependencies"].as_array().unwrap() {
            let name = dependency["name"].as_str().unwrap();
            if ours.contains(name) && dependency["kind"].is_null() {
                edges.insert((package["name"].as_str().unwrap().to_owned(), name.to_owned()));
            }
        }
    }
    edges
}

fn documented_edges() -> BTreeSet<(String, String)> {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/architecture.md");
    let text = std::fs::read_to_string(doc).unwrap();
    let block = text
        .split("```crate-graph\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/architecture.md has a ```crate-graph block");
    block
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let (from, to) = line.split_once("->").expect("lines are `a -> b`");
            (from.trim().to_owned(), to.trim().to_owned())
        })
        .collect()
}

#[test]
fn the_documented_crate_graph_is_the_real_one() {
    let real = workspace_edges(&metadata(true));
    assert_eq!(
        documented_edges(),
        real,
        "update the crate-graph block of docs/architecture.md"
    );
    // One way only: no library crate reaches back up.
    let forbidden = [
        ("flameshift-collector", "flameshift-analyzer"),
        ("flameshift-collector", "flameshift-detect"),
        ("flameshift-detect", "flameshift-analyzer"),
        ("flameshift-profile", "flameshift-detect"),
        ("flameshift-dashboard", "flameshift-analyzer"),
    ];
    for (from, to) in forbidden {
        assert!(
            !real.contains(&(from.to_owned(), to.to_owned())),
            "{from} must not depend on {to}"
        );
    }
}

fn version(text: &str) -> (u64, u64, u64) {
    let mut parts = text.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

#[test]
fn rust_version_is_what_the_locked_dependencies_need() {
    let metadata = metadata(false);
    let packages = metadata["packages"].as_array().unwrap();
    let ours = packages.iter().find(|p| p["name"] == "flameshift").unwrap()["rust_version"]
        .as_str()
        .expect("the workspace declares rust-version")
        .to_owned();
    let (needed, by) = packages
        .iter()
        .filter(|p| !p["source"].is_null()) // dependencies, not our own crates
        .filter_map(|p| {
            Some((
                version(p["rust_version"].as_str()?),
                p["name"].as_str()?.to_owned(),
            ))
        })
        .max()
        .unwrap();
    assert!(
        version(&ours) >= needed,
        "rust-version = {ours}, but {by} needs {}.{}.{}: raise it in Cargo.toml",
        needed.0,
        needed.1,
        needed.2
    );
}
