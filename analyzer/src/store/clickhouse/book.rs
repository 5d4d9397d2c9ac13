//! Regressions in ClickHouse: each change is a new row of the
//! regression's JSON with a higher `version`; the newest row of each id
//! is its state, read with `argMax`, so every node sees the same book.
//!
//! The detection lease lives beside it in `leases`: every node writes a
//! heartbeat (ClickHouse's clock, not the node's) each time it would run
//! detection; the node to run it is the earliest-started of those heard
//! from within the lease's time to live. ClickHouse has no
//! compare-and-set, so this is a rule every node evaluates over the same
//! rows rather than a lock: when the leading node dies, the next one
//! takes over once the dead node's last heartbeat is older than the time
//! to live; a node that joins never displaces a live leader.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;

use super::client::quote;
use super::client::Client;
use crate::detect::Regression;
use crate::store::{Node, RegressionBook, Regressions};
use crate::{Error, Result};

/// The `regressions` table. See the module documentation.
#[derive(Debug)]
pub struct ClickHouseBook {
    client: Arc<Client>,
    /// The last version this node wrote: versions are microseconds since
    /// the epoch, never repeated by one node.
    last_version: Mutex<u64>,
}

#[derive(Deserialize)]
struct Row {
    latest: String,
}

#[derive(Deserialize)]
struct Leader {
    node: String,
}

/// The lease detection runs under.
const DETECTION: &str = "detection";

impl ClickHouseBook {
    pub(super) fn new(client: Arc<Client>) -> ClickHouseBook {
        ClickHouseBook {
            client,
            last_version: Mutex::new(0),
        }
    }

    fn next_version(&self) -> u64 {
        let now = u64::try_from(super::now_ms()).unwrap_or(0) * 1_000;
        let mut last = self.last_version.lock().unwrap_or_else(|e| e.into_inner());
        *last = now.max(*last + 1);
        *last
    }
}

impl RegressionBook for ClickHouseBook {
    fn all(&self) -> Result<Regressions> {
        let rows = self
            .client
            .rows::<Row>("SELECT argMax(body, version) AS latest FROM regressions GROUP BY id")?;
        rows.into_iter()
            .map(|row| {
                let regression: Regression = serde_json::from_str(&row.latest)
                    .map_err(|e| Error::Backend(format!("a stored regression does not decode: {e}")))?;
                Ok((regression.id.clone(), regression))
            })
            .collect()
    }

    fn put(&self, changed: &[Regression]) -> Result<()> {
        let mut lines = Vec::new();
        for regression in changed {
            let body = serde_json::to_string(regression)
                .map_err(|e| Error::Backend(format!("encode a regression: {e}")))?;
            let row = serde_json::json!({
                "id": regression.id,
                "service": regression.service,
                "version": self.next_version(),
                "body": body,
            });
            lines.extend_from_slice(row.to_string().as_bytes());
            lines.push(b'\n');
        }
        self.client.insert("regressions", &lines)
    }

    fn lead(&self, node: &Node, ttl: Duration) -> Result<String> {
        self.client.execute(&format!(
            "INSERT INTO leases (name, node, since_ms, seen) SELECT {}, {}, {}, now()",
            quote(DETECTION),
            quote(&node.id),
            node.since_ms
        ))?;
        let leaders = self.client.rows::<Leader>(&format!(
            "SELECT node FROM leases WHERE name = {} GROUP BY node \
             HAVING max(seen) >= now() - {} ORDER BY argMax(since_ms, seen), node LIMIT 1",
            quote(DETECTION),
            ttl.as_secs().max(1)
        ))?;
        // Our own heartbeat was just written: there is always one.
        Ok(leaders
            .into_iter()
            .next()
            .map_or_else(|| node.id.clone(), |l| l.node))
    }
}
