//! Counters for `/metrics`, in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::store::Gauge;

/// Upper bounds of the query latency histogram, seconds.
const LATENCY_BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

#[derive(Debug, Default)]
struct Latency {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The server's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    uploads: Mutex<BTreeMap<&'static str, u64>>,
    rejects: Mutex<BTreeMap<&'static str, u64>>,
    samples: AtomicU64,
    bytes: AtomicU64,
    queries: Mutex<BTreeMap<&'static str, Latency>>,
}

fn bump(map: &Mutex<BTreeMap<&'static str, u64>>, key: &'static str) {
    *map.lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(key)
        .or_default() += 1;
}

impl Metrics {
    /// An accepted upload of `kind` with `samples` samples in `bytes` bytes.
    pub fn accepted(&self, kind: &'static str, samples: i64, bytes: usize) {
        bump(&self.uploads, kind);
        self.samples.fetch_add(samples.max(0) as u64, Ordering::Relaxed);
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// A refused request, by reason (`bad_request`, `too_large`, `unauthorized`, `disk_full`, ...).
    pub fn rejected(&self, reason: &'static str) {
        bump(&self.rejects, reason);
    }

    /// A query on `route` that took `elapsed`.
    pub fn query(&self, route: &'static str, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let mut queries = self.queries.lock().unwrap_or_else(|e| e.into_inner());
        let latency = queries.entry(route).or_default();
        for (bucket, bound) in latency.buckets.iter_mut().zip(LATENCY_BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        latency.count += 1;
        latency.sum += seconds;
    }

    /// The Prometheus text exposition.
    pub fn render(&self, gauges: &[Gauge]) -> String {
        let mut out = String::new();
        let counter = |out: &mut String,
                       name: &str,
                       help: &str,
                       label: &str,
                       map: &Mutex<BTreeMap<&'static str, u64>>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (key, value) in map.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                let _ = writeln!(out, "{name}{{{label}=\"{key}\"}} {value}");
            }
        };
        counter(
            &mut out,
            "flameshift_uploads_total",
            "Accepted uploads.",
            "kind",
            &self.uploads,
        );
        counter(
            &mut out,
            "flameshift_rejects_total",
            "Refused requests.",
            "reason",
            &self.rejects,
        );
        let _ = writeln!(
            out,
            "# HELP flameshift_samples_total Samples ingested.\n# TYPE flameshift_samples_total counter\nflameshift_samples_total {}",
            self.samples.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP flameshift_upload_bytes_total Bytes of accepted uploads.\n# TYPE flameshift_upload_bytes_total counter\nflameshift_upload_bytes_total {}",
            self.bytes.load(Ordering::Relaxed)
        );
        for Gauge { name, help, value } in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        }
        let name = "flameshift_query_seconds";
        let _ = writeln!(out, "# HELP {name} Query latency.\n# TYPE {name} histogram");
        for (route, latency) in self.queries.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            for (count, bound) in latency.buckets.iter().zip(LATENCY_BUCKETS) {
                let _ = writeln!(out, "{name}_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}");
            }
            let _ = writeln!(
                out,
                "{name}_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                latency.count
            );
            let _ = writeln!(out, "{name}_sum{{route=\"{route}\"}} {}", latency.sum);
            let _ = writeln!(out, "{name}_count{{route=\"{route}\"}} {}", latency.count);
        }
        out
    }
}
