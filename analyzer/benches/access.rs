//! What the guard of `serve --auth FILE` adds to each request: the
//! SHA-256 of the presented token and its constant-time comparison with
//! every entry of the access file, for files of 1, 10 and 100 tokens;
//! beside it, what `--token` cost before access files (the presented
//! token compared with the one token, bytes in constant time).
//!
//! ```text
//! cargo bench -p flameshift-analyzer --bench access
//! ```

#![allow(clippy::unwrap_used, reason = "a benchmark of fixed inputs")]

use criterion::{criterion_group, criterion_main, Criterion};
use flameshift_analyzer::access::{constant_time_eq, new_token, sha256_hex, Keys};

fn identify(c: &mut Criterion) {
    let stored = new_token();
    let given = stored.clone();
    c.bench_function("compare with the one --token, as before", |b| {
        b.iter(|| constant_time_eq(std::hint::black_box(given.as_bytes()), stored.as_bytes()))
    });
    let dir = tempfile::tempdir().unwrap();
    for count in [1usize, 10, 100] {
        let tokens: Vec<String> = (0..count).map(|_| new_token()).collect();
        let entries: Vec<serde_json::Value> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| serde_json::json!({"name": format!("t{i}"), "sha256": sha256_hex(t), "scopes": ["read"]}))
            .collect();
        let path = dir.path().join(format!("auth-{count}.json"));
        std::fs::write(&path, serde_json::json!({ "tokens": entries }).to_string()).unwrap();
        let keys = Keys::load(&path).unwrap();
        let last = tokens.last().unwrap().clone();
        c.bench_function(&format!("identify a token among {count}"), |b| {
            b.iter(|| keys.identify(std::hint::black_box(&last)).unwrap())
        });
    }
}

criterion_group!(benches, identify);
criterion_main!(benches);
