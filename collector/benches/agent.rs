//! What the agent costs on the hot path: a poll of a labelled future, a
//! counter read (the layer does two per poll), and one sample (signal
//! delivery, frame-pointer walk, buffer write) with the sampler running.
//!
//! `cargo bench -p flameshift-collector --bench agent`

#![allow(missing_docs, clippy::unwrap_used, reason = "a benchmark")]

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use criterion::{criterion_group, criterion_main, Criterion};
use flameshift_collector::counters::ThreadCounter;
use flameshift_collector::labels::{self, LabelSet, Labeled};
use flameshift_collector::sampler::{Sampler, SamplerConfig};

/// A future that is never ready: every poll is one labelled poll.
struct Pending;

impl Future for Pending {
    type Output = ();
    fn poll(self: std::pin::Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

fn hot_path(c: &mut Criterion) {
    let id = labels::intern(LabelSet::new([("endpoint", "GET /users/{id}")]));
    let mut cx = Context::from_waker(Waker::noop());
    let mut future = pin!(Labeled::new(id, Pending));
    c.bench_function("labeled poll", |b| {
        b.iter(|| black_box(future.as_mut().poll(&mut cx)))
    });

    let counter = ThreadCounter::open();
    c.bench_function(&format!("counter read ({:?})", counter.mode()), |b| {
        b.iter(|| black_box(counter.read()))
    });

    let sampler = Sampler::start(&SamplerConfig {
        frequency: 1, // nearly no samples of its own: we raise them
        ..SamplerConfig::default()
    })
    .unwrap();
    let mut drained = Vec::new();
    let mut raised = 0u32;
    c.bench_function("one sample (raise SIGPROF, walk, write)", |b| {
        b.iter(|| {
            #[allow(unsafe_code)]
            // SAFETY: raising a signal whose handler is installed.
            unsafe {
                libc::raise(libc::SIGPROF)
            };
            raised += 1;
            if raised.is_multiple_of(4_096) {
                drained.clear();
                sampler.drain(&mut drained); // keep slots free (amortised)
            }
        })
    });
    drop(sampler);
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
