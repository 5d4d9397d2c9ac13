//! `flameshift serve` as a child process on a free port, for the test
//! binaries that need a real server: started, its URL read from its
//! stderr, killed when the test ends.

#![allow(dead_code, reason = "each test binary uses its part")]

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::thread;

/// Reads `child`'s stderr up to the line `PREFIX URL`; returns the URL and
/// the rest of the lines.
pub fn address(child: &mut Child, prefix: &str) -> (String, std::io::Lines<BufReader<ChildStderr>>) {
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("the command printed its address").unwrap();
        if let Some(url) = line.strip_prefix(prefix) {
            return (url.to_owned(), lines);
        }
    }
}

/// Starts `flameshift serve` on a free port; returns the child and its URL.
/// A child process that is killed when the test ends, passed or not (a
/// leaked server would keep the test's output pipe open).
pub struct KillOnDrop(pub Child);

impl std::ops::Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn start_serve(data: &std::path::Path, extra: &[&str]) -> (KillOnDrop, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flameshift"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (url, lines) = address(&mut child, "flameshift: listening on ");
    // Keep draining stderr so the server never blocks on it.
    thread::spawn(move || for _ in lines {});
    (KillOnDrop(child), url)
}
