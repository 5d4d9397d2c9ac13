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
//! - `regressions`: each regression's latest state as JSON, the newest
//!   `version` winning;
//! - `leases`: heartbeats of the nodes that want to run detection
//!   (book.rs).
//!
//! The SQL is the common ground of ClickHouse 18.16 and current
//! releases: no `LowCardinality`, no table `TTL`, no `Map` type.

use super::client::Client;
use crate::{Error, Result};

/// The schema version this binary writes and reads.
pub const LATEST: u32 = 1;

/// Statements of each version, oldest first.
const MIGRATIONS: &[(u32, &[&str])] = &[(
    1,
    &[
        "CREATE TABLE IF NOT EXISTS samples (service String, day Date, time_ms Int64, deploy String, \
         host String, endpoint String, labels String, stack_id UInt64, unit String, count Int64, weight Int64, \
         upload UInt64) \
         ENGINE = SummingMergeTree((count, weight)) PARTITION BY day \
         ORDER BY (service, deploy, endpoint, time_ms, stack_id, labels, host, unit, upload)",
        "CREATE TABLE IF NOT EXISTS stacks (service String, stack_id UInt64, frames Array(String)) \
         ENGINE = ReplacingMergeTree ORDER BY (service, stack_id)",
        "CREATE TABLE IF NOT EXISTS requests (service String, day Date, time_ms Int64, deploy String, \
         host String, endpoint String, unit String, count Int64, cost Int64, \
         histogramMap Nested(bucket UInt32, requests UInt64), upload UInt64) \
         ENGINE = SummingMergeTree PARTITION BY day \
         ORDER BY (service, deploy, endpoint, time_ms, host, unit, upload)",
        "CREATE TABLE IF NOT EXISTS deploys (service String, deploy String, time_ms Int64, \
         commit String, author String, message String) \
         ENGINE = ReplacingMergeTree ORDER BY (service, deploy, time_ms)",
        "CREATE TABLE IF NOT EXISTS regressions (id String, service String, version UInt64, body String) \
         ENGINE = ReplacingMergeTree(version) ORDER BY id",
        "CREATE TABLE IF NOT EXISTS leases (name String, node String, since_ms Int64, seen DateTime) \
         ENGINE = ReplacingMergeTree(seen) ORDER BY (name, node)",
    ],
)];

#[derive(serde::Deserialize)]
struct Version {
    latest: u32,
}

/// Checks the database exists, then brings its schema to [`LATEST`].
/// Several nodes may run this at once: every statement is idempotent.
pub fn migrate(client: &Client) -> Result<u32> {
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
    for (version, statements) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        for statement in *statements {
            client.execute(statement)?;
        }
        let row = serde_json::json!({ "version": version, "applied_ms": super::now_ms() });
        client.insert("flameshift_schema", format!("{row}\n").as_bytes())?;
        tracing::info!(database, version, "ClickHouse schema migrated");
    }
    Ok(current.max(LATEST))
}
