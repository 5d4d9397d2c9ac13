//! Integration tests of the analyzer: a real server on 127.0.0.1:0 driven
//! with reqwest, and the store reopened over real data directories.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod access;
mod bad_input;
mod clickhouse;
mod detection;
mod disk_full;
mod earlier_data;
mod otlp;
mod push;
mod round_trip;
mod store;
mod suspects;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use flameshift_analyzer::profile::{format, LabelSetId, Period, Profile, SampleType};
use flameshift_analyzer::store::{Backend, DiskStore, StoreConfig};
pub(crate) use flameshift_testkit::clickhouse as clickhouse_server;
pub(crate) use flameshift_testkit::{
    client, get, get_text, now_ms, on_every_store, post, test_config, Place, TestServer,
};

/// One sample to put in a test profile.
pub(crate) struct S<'a> {
    pub(crate) stack: &'a [&'a str],
    pub(crate) labels: &'a [(&'a str, &'a str)],
    pub(crate) count: i64,
    pub(crate) ns: i64,
}

/// A gzipped pprof CPU profile (samples/count, cpu/nanoseconds) of `samples`.
pub(crate) fn pprof(samples: &[S<'_>]) -> Vec<u8> {
    let mut p = Profile::new(vec![
        SampleType::new("samples", "count"),
        SampleType::new("cpu", "nanoseconds"),
    ]);
    p.period = Some(Period {
        kind: SampleType::new("cpu", "nanoseconds"),
        value: 10_000_000,
    });
    for s in samples {
        let stack = p.stack_from_names(s.stack.iter().copied());
        let labels: Vec<_> = s.labels.iter().map(|(k, v)| p.str_label(k, v)).collect();
        let set = if labels.is_empty() {
            LabelSetId::EMPTY
        } else {
            p.intern_labels(labels)
        };
        p.push_sample(stack, set, &[s.count, s.ns]);
    }
    let mut out = Vec::new();
    format::pprof::write(&p, &mut out).unwrap();
    out
}
