//! The ClickHouse store on its own: starting against bad URLs, servers,
//! credentials and databases; schema versions; what only it does.

use flameshift_analyzer::ingest::{self, Limits, Upload, UploadKind};
use flameshift_analyzer::store::{Backend, ClickHouseConfig, Endpoint};
use flameshift_analyzer::Error;

use super::clickhouse_server::{execute, ClickHouseServer};

fn open(endpoint: Endpoint) -> Result<Backend, Error> {
    Backend::clickhouse(ClickHouseConfig::new(endpoint))
}

#[test]
fn an_unreachable_server_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let error = open(Endpoint {
        address: format!("127.0.0.1:{port}"),
        database: "fs".into(),
        ..Endpoint::default()
    })
    .unwrap_err();
    assert!(matches!(error, Error::Unavailable(_)), "{error:?}");
    assert!(
        error
            .to_string()
            .contains(&format!("ClickHouse at 127.0.0.1:{port} did not answer")),
        "{error}"
    );
}

#[test]
fn wrong_credentials_pass_on_clickhouses_message() {
    let mut endpoint = ClickHouseServer::shared().fresh_database();
    endpoint.user = Some("alice".into());
    endpoint.password = Some("not the password".into());
    let error = open(endpoint.clone()).unwrap_err().to_string();
    assert!(error.contains("Wrong password for user alice"), "{error}");
    endpoint.password = Some("wonderland".into());
    open(endpoint).unwrap();
}

#[test]
fn a_missing_database_is_named_not_created() {
    let mut endpoint = ClickHouseServer::shared().fresh_database();
    endpoint.database = "no_such_database".into();
    let error = open(endpoint.clone()).unwrap_err().to_string();
    assert!(error.contains("has no database `no_such_database`"), "{error}");
    let databases = execute(&endpoint.address, "SELECT name FROM system.databases");
    assert!(!databases.contains("no_such_database"));
    endpoint.database = "bad-name".into();
    let error = open(endpoint).unwrap_err().to_string();
    assert!(error.contains("use letters, digits and `_`"), "{error}");
}

#[test]
fn the_schema_is_created_once_and_a_newer_one_is_refused() {
    let endpoint = ClickHouseServer::shared().fresh_database();
    open(endpoint.clone()).unwrap();
    open(endpoint.clone()).unwrap();
    let db = &endpoint.database;
    let versions = execute(
        &endpoint.address,
        &format!("SELECT count() FROM {db}.flameshift_schema"),
    );
    assert_eq!(versions.trim(), "3", "each of the three migrations ran once");
    execute(
        &endpoint.address,
        &format!("INSERT INTO {db}.flameshift_schema VALUES (99, 0)"),
    );
    let error = open(endpoint).unwrap_err().to_string();
    assert!(
        error.contains("has schema version 99, newer than this flameshift's 3"),
        "{error}"
    );
}

/// An upload as the agent sends it, with its `Idempotency-Key`.
fn keyed(kind: UploadKind, params: &[(&str, &str)], body: &str, key: Option<&str>) -> Upload {
    Upload {
        kind,
        params: params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        received_ms: 1_764_000_000_000,
        key: key.map(str::to_owned),
        body: body.as_bytes().to_vec(),
    }
}

#[test]
fn an_upload_sent_again_with_its_key_is_kept_once() {
    let backend = super::Place::clickhouse().backend(8);
    let store = backend.store.clone();
    let limits = Limits::default();
    let profile = |key: Option<&str>| {
        keyed(
            UploadKind::Pyroscope,
            &[("name", "shop.cpu{deploy=v1}"), ("from", "1764000000")],
            "main;handle 3\nmain;render 4\n",
            key,
        )
    };
    let requests = |key: Option<&str>| {
        keyed(
            UploadKind::Requests,
            &[],
            r#"{"service":"shop","deploy":"v1","unit":"cpu_ns","start_ms":1764000000000,
                "endpoints":[{"endpoint":"GET /","count":5,"cost_sum":50}]}"#,
            key,
        )
    };
    let send = |upload: Upload| store.append(ingest::accept(upload, &limits).unwrap()).unwrap();
    // The same key twice in a row, then twice at once (one batch).
    send(profile(Some("k1")));
    send(profile(Some("k1")));
    std::thread::scope(|s| {
        s.spawn(|| send(profile(Some("k2"))));
        s.spawn(|| send(profile(Some("k2"))));
    });
    // No key: every copy counts.
    send(profile(None));
    send(profile(None));
    send(requests(Some("r1")));
    send(requests(Some("r1")));
    send(requests(None));
    let deploys = store.deploys("shop").unwrap();
    assert_eq!(deploys.len(), 1);
    assert_eq!(deploys[0].samples, 4 * 7, "k1 once, k2 once, two without a key");
    assert_eq!(deploys[0].requests, 2 * 5, "r1 once, one without a key");
}

#[test]
fn one_node_holds_the_detection_lease_until_it_stops_beating() {
    use flameshift_analyzer::detect::DetectSettings;
    use flameshift_analyzer::regressions::Detector;
    use std::time::Duration;

    let backend = super::Place::clickhouse().backend(8);
    let node = || {
        let detector = Detector::new(backend.regressions.clone(), DetectSettings::default(), None)
            .with_lease_ttl(Duration::from_secs(1));
        std::thread::sleep(Duration::from_millis(5)); // the next starts later
        detector
    };
    let (first, second) = (node(), node());
    let store = &*backend.store;
    let run = |d: &Detector| d.run(store, None, 0).unwrap().led_by;
    assert_eq!(run(&first), None, "the first node leads");
    assert_eq!(run(&second).as_deref(), Some(first.node().id.as_str()));
    // While the first keeps beating, the one that joined later waits.
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(700));
        assert_eq!(run(&first), None);
        assert_eq!(run(&second).as_deref(), Some(first.node().id.as_str()));
    }
    // The first stops (dies): after the lease's time the second takes over.
    std::thread::sleep(Duration::from_millis(2_500));
    assert_eq!(run(&second), None, "the second node took over");
    assert_eq!(run(&first).as_deref(), Some(second.node().id.as_str()));
}

