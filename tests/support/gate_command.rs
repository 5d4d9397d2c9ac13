//! `flameshift gate ARGS…`, and the C programs and recordings it is
//! given, for the test binaries that run the gate.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `flameshift gate` with `args` and returns what it did.
pub fn gate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flameshift"))
        .arg("gate")
        .args(args)
        .output()
        .unwrap()
}

/// Builds the C program `source` into `program`, with frame pointers.
pub fn compile(source: &Path, program: &Path) -> PathBuf {
    if let Some(dir) = program.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    let cc = Command::new("gcc")
        .args(["-O1", "-g", "-fno-omit-frame-pointer", "-o"])
        .arg(program)
        .arg(source)
        .status()
        .unwrap();
    assert!(cc.success());
    program.to_owned()
}

/// `flameshift record OPTIONS -o OUT -- PROGRAM ARGS`, which must succeed.
pub fn record(options: &[&str], out: &Path, program: &Path, args: &[&str]) -> PathBuf {
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    let status = Command::new(env!("CARGO_BIN_EXE_flameshift"))
        .arg("record")
        .args(options)
        .arg("-o")
        .arg(out)
        .arg("--")
        .arg(program)
        .args(args)
        .status()
        .unwrap();
    assert!(status.success());
    out.to_owned()
}
