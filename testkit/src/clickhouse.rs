//! A real `clickhouse-server` for the tests: a child process on free
//! loopback ports, with its config and data in a temporary directory; a
//! watchdog shell stops it when the test binary exits. One server is
//! shared by a test binary's tests, each with a database of its own;
//! fault tests start their own, to kill and start again.
//!
//! Used by the analyzer's tests and benches and the binary's tests
//! (tests/cli). `scripts/test.sh` installs Debian's `clickhouse-server`
//! (18.16).

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use flameshift_analyzer::store::Endpoint;

/// The name of the cluster [`ClickHouseServer::start_cluster`] makes.
pub const CLUSTER: &str = "two_shards";

/// A running server.
pub struct ClickHouseServer {
    /// `127.0.0.1:PORT` of its HTTP interface.
    pub address: String,
    /// Its config, data and logs (removed when the test binary ends).
    dir: tempfile::TempDir,
    /// The shell that runs it (ends with the server); none while stopped.
    watchdog: Option<std::process::Child>,
}

impl Drop for ClickHouseServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The server binary: on PATH, or where Debian puts it.
fn binary() -> PathBuf {
    for candidate in ["/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"] {
        if Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    panic!("clickhouse-server is not installed: `apt-get install clickhouse-server` (scripts/test.sh does)")
}

/// Statements the tests sent are appended here when
/// `FLAMESHIFT_CLICKHOUSE_SQL_LOG` is set (scripts/check-clickhouse-sql.py
/// runs them on a current ClickHouse).
pub fn sql_log() -> Option<PathBuf> {
    std::env::var_os("FLAMESHIFT_CLICKHOUSE_SQL_LOG").map(PathBuf::from)
}

/// Sends one statement; panics with ClickHouse's message on an error.
pub fn execute(address: &str, sql: &str) -> String {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut response = agent.post(&format!("http://{address}/")).send(sql).unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    assert_eq!(status, 200, "{sql}: {text}");
    text
}

/// Starts `clickhouse-server` on `dir/config.xml` under a watchdog shell
/// that ends it when this process is gone, and waits until `address`
/// answers.
fn launch(dir: &Path, address: &str) -> std::process::Child {
    let root = dir.display();
    let script = format!(
        "{} --config-file={root}/config.xml >>{root}/stdout.log 2>&1 & server=$!; echo $server >{root}/server.pid; \
         while kill -0 {} 2>/dev/null && kill -0 $server 2>/dev/null; do sleep 1; done; \
         kill $server 2>/dev/null; wait",
        binary().display(),
        std::process::id()
    );
    let watchdog = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while ureq::get(&format!("http://{address}/ping")).call().is_err() {
        if started.elapsed() > Duration::from_secs(60) {
            let log = std::fs::read_to_string(dir.join("stdout.log")).unwrap_or_default();
            panic!("clickhouse-server did not start within 60 s: {log}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    watchdog
}

impl ClickHouseServer {
    /// Starts a server and waits until it answers.
    pub fn start() -> ClickHouseServer {
        ClickHouseServer::start_on(free_port(), free_port(), "")
    }

    /// Starts `shards` servers, each one shard of the cluster `CLUSTER`.
    pub fn start_cluster(shards: usize) -> Vec<ClickHouseServer> {
        let ports: Vec<(u16, u16)> = (0..shards).map(|_| (free_port(), free_port())).collect();
        let mut remote = format!("<remote_servers><{CLUSTER}>");
        for (_, tcp) in &ports {
            remote.push_str(&format!(
                "<shard><replica><host>127.0.0.1</host><port>{tcp}</port></replica></shard>"
            ));
        }
        remote.push_str(&format!("</{CLUSTER}></remote_servers>"));
        ports
            .iter()
            .map(|(http, tcp)| ClickHouseServer::start_on(*http, *tcp, &remote))
            .collect()
    }

    /// The two-shard cluster every test of this binary shares.
    pub fn shared_cluster() -> &'static [ClickHouseServer] {
        static CLUSTER_SERVERS: OnceLock<Vec<ClickHouseServer>> = OnceLock::new();
        CLUSTER_SERVERS.get_or_init(|| ClickHouseServer::start_cluster(2))
    }

    /// A new empty database on every server of `cluster`, as one endpoint
    /// spreading the tables over them.
    pub fn fresh_cluster_database(cluster: &[ClickHouseServer]) -> Endpoint {
        let mut endpoint = cluster[0].fresh_database();
        for server in &cluster[1..] {
            execute(&server.address, &format!("CREATE DATABASE {}", endpoint.database));
        }
        endpoint.cluster = Some(CLUSTER.to_owned());
        endpoint.shards = cluster.iter().map(|s| s.address.clone()).collect();
        endpoint
    }

    fn start_on(http: u16, tcp: u16, extra_config: &str) -> ClickHouseServer {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().display();
        let config = format!(
            r#"<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{root}/server.log</log><errorlog>{root}/error.log</errorlog></logger>
  <http_port>{http}</http_port>
  <tcp_port>{tcp}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>{root}/data/</path>
  <tmp_path>{root}/tmp/</tmp_path>
  <user_files_path>{root}/user_files/</user_files_path>
  <format_schema_path>{root}/format_schemas/</format_schema_path>
  <mark_cache_size>67108864</mark_cache_size>
  <users>
    <default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default>
    <alice><password>wonderland</password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></alice>
  </users>
  <profiles><default></default></profiles>
  <quotas><default></default></quotas>
  {extra_config}
</yandex>
"#
        );
        std::fs::File::create(dir.path().join("config.xml"))
            .unwrap()
            .write_all(config.as_bytes())
            .unwrap();
        let address = format!("127.0.0.1:{http}");
        let watchdog = launch(dir.path(), &address);
        ClickHouseServer {
            address,
            dir,
            watchdog: Some(watchdog),
        }
    }

    /// Kills the server (`SIGKILL`: no chance to finish what it was doing).
    pub fn kill(&mut self) {
        let Some(mut watchdog) = self.watchdog.take() else {
            return;
        };
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("server.pid")) {
            let _ = Command::new("kill").args(["-9", pid.trim()]).status();
        }
        let _ = watchdog.wait(); // the shell ends with its server
    }

    /// The server's process id (none while stopped).
    pub fn pid(&self) -> Option<u32> {
        self.watchdog.as_ref()?;
        std::fs::read_to_string(self.dir.path().join("server.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Starts the server again on the same ports and data.
    pub fn restart(&mut self) {
        self.kill();
        self.watchdog = Some(launch(self.dir.path(), &self.address));
    }

    /// The server every test of this binary shares.
    pub fn shared() -> &'static ClickHouseServer {
        static SERVER: OnceLock<ClickHouseServer> = OnceLock::new();
        SERVER.get_or_init(ClickHouseServer::start)
    }

    /// A new empty database.
    pub fn fresh_database(&self) -> Endpoint {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("t{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        execute(&self.address, &format!("CREATE DATABASE {name}"));
        Endpoint {
            address: self.address.clone(),
            database: name,
            ..Endpoint::default()
        }
    }
}