#[test]
fn a_two_shard_cluster_spreads_the_rows_and_answers_like_one_server() {
    use flameshift_analyzer::store::Selection;
    let one = super::Place::clickhouse().backend(8);
    let cluster_servers = ClickHouseServer::shared_cluster();
    let endpoint = ClickHouseServer::fresh_cluster_database(cluster_servers);
    let cluster = super::Place::ClickHouse(endpoint.clone()).backend(8);
    let limits = Limits::default();
    for backend in [&one, &cluster] {
        for host in 0..12 {
            let params = [
                ("name", format!("shop.cpu{{deploy=v{},host=h{host}}}", host % 2)),
                ("from", "1764000000".to_owned()),
            ];
            let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let body = format!("main;handle;h{host} {}\nmain;render {}\n", host + 1, 2 * host + 1);
            let upload = keyed(UploadKind::Pyroscope, &params, &body, None);
            backend
                .store
                .append(ingest::accept(upload, &limits).unwrap())
                .unwrap();
        }
    }
    let selection = Selection {
        service: "shop".into(),
        ..Selection::default()
    };
    let (a, b) = (&one.store, &cluster.store);
    assert_eq!(a.deploys("shop").unwrap(), b.deploys("shop").unwrap());
    assert_eq!(
        a.stack_totals(&selection).unwrap(),
        b.stack_totals(&selection).unwrap()
    );
    assert_eq!(
        a.stack_series(&selection, 60_000, true).unwrap().rows,
        b.stack_series(&selection, 60_000, true).unwrap().rows
    );
    // Each shard holds part of the samples, and together all of them.
    let per_shard: Vec<u64> = cluster_servers
        .iter()
        .map(|server| {
            execute(
                &server.address,
                &format!("SELECT count() FROM {}.samples_shard", endpoint.database),
            )
            .trim()
            .parse()
            .unwrap()
        })
        .collect();
    assert!(per_shard.iter().all(|&n| n > 0), "{per_shard:?}");
    assert_eq!(per_shard.iter().sum::<u64>(), 12 * 2, "{per_shard:?}");
}

#[test]
fn a_database_of_the_first_schema_is_migrated_and_keeps_its_rows() {
    let endpoint = ClickHouseServer::shared().fresh_database();
    let (address, db) = (&endpoint.address, &endpoint.database);
    // What the first release made (schema version 1), with one upload in it.
    for statement in [
        "CREATE TABLE flameshift_schema (version UInt32, applied_ms Int64) ENGINE = MergeTree ORDER BY version",
        "INSERT INTO flameshift_schema VALUES (1, 0)",
        "CREATE TABLE samples (service String, day Date, time_ms Int64, deploy String, host String, \
         endpoint String, labels String, stack_id UInt64, unit String, count Int64, weight Int64) \
         ENGINE = SummingMergeTree((count, weight)) PARTITION BY day \
         ORDER BY (service, deploy, endpoint, time_ms, stack_id, labels, host, unit)",
        "CREATE TABLE stacks (service String, stack_id UInt64, frames Array(String)) \
         ENGINE = ReplacingMergeTree ORDER BY (service, stack_id)",
        "CREATE TABLE requests (service String, day Date, time_ms Int64, deploy String, host String, \
         endpoint String, unit String, count Int64, cost Int64, histogramMap Nested(bucket UInt32, requests UInt64)) \
         ENGINE = SummingMergeTree PARTITION BY day ORDER BY (service, deploy, endpoint, time_ms, host, unit)",
        "CREATE TABLE deploys (service String, deploy String, time_ms Int64, commit String, author String, \
         message String) ENGINE = ReplacingMergeTree ORDER BY (service, deploy, time_ms)",
        "CREATE TABLE regressions (id String, service String, version UInt64, body String) \
         ENGINE = ReplacingMergeTree(version) ORDER BY id",
        "INSERT INTO samples VALUES ('shop', '2025-11-24', 1764000000000, 'v1', 'h', '', '{}', 7, 'cpu_ns', 5, 50)",
        "INSERT INTO stacks VALUES ('shop', 7, ['main'])",
    ] {
        // In the test's database.
        let statement = statement
            .replace("TABLE ", &format!("TABLE {db}."))
            .replace("INTO ", &format!("INTO {db}."));
        execute(address, &statement);
    }
    let backend = super::Place::ClickHouse(endpoint.clone()).backend(8);
    let sorting = execute(
        address,
        &format!("SELECT sorting_key FROM system.tables WHERE database = '{db}' AND name = 'samples'"),
    );
    assert!(sorting.trim().ends_with("unit, upload"), "{sorting}");
    let limits = Limits::default();
    let upload = || {
        keyed(
            UploadKind::Pyroscope,
            &[("name", "shop.cpu{deploy=v1}"), ("from", "1764000000")],
            "main;handle 3\n",
            Some("again"),
        )
    };
    for _ in 0..2 {
        backend
            .store
            .append(ingest::accept(upload(), &limits).unwrap())
            .unwrap();
    }
    let deploys = backend.store.deploys("shop").unwrap();
    assert_eq!(deploys[0].samples, 5 + 3, "the old row kept, the new upload once");
}
