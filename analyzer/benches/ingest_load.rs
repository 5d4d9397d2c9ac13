//! A bounded load generator for `flameshift serve` (loopback only):
//! realistic agent uploads — AGENTS agents × PROFILES 10-s profiles ×
//! STACKS distinct stacks drawn from a shared call tree of 2,000 functions,
//! five endpoints — sent by CONCURRENCY connections to servers on
//! 127.0.0.1:0 in this process. Then a second, empty store receives
//! DAY_PROFILES profiles and request statistics per agent spread over the
//! last 24 hours (deploy v1, then v2), and the day's flame graph, top
//! functions, one endpoint's series and one detection pass are timed.
//!
//! FS_STORES lists the stores to run it on, one after the other:
//! `dir` (the embedded store), `clickhouse` (one node over a
//! `clickhouse-server` this program starts on free ports, sharing the
//! machine's cores), `clickhouse-2` (two nodes over it, uploads spread
//! over both) and `dir-https` (the embedded store served over https with
//! a certificate made here: what TLS costs, against `dir` in the same run).
//!
//! ```text
//! cargo bench -p flameshift-analyzer --bench ingest_load
//! FS_STORES=dir,clickhouse,clickhouse-2 cargo bench -p flameshift-analyzer --bench ingest_load
//! FS_STORES=dir,dir-https cargo bench -p flameshift-analyzer --bench ingest_load
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
use flameshift_testkit::clickhouse::{execute, ClickHouseServer};
use flameshift_testkit::{Place, TestServer};

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

/// A client of the nodes, trusting the CA of `tls` when they serve https.
fn http_client(tls: Option<&Tls>) -> reqwest::Client {
    flameshift_testkit::install_tls_provider();
    let mut client = reqwest::Client::builder();
    if let Some(tls) = tls {
        client = client.add_root_certificate(reqwest::Certificate::from_pem(tls.ca.as_bytes()).unwrap());
    }
    client.build().unwrap()
}

async fn send_all(
    uploads: Arc<Vec<Upload>>,
    concurrency: usize,
    tls: Option<&Tls>,
) -> (Duration, Vec<Duration>) {
    let client = http_client(tls);
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
                    // As the agent does: a key per upload, so the
                    // ClickHouse store's exactly-once check is measured.
                    let response = client
                        .post(&upload.url)
                        .header("Idempotency-Key", format!("bench-{i}"))
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

/// CPU seconds (user + system) process `pid` has used (`self`: this one).
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis; utime and stime are 14 and 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0 // USER_HZ is 100 on Linux
}

/// A CA and a certificate it signed for `localhost`, as PEM files.
struct Tls {
    ca: String,
    files: server::TlsFiles,
    _dir: tempfile::TempDir,
}

