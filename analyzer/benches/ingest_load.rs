//! A bounded load generator for `flameshift serve` (loopback only):
//! realistic agent uploads — AGENTS agents × PROFILES 10-s profiles ×
//! STACKS distinct stacks drawn from a shared call tree of 2,000 functions,
//! five endpoints — sent by CONCURRENCY connections to a server on
//! 127.0.0.1:0 in this process. Then a second data directory receives
//! DAY_PROFILES profiles per agent spread over the last 24 hours, and
//! the day's flame graph and top functions are timed.
//!
//! ```text
//! cargo bench -p flameshift-analyzer --bench ingest_load
//! FS_AGENTS=100 FS_PROFILES=20 FS_STACKS=3000 FS_CONCURRENCY=16 FS_DAY_PROFILES=24 cargo bench ...
//! ```
//!
//! Bodies are encoded before the clock starts: it measures the server.

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    reason = "a benchmark program reports on stdout"
)]

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flameshift_analyzer::profile::{format, Period, Profile, SampleType};
use flameshift_analyzer::server::{self, ServeConfig};
use flameshift_analyzer::store::StoreConfig;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const ENDPOINTS: [&str; 5] = [
    "GET /users/{id}",
    "GET /feed",
    "POST /orders",
    "GET /search",
    "GET /health",
];

/// A pool of stacks over a call tree of 2,000 functions.
fn stack_pool(size: usize, rng: &mut Rng) -> Vec<(Vec<String>, usize)> {
    let functions: Vec<String> = (0..2_000)
        .map(|i| format!("app::module{}::function_{i}", i % 40))
        .collect();
    (0..size)
        .map(|_| {
            let depth = 5 + rng.below(20);
            let mut frame = rng.below(50); // roots among the first functions
            let mut stack = vec!["main".to_owned()];
            for _ in 0..depth {
                stack.push(functions[frame].clone());
                frame = (frame * 31 + 7 + rng.below(97)) % functions.len();
            }
            (stack, rng.below(ENDPOINTS.len()))
        })
        .collect()
}

/// One agent's 10-s profile: `stacks` stacks from the pool, 1–3 samples each.
fn agent_profile(pool: &[(Vec<String>, usize)], stacks: usize, rng: &mut Rng) -> (Vec<u8>, i64) {
    let mut p = Profile::new(vec![
        SampleType::new("samples", "count"),
        SampleType::new("cpu", "nanoseconds"),
    ]);
    p.period = Some(Period {
        kind: SampleType::new("cpu", "nanoseconds"),
        value: 10_101_010,
    });
    p.duration_nanos = 10_000_000_000;
    let mut samples = 0;
    let start = rng.below(pool.len());
    for i in 0..stacks {
        let (frames, endpoint) = &pool[(start + i * 7) % pool.len()];
        let id = p.stack_from_names(frames.iter().map(String::as_str));
        let label = p.str_label("endpoint", ENDPOINTS[*endpoint]);
        let set = p.intern_labels(vec![label]);
        let count = 1 + rng.below(3) as i64;
        samples += count;
        p.push_sample(id, set, &[count, count * 10_101_010]);
    }
    let mut out = Vec::new();
    format::pprof::write(&p, &mut out).unwrap();
    (out, samples)
}

struct Upload {
    url: String,
    body: Vec<u8>,
    samples: i64,
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        total += if path.is_dir() {
            dir_bytes(&path)
        } else {
            entry.metadata().map(|m| m.len()).unwrap_or(0)
        };
    }
    total
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

async fn send_all(uploads: Arc<Vec<Upload>>, concurrency: usize) -> (Duration, Vec<Duration>) {
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(uploads.len())));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, next, uploads, latencies) =
                (client.clone(), next.clone(), uploads.clone(), latencies.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(upload) = uploads.get(i) else { break };
                    let sent = Instant::now();
                    let response = client
                        .post(&upload.url)
                        .body(upload.body.clone())
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(
                        response.status().as_u16(),
                        200,
                        "{}",
                        response.text().await.unwrap()
                    );
                    latencies.lock().unwrap().push(sent.elapsed());
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let elapsed = started.elapsed();
    let mut latencies = std::mem::take(&mut *latencies.lock().unwrap());
    latencies.sort();
    (elapsed, latencies)
}

async fn start(
    dir: &Path,
) -> (
    String,
    Arc<flameshift_analyzer::store::DiskStore>,
    tokio::sync::oneshot::Sender<()>,
) {
    let mut config = ServeConfig::new();
    config.listen = "127.0.0.1:0".parse().unwrap();
    let store = Arc::new(flameshift_analyzer::store::DiskStore::open(StoreConfig::new(dir)).unwrap());
    let book = flameshift_analyzer::regressions::FileBook::open(dir).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(server::serve(
        config,
        store.clone(),
        Arc::new(book),
        async {
            let _ = stop_rx.await;
        },
        move |r| {
            let _ = ready_tx.send(r.addr);
        },
    ));
    let addr = ready_rx.await.unwrap();
    (format!("http://{addr}"), store, stop_tx)
}

