//! The ClickHouse schema, versioned: each migration is a list of
//! idempotent statements (`CREATE TABLE IF NOT EXISTS`, …) and a row in
//! `flameshift_schema` once it has run. On start every missing version
//! runs in order; a database whose schema is newer than this binary is
//! refused, so an old node never writes rows a newer schema reads wrongly.
//!
//! The tables (docs/operations.md, "ClickHouse"):
//! - `samples`: summed per (service, deploy, endpoint, labels, host,
//!   stack, unit, 10 s bucket, upload) by a `SummingMergeTree`,
//!   partitioned by day (retention drops whole partitions); `upload` is
//!   the hash of the upload's `Idempotency-Key` (0 without one), so an
//!   upload sent twice is found and kept once (writer.rs);
//! - `stacks`: each stack's frames once per (service, stack id), a
//!   `ReplacingMergeTree` (inserted again by every node that meets it,
//!   merged away);
//! - `requests`: request counts, costs and cost histograms, summed like
//!   samples (`histogramMap` is summed per bucket);
//! - `deploys`: deploy events;
//! - `facts`: facts about deploys (the commits a deploy event listed,
//!   each function's source span), JSON, exact copies merged away;
//! - `regressions`: each regression's latest state as JSON, the newest
//!   `version` winning;
//! - `leases`: heartbeats of the nodes that want to run detection
//!   (book.rs).
//!
//! On a cluster (`?cluster=NAME` in the store URL) each table is made
//! twice on every shard: `TABLE_shard` holds the shard's rows and `TABLE`
//! is a `Distributed` table over every shard's `TABLE_shard`, so the
//! statements the store sends are the same on one server and on many.
//!
//! The SQL is the common ground of ClickHouse 18.16 and current
//! releases: no `LowCardinality`, no table `TTL`, no `Map` type.

use super::client::Client;
use crate::{Error, Result};

/// The schema version this binary writes and reads.
pub const LATEST: u32 = 3;

/// A table: how it is made on one server, and how rows are spread over
/// the shards of a cluster.
struct Table {
    name: &'static str,
    columns: &'static str,
    engine: &'static str,
    /// The `Distributed` sharding key: everything one insert writes goes
    /// to one shard (an upload is one host's rows), so an insert stays
    /// atomic; a stack always lands on the same shard, where its copies
    /// merge away.
    shard_by: &'static str,
}

/// One step of a migration.
enum Step {
    /// Makes a table.
    Create(Table),
    /// Adds a column at the end of a `MergeTree` table's sort key
    /// (18.16 has no `ADD COLUMN IF NOT EXISTS`: it runs only when the
    /// column is missing).
    AddKeyColumn {
        table: &'static str,
        column: &'static str,
        kind: &'static str,
        order_by: &'static str,
    },
}

const SAMPLE_ORDER_V2: &str = "(service, deploy, endpoint, time_ms, stack_id, labels, host, unit, upload)";
const REQUEST_ORDER_V2: &str = "(service, deploy, endpoint, time_ms, host, unit, upload)";

/// The steps of each version, oldest first. Version 1 is the first
/// release's schema; 2 added `upload` (exactly-once uploads) and `leases`
/// (the detection lease); 3 added `facts` (suspect commits).
const MIGRATIONS: &[(u32, &[Step])] = &[
    (
        1,
        &[
            Step::Create(Table {
                name: "samples",
                columns: "service String, day Date, time_ms Int64, deploy String, host String, endpoint String, \
                          labels String, stack_id UInt64, unit String, count Int64, weight Int64",
                engine: "SummingMergeTree((count, weight)) PARTITION BY day \
                         ORDER BY (service, deploy, endpoint, time_ms, stack_id, labels, host, unit)",
                shard_by: "cityHash64(service, host)",
            }),
            Step::Create(Table {
                name: "stacks",
                columns: "service String, stack_id UInt64, frames Array(String)",
                engine: "ReplacingMergeTree ORDER BY (service, stack_id)",
                shard_by: "stack_id",
            }),
            Step::Create(Table {
                name: "requests",
                columns: "service String, day Date, time_ms Int64, deploy String, host String, endpoint String, \
                          unit String, count Int64, cost Int64, histogramMap Nested(bucket UInt32, requests UInt64)",
                engine: "SummingMergeTree PARTITION BY day ORDER BY (service, deploy, endpoint, time_ms, host, unit)",
                shard_by: "cityHash64(service, host)",
            }),
            // Small tables every node reads whole: on the first shard.
            Step::Create(Table {
                name: "deploys",
                columns: "service String, deploy String, time_ms Int64, commit String, author String, message String",
                engine: "ReplacingMergeTree ORDER BY (service, deploy, time_ms)",
                shard_by: "0",
            }),
            Step::Create(Table {
                name: "regressions",
                columns: "id String, service String, version UInt64, body String",
                engine: "ReplacingMergeTree(version) ORDER BY id",
                shard_by: "0",
            }),
        ],
    ),
    (
        2,
        &[
            Step::AddKeyColumn {
                table: "samples",
                column: "upload",
                kind: "UInt64",
                order_by: SAMPLE_ORDER_V2,
            },
            Step::AddKeyColumn {
                table: "requests",
                column: "upload",
                kind: "UInt64",
                order_by: REQUEST_ORDER_V2,
            },
            Step::Create(Table {
                name: "leases",
                columns: "name String, node String, since_ms Int64, seen DateTime",
                engine: "ReplacingMergeTree(seen) ORDER BY (name, node)",
                shard_by: "0",
            }),
        ],
    ),
    (
        3,
        &[Step::Create(Table {
            name: "facts",
            columns: "service String, deploy String, kind String, key String, value String, time_ms Int64",
            engine: "ReplacingMergeTree ORDER BY (service, deploy, kind, key, value)",
            shard_by: "0",
        })],
    ),
];