impl Tls {
    fn new() -> Tls {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let files = server::TlsFiles {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        Tls {
            ca: ca.pem(),
            files,
            _dir: dir,
        }
    }
}

/// Where a phase keeps its data: a fresh directory, or a fresh database
/// on the benchmark's own ClickHouse server (started on first use).
fn place_for(kind: &str, clickhouse: &mut Option<ClickHouseServer>) -> Place {
    if kind.starts_with("dir") {
        return Place::dir();
    }
    let server = clickhouse.get_or_insert_with(ClickHouseServer::start);
    Place::ClickHouse(server.fresh_database())
}

/// Bytes the data takes on disk (after ClickHouse merged its parts).
fn bytes_of(place: &Place) -> u64 {
    match place {
        Place::Dir(dir) => dir_bytes(dir.path()),
        Place::ClickHouse(endpoint) => {
            let db = &endpoint.database;
            for table in ["samples", "stacks", "requests"] {
                execute(&endpoint.address, &format!("OPTIMIZE TABLE {db}.{table} FINAL"));
            }
            execute(
                &endpoint.address,
                &format!("SELECT sum(bytes) FROM system.parts WHERE database = '{db}' AND active"),
            )
            .trim()
            .parse()
            .unwrap()
        }
    }
}

/// Starts `nodes` servers over `place`, each a node of its own with the
/// defaults `serve` runs with.
async fn start_nodes(place: &Place, nodes: usize, tls: Option<&Tls>) -> Vec<TestServer> {
    let mut servers = Vec::new();
    for _ in 0..nodes {
        let mut config = ServeConfig::new();
        config.tls = tls.map(|t| t.files.clone());
        config.listen = "127.0.0.1:0".parse().unwrap();
        // Only the timed pass detects (a periodic one would hold it up).
        config.detect_interval = Duration::from_secs(3600);
        servers.push(TestServer::start(config, place.backend_as_served()).await);
    }
    servers
}

/// Runs every node's store housekeeping (the embedded store flushes and compacts).
async fn maintain_all(servers: &[TestServer]) {
    for server in servers {
        let store = server.store.clone();
        tokio::task::spawn_blocking(move || store.maintain())
            .await
            .unwrap()
            .unwrap();
    }
}

/// Stops every node.
async fn stop_all(servers: Vec<TestServer>) {
    for server in servers {
        server.stop().await;
    }
}

/// Request statistics of one agent's profile: its samples spread over the endpoints.
fn requests_body(deploy: &str, agent: usize, time_ms: i64, samples: i64) -> Vec<u8> {
    let endpoints: Vec<serde_json::Value> = ENDPOINTS
        .iter()
        .map(|e| serde_json::json!({ "endpoint": e, "count": 200, "cost_sum": samples * 10_101_010 / 5 }))
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "service": "fleet", "deploy": deploy, "host": format!("host{agent}"), "unit": "cpu_ns",
        "start_ms": time_ms, "duration_ms": 10_000, "endpoints": endpoints,
    }))
    .unwrap()
}

