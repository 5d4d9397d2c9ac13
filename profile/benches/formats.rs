//! Criterion benchmarks of the shared steps: pprof decode and encode,
//! perf script and folded parsing, folding, and flame graph rendering.
//! `cargo bench -p flameshift-profile --bench formats`; the inferno
//! comparison on a 100+ MB capture is in `scripts/bench-inferno.sh`.

#![allow(missing_docs, clippy::unwrap_used)]

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use flameshift_profile::format::{self, folded, perf_script, pprof, ReadOptions};
use flameshift_profile::render::{self, FlameGraphOptions};
use flameshift_profile::{FoldOptions, Frame, Profile, SampleType};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(name);
    std::fs::read(&path).unwrap()
}

/// A service-sized profile: 50,000 samples over a 2,000-function call
/// tree, stacks 5 to 40 deep, two sample types, endpoint labels.
fn synthetic_profile() -> Profile {
    let mut p = Profile::new(vec![
        SampleType::new("samples", "count"),
        SampleType::new("instructions", "instructions"),
    ]);
    let mut state = 0x2545f4914f6cdd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let functions: Vec<_> = (0..2000)
        .map(|i| {
            let function = p.intern_str(&format!("crate::module_{}::function_{i}", i % 37));
            let file = p.intern_str(&format!("src/module_{}.rs", i % 37));
            (function, file)
        })
        .collect();
    let endpoints: Vec<_> = (0..8)
        .map(|i| p.str_label("endpoint", &format!("GET /api/{i}")))
        .collect();
    for _ in 0..50_000 {
        let depth = 5 + (next() % 36) as usize;
        let mut stack = Vec::with_capacity(depth);
        let mut f = (next() % 16) as usize;
        for _ in 0..depth {
            let (function, file) = functions[f];
            let line = 10 + (next() % 4) as u32;
            stack.push(p.intern_frame(Frame {
                function,
                file,
                line,
                ..Frame::default()
            }));
            f = (f * 7 + 1 + (next() % 3) as usize) % functions.len();
        }
        let stack = p.intern_stack(&stack);
        let labels = p.intern_labels(vec![endpoints[(next() % 8) as usize]]);
        p.push_sample(stack, labels, &[1, 1_000_000 + (next() % 1000) as i64]);
    }
    p
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("pprof_decode");
    let go = fixture("go/cpu.pb.gz");
    let raw_go = format::gunzip(&go, u64::MAX).unwrap();
    let synthetic = pprof::to_proto_bytes(&synthetic_profile());
    for (name, bytes, samples) in [
        (
            "go_cpu",
            raw_go.clone(),
            pprof::read(&raw_go, u64::MAX).unwrap().samples().len(),
        ),
        ("synthetic_50k", synthetic.clone(), 50_000),
    ] {
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(BenchmarkId::new("bytes", name), &bytes, |b, bytes| {
            b.iter(|| pprof::read(bytes, u64::MAX).unwrap())
        });
        group.throughput(Throughput::Elements(samples as u64));
        group.bench_with_input(BenchmarkId::new("samples", name), &bytes, |b, bytes| {
            b.iter(|| pprof::read(bytes, u64::MAX).unwrap())
        });
    }
    let mut gz = Vec::new();
    pprof::write(&synthetic_profile(), &mut gz).unwrap();
    group.throughput(Throughput::Bytes(synthetic.len() as u64));
    group.bench_function("gzipped_synthetic_50k", |b| {
        b.iter(|| format::read_bytes(&gz, &ReadOptions::default()).unwrap())
    });
    group.finish();

    let profile = synthetic_profile();
    let mut group = c.benchmark_group("pprof_encode");
    group.throughput(Throughput::Elements(50_000));
    group.bench_function("synthetic_50k", |b| b.iter(|| pprof::to_proto_bytes(&profile)));
    group.finish();
}

fn text_formats(c: &mut Criterion) {
    let mut group = c.benchmark_group("text_parse");
    let perf = fixture("perf/workload.perf-script");
    group.throughput(Throughput::Bytes(perf.len() as u64));
    group.bench_function("perf_script", |b| b.iter(|| perf_script::read(&perf).unwrap()));
    let mut folded_text = Vec::new();
    folded::write(&synthetic_profile(), &FoldOptions::default(), &mut folded_text).unwrap();
    group.throughput(Throughput::Bytes(folded_text.len() as u64));
    group.bench_function("folded_synthetic", |b| {
        b.iter(|| folded::read(&folded_text).unwrap())
    });
    group.finish();
}

fn folding(c: &mut Criterion) {
    let profile = synthetic_profile();
    let mut group = c.benchmark_group("fold");
    group.throughput(Throughput::Elements(50_000));
    group.bench_function("synthetic_50k", |b| {
        b.iter(|| profile.fold(&FoldOptions::default()))
    });
    group.bench_function("top_functions_50k", |b| {
        b.iter(|| profile.top_functions(1, flameshift_profile::TopBy::Inclusive))
    });
    group.finish();
}

fn rendering(c: &mut Criterion) {
    let profile = synthetic_profile();
    let mut group = c.benchmark_group("flamegraph_svg");
    group.sample_size(10);
    group.bench_function("synthetic_50k", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(1 << 20);
            render::flamegraph(&profile, &FlameGraphOptions::default(), &mut out).unwrap();
            out
        })
    });
    group.finish();
}

criterion_group!(benches, decode, text_formats, folding, rendering);
criterion_main!(benches);