/// Runs one step (with `cluster`: on the shard's table and the
/// `Distributed` one over it).
fn run(client: &Client, step: &Step, cluster: Option<&str>) -> Result<()> {
    match step {
        Step::Create(table) => {
            for statement in create(table, client.database(), cluster) {
                client.execute(&statement)?;
            }
        }
        Step::AddKeyColumn {
            table,
            column,
            kind,
            order_by,
        } => {
            let (local, distributed) = match cluster {
                None => (table.to_string(), None),
                Some(_) => (format!("{table}{SHARD_SUFFIX}"), Some(*table)),
            };
            add_column(
                client,
                &local,
                column,
                &format!("{kind}, MODIFY ORDER BY {order_by}"),
            )?;
            if let Some(distributed) = distributed {
                add_column(client, distributed, column, kind)?;
            }
        }
    }
    Ok(())
}

/// `ALTER TABLE table ADD COLUMN column definition` unless the column is
/// there (another node may have added it meanwhile: that is no error).
fn add_column(client: &Client, table: &str, column: &str, definition: &str) -> Result<()> {
    #[derive(serde::Deserialize)]
    struct Found {
        found: u64,
    }
    let present = || -> Result<bool> {
        let rows = client.rows::<Found>(&format!(
            "SELECT count() AS found FROM system.columns WHERE database = {} AND table = {} AND name = {}",
            super::client::quote(client.database()),
            super::client::quote(table),
            super::client::quote(column)
        ))?;
        Ok(rows.first().is_some_and(|r| r.found > 0))
    };
    if present()? {
        return Ok(());
    }
    match client.execute(&format!("ALTER TABLE {table} ADD COLUMN {column} {definition}")) {
        Err(_) if present()? => Ok(()),
        other => other,
    }
}

/// The suffix of the tables on each shard that a cluster's `Distributed`
/// tables spread rows over.
pub const SHARD_SUFFIX: &str = "_shard";

/// The statements that make `table`: on one server, the table itself; on
/// a cluster, the shard's table and the `Distributed` table over all.
fn create(table: &Table, database: &str, cluster: Option<&str>) -> Vec<String> {
    let Table {
        name,
        columns,
        engine,
        shard_by,
    } = table;
    match cluster {
        None => vec![format!(
            "CREATE TABLE IF NOT EXISTS {name} ({columns}) ENGINE = {engine}"
        )],
        Some(cluster) => vec![
            format!("CREATE TABLE IF NOT EXISTS {name}{SHARD_SUFFIX} ({columns}) ENGINE = {engine}"),
            format!(
                "CREATE TABLE IF NOT EXISTS {name} AS {name}{SHARD_SUFFIX} \
                 ENGINE = Distributed({cluster}, {database}, {name}{SHARD_SUFFIX}, {shard_by})"
            ),
        ],
    }
}

#[derive(serde::Deserialize)]
struct Version {
    latest: u32,
}

/// Checks the database exists on the server `client` talks to, then
/// brings its schema to [`LATEST`] (with `cluster`: the shard's tables and
/// the `Distributed` tables over the cluster). Several nodes may run this
/// at once: every statement is idempotent.
pub fn migrate(client: &Client, cluster: Option<&str>) -> Result<u32> {
    let database = client.database();
    let exists = client.execute_bare(&format!(
        "SELECT count() FROM system.databases WHERE name = {}",
        super::client::quote(database)
    ))?;
    if exists.trim() != "1" {
        return Err(Error::Config(format!(
            "ClickHouse at {} has no database `{database}`; create it with `CREATE DATABASE {database}` or name another in the URL",
            client.endpoint().address
        )));
    }
    client.execute(
        "CREATE TABLE IF NOT EXISTS flameshift_schema (version UInt32, applied_ms Int64) \
         ENGINE = MergeTree ORDER BY version",
    )?;
    let current = client
        .rows::<Version>("SELECT max(version) AS latest FROM flameshift_schema")?
        .first()
        .map_or(0, |v| v.latest);
    if current > LATEST {
        return Err(Error::Config(format!(
            "the ClickHouse database `{database}` has schema version {current}, newer than this flameshift's {LATEST}; upgrade flameshift"
        )));
    }
    for (version, steps) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        for step in *steps {
            run(client, step, cluster)?;
        }
        let row = serde_json::json!({ "version": version, "applied_ms": super::now_ms() });
        client.insert("flameshift_schema", format!("{row}\n").as_bytes())?;
        tracing::info!(database, version, "ClickHouse schema migrated");
    }
    Ok(current.max(LATEST))
}