async fn run_on(kind: &str, clickhouse: &mut Option<ClickHouseServer>, pool: &[(Vec<String>, usize)]) {
    let agents = env("FS_AGENTS", 100);
    let profiles = env("FS_PROFILES", 20);
    let stacks = env("FS_STACKS", 3_000);
    let concurrency = env("FS_CONCURRENCY", 16);
    let day_profiles = env("FS_DAY_PROFILES", 24);
    let nodes = if kind == "clickhouse-2" { 2 } else { 1 };
    let mut rng = Rng(0x5eed);
    println!("== {kind} ({nodes} node{})", if nodes == 1 { "" } else { "s" });

    // Phase 1: sustained ingest.
    let place = place_for(kind, clickhouse);
    let tls = (kind == "dir-https").then(Tls::new);
    let servers = start_nodes(&place, nodes, tls.as_ref()).await;
    let urls: Vec<String> = servers.iter().map(|s| s.url.clone()).collect();
    let now_ms = flameshift_testkit::now_ms();
    let mut uploads = Vec::new();
    for round in 0..profiles {
        for agent in 0..agents {
            let (body, samples) = agent_profile(pool, stacks, &mut rng);
            let time_ms = now_ms - ((profiles - round) as i64) * 10_000;
            let url = &urls[agent % nodes];
            uploads.push(Upload {
                url: format!(
                    "{url}/api/v1/profiles?service=fleet&deploy=v1&host=host{agent}&time_ms={time_ms}"
                ),
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
    let clickhouse_pid = clickhouse.as_ref().and_then(|c| c.pid()).map(|p| p.to_string());
    let cpu_before = (
        cpu_seconds("self"),
        clickhouse_pid.as_deref().map_or(0.0, cpu_seconds),
    );
    let (elapsed, latencies) = send_all(Arc::new(uploads), concurrency, tls.as_ref()).await;
    let cpu_after = (
        cpu_seconds("self"),
        clickhouse_pid.as_deref().map_or(0.0, cpu_seconds),
    );
    println!(
        "ingest CPU: {:.1} s in this process (nodes, load generator), {:.1} s in clickhouse-server: {:.2} µs per sample in all",
        cpu_after.0 - cpu_before.0,
        cpu_after.1 - cpu_before.1,
        (cpu_after.0 - cpu_before.0 + cpu_after.1 - cpu_before.1) * 1e6 / total_samples as f64
    );
    println!(
        "ingest: {:.2} s, {:.0} samples/s, {:.0} uploads/s, upload latency p50 {:.1} ms p99 {:.1} ms",
        elapsed.as_secs_f64(),
        total_samples as f64 / elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
    );
    let housekeeping = Instant::now();
    maintain_all(&servers).await;
    let bytes = bytes_of(&place);
    println!(
        "storage: housekeeping {:.2} s; {:.1} MB on disk, {:.2} bytes per sample",
        housekeeping.elapsed().as_secs_f64(),
        bytes as f64 / 1e6,
        bytes as f64 / total_samples as f64,
    );
    stop_all(servers).await;

    // Phase 2: a day of data (deploy v1, then v2), then the day's queries.
    let day = place_for(kind, clickhouse);
    let servers = start_nodes(&day, nodes, tls.as_ref()).await;
    let urls: Vec<String> = servers.iter().map(|s| s.url.clone()).collect();
    let mut uploads = Vec::new();
    for round in 0..day_profiles {
        let deploy = if round < day_profiles / 2 { "v1" } else { "v2" };
        for agent in 0..agents {
            let (body, samples) = agent_profile(pool, stacks, &mut rng);
            let time_ms = now_ms - 86_400_000 + 60_000 + (round as i64 * 86_000_000 / day_profiles as i64);
            let url = &urls[agent % nodes];
            uploads.push(Upload {
                url: format!(
                    "{url}/api/v1/profiles?service=fleet&deploy={deploy}&host=host{agent}&time_ms={time_ms}"
                ),
                body,
                samples,
            });
            uploads.push(Upload {
                url: format!("{url}/api/v1/requests"),
                body: requests_body(deploy, agent, time_ms, samples),
                samples: 0,
            });
        }
    }
    let day_samples: i64 = uploads.iter().map(|u| u.samples).sum();
    send_all(Arc::new(uploads), concurrency, tls.as_ref()).await;
    maintain_all(&servers).await;
    let client = http_client(tls.as_ref());
    let url = &urls[0];
    let range = format!("from={}&until={}", now_ms - 86_400_000, now_ms);
    let queries = [
        (
            "flame graph (JSON)",
            format!("{url}/api/v1/flamegraph?service=fleet&{range}"),
            false,
        ),
        (
            "top functions",
            format!("{url}/api/v1/functions?service=fleet&{range}"),
            false,
        ),
        (
            "flame graph, one endpoint",
            format!("{url}/api/v1/flamegraph?service=fleet&{range}&endpoint=GET%20%2Ffeed"),
            false,
        ),
        (
            "one endpoint's series",
            format!("{url}/api/v1/endpoints?service=fleet&{range}&window=10m"),
            false,
        ),
        (
            "one detection pass (v1 → v2)",
            format!("{url}/api/v1/detect?service=fleet"),
            true,
        ),
    ];
    for (name, path, post) in queries {
        let mut times = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            let request = if post {
                client.post(&path)
            } else {
                client.get(&path)
            };
            let response = request.send().await.unwrap();
            assert_eq!(response.status().as_u16(), 200);
            response.bytes().await.unwrap();
            times.push(started.elapsed());
            if post {
                break; // a second pass finds the data unchanged and does nothing
            }
        }
        times.sort();
        println!(
            "query over a day ({} uploads, {day_samples} samples): {name} median {:.0} ms (min {:.0}, max {:.0})",
            agents * day_profiles,
            percentile(&times, 0.5).as_secs_f64() * 1e3,
            times[0].as_secs_f64() * 1e3,
            times[times.len() - 1].as_secs_f64() * 1e3
        );
    }
    stop_all(servers).await;
}

fn main() {
    let stacks = env("FS_STACKS", 3_000);
    let stores = std::env::var("FS_STORES").unwrap_or_else(|_| "dir".to_owned());
    let mut rng = Rng(0x5eed);
    let pool = stack_pool(stacks * 3, &mut rng);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut clickhouse = None;
    for kind in stores.split(',') {
        assert!(
            ["dir", "dir-https", "clickhouse", "clickhouse-2"].contains(&kind),
            "FS_STORES: dir, dir-https, clickhouse or clickhouse-2, not {kind:?}"
        );
        runtime.block_on(run_on(kind, &mut clickhouse, &pool));
    }
}
