//! `flameshift deploy`: the event it builds from a real git repository
//! (`--dry-run`), a range git cannot read (the deploy still goes out,
//! without commits, and says why), and the post to a running analyzer.

use std::path::Path;
use std::process::{Command, Output};

use crate::git_command::git;
use crate::serve_process::start_serve;

fn deploy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flameshift"))
        .arg("deploy")
        .args(args)
        .output()
        .unwrap()
}

/// A repository: `parse.c` and a README, then two commits.
fn repository(dir: &Path) -> (String, String) {
    git(dir, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("parse.c"), "int parse(void) {\n    return 1;\n}\n").unwrap();
    std::fs::write(dir.join("README.md"), "# shop\n").unwrap();
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "first"]);
    let base = git(dir, &["rev-parse", "HEAD"]);
    std::fs::write(
        dir.join("parse.c"),
        "int parse(void) {\n    int k = 2;\n    return k;\n}\n",
    )
    .unwrap();
    git(dir, &["commit", "-q", "-am", "parse: twice the work"]);
    std::fs::write(dir.join("README.md"), "# shop\n\nA shop.\n").unwrap();
    git(dir, &["commit", "-q", "-am", "README: say what it is"]);
    (base, git(dir, &["rev-parse", "HEAD"]))
}

#[test]
fn the_event_lists_each_commit_with_the_lines_it_left() {
    let dir = tempfile::tempdir().unwrap();
    let (base, head) = repository(dir.path());
    let repo = dir.path().to_str().unwrap();
    let out = deploy(&[
        "--service",
        "shop",
        "--deploy",
        "v2",
        "--commits",
        &format!("{base}..HEAD"),
        "--repo",
        repo,
        "--dry-run",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let event: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(event["service"], "shop");
    assert_eq!(event["commit"], head.as_str(), "HEAD's SHA by default");
    assert_eq!(event["message"], "README: say what it is");
    assert_eq!(event["author"], "Ada Dev <ada@example.com>");
    let commits = event["commits"].as_array().unwrap();
    let titles: Vec<&str> = commits.iter().map(|c| c["title"].as_str().unwrap()).collect();
    assert_eq!(
        titles,
        ["parse: twice the work", "README: say what it is"],
        "oldest first"
    );
    assert_eq!(
        commits[0]["files"],
        serde_json::json!([{"path": "parse.c", "lines": [[2, 3]]}])
    );
    assert_eq!(
        commits[1]["files"],
        serde_json::json!([{"path": "README.md", "lines": [[2, 3]]}])
    );

    // A range git cannot read: the deploy still goes out, without commits.
    let out = deploy(&[
        "--service",
        "shop",
        "--deploy",
        "v2",
        "--commits",
        "nope..HEAD",
        "--repo",
        repo,
        "--dry-run",
    ]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nope is not a commit") && err.contains("posted without its commits"),
        "{err}"
    );
    let event: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(event.get("commits").is_none(), "{event}");
}

#[test]
fn the_event_reaches_the_analyzer_and_a_dead_one_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let (base, _) = repository(&repo);
    let (_server, url) = start_serve(&dir.path().join("data"), &[]);
    let range = format!("{base}..HEAD");
    let args = [
        "--service",
        "shop",
        "--deploy",
        "v2",
        "--commits",
        &range,
        "--repo",
        repo.to_str().unwrap(),
    ];
    let mut with_analyzer = args.to_vec();
    with_analyzer.extend(["--analyzer", &url]);
    let out = deploy(&with_analyzer);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("deploy v2 of shop posted with 2 commit(s)"), "{err}");
    let deploys = crate::serve::deploy_samples(&url, "shop");
    assert_eq!(deploys, [("v2".to_owned(), 0)], "the deploy is known");
    // Nothing listens there.
    let mut dead = args.to_vec();
    dead.extend(["--analyzer", "http://127.0.0.1:9"]);
    let out = deploy(&dead);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("posting the deploy event to http://127.0.0.1:9"));
}
