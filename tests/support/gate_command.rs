//! `flameshift gate ARGS…`, for the test binaries that run the gate.

use std::process::{Command, Output};

/// Runs `flameshift gate` with `args` and returns what it did.
pub fn gate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flameshift"))
        .arg("gate")
        .args(args)
        .output()
        .unwrap()
}