fn main() {
    let agents = env("FS_AGENTS", 100);
    let profiles = env("FS_PROFILES", 20);
    let stacks = env("FS_STACKS", 3_000);
    let concurrency = env("FS_CONCURRENCY", 16);
    let day_profiles = env("FS_DAY_PROFILES", 24);
    let mut rng = Rng(0x5eed);
    let pool = stack_pool(stacks * 3, &mut rng);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // Phase 1: sustained ingest.
        let dir = tempfile::tempdir().unwrap();
        let (url, store, stop) = start(dir.path()).await;
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        let mut uploads = Vec::new();
        for round in 0..profiles {
            for agent in 0..agents {
                let (body, samples) = agent_profile(&pool, stacks, &mut rng);
                let time_ms = now_ms - ((profiles - round) as i64) * 10_000;
                uploads.push(Upload {
                    url: format!("{url}/api/v1/profiles?service=fleet&deploy=v1&host=host{agent}&time_ms={time_ms}"),
                    body,
                    samples,
                });
            }
        }
        let total_samples: i64 = uploads.iter().map(|u| u.samples).sum();
        let total_bytes: usize = uploads.iter().map(|u| u.body.len()).sum();
        println!(
            "ingest: {} uploads ({agents} agents × {profiles} profiles × {stacks} stacks), {total_samples} samples, {:.1} MB gzipped pprof, {concurrency} connections",
            uploads.len(),
            total_bytes as f64 / 1e6
        );
        let (elapsed, latencies) = send_all(Arc::new(uploads), concurrency).await;
        println!(
            "ingest: {:.2} s, {:.0} samples/s, {:.0} uploads/s, upload latency p50 {:.1} ms p99 {:.1} ms",
            elapsed.as_secs_f64(),
            total_samples as f64 / elapsed.as_secs_f64(),
            latencies.len() as f64 / elapsed.as_secs_f64(),
            percentile(&latencies, 0.5).as_secs_f64() * 1e3,
            percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        );
        let flush = Instant::now();
        let s = store.clone();
        tokio::task::spawn_blocking(move || s.flush()).await.unwrap().unwrap();
        let bytes = dir_bytes(dir.path());
        println!(
            "storage: flush {:.2} s; {:.1} MB on disk, {:.2} bytes per sample ({} Parquet files)",
            flush.elapsed().as_secs_f64(),
            bytes as f64 / 1e6,
            bytes as f64 / total_samples as f64,
            store.stats().parquet_files
        );
        let _ = stop.send(());

        // Phase 2: a day of data, then the day's flame graph.
        let day = tempfile::tempdir().unwrap();
        let (url, store, stop) = start(day.path()).await;
        let mut uploads = Vec::new();
        for round in 0..day_profiles {
            for agent in 0..agents {
                let (body, samples) = agent_profile(&pool, stacks, &mut rng);
                let time_ms = now_ms - 86_400_000 + 60_000 + (round as i64 * 86_000_000 / day_profiles as i64);
                uploads.push(Upload {
                    url: format!("{url}/api/v1/profiles?service=fleet&deploy=v1&host=host{agent}&time_ms={time_ms}"),
                    body,
                    samples,
                });
            }
        }
        let day_samples: i64 = uploads.iter().map(|u| u.samples).sum();
        send_all(Arc::new(uploads), concurrency).await;
        let s = store.clone();
        tokio::task::spawn_blocking(move || s.flush()).await.unwrap().unwrap();
        let rows = store.stats();
        let client = reqwest::Client::new();
        let range = format!("from={}&until={}", now_ms - 86_400_000, now_ms);
        for (name, path) in [
            ("flame graph (JSON)", format!("{url}/api/v1/flamegraph?service=fleet&{range}")),
            ("top functions", format!("{url}/api/v1/functions?service=fleet&{range}")),
            ("flame graph, one endpoint", format!("{url}/api/v1/flamegraph?service=fleet&{range}&endpoint=GET%20%2Ffeed")),
        ] {
            let mut times = Vec::new();
            for _ in 0..5 {
                let started = Instant::now();
                let response = client.get(&path).send().await.unwrap();
                assert_eq!(response.status().as_u16(), 200);
                response.bytes().await.unwrap();
                times.push(started.elapsed());
            }
            times.sort();
            println!(
                "query over a day ({} uploads, {day_samples} samples, {} Parquet files, {:.1} MB): {name} median {:.0} ms (min {:.0}, max {:.0})",
                agents * day_profiles,
                rows.parquet_files,
                rows.parquet_bytes as f64 / 1e6,
                percentile(&times, 0.5).as_secs_f64() * 1e3,
                times[0].as_secs_f64() * 1e3,
                times[times.len() - 1].as_secs_f64() * 1e3
            );
        }
        let _ = stop.send(());
    });
}
