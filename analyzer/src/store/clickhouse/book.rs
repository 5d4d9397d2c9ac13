//! Regressions in ClickHouse: each change is a new row of the
//! regression's JSON with a higher `version`; the newest row of each id
//! is its state, read with `argMax`, so every node sees the same book.

use std::sync::Arc;
use std::sync::Mutex;

use serde::Deserialize;

use super::client::Client;
use crate::detect::Regression;
use crate::regressions::{RegressionBook, Regressions};
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
}
