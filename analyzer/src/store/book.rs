//! Where regressions and their states are kept: the seam that lets
//! several analyzer nodes share them. [`FileBook`] is the embedded
//! store's `regressions.json`; the ClickHouse store has its own
//! ([`crate::store::ClickHouseStore::regression_book`]).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::detect::Regression;
use crate::store::disk::wal::sync_dir;
use crate::{Error, Result};

/// The regressions of every service, by id.
pub type Regressions = BTreeMap<String, Regression>;

/// Keeps regressions and their states (open → acknowledged → resolved).
pub trait RegressionBook: Send + Sync + Debug {
    /// Every regression, by id.
    fn all(&self) -> Result<Regressions>;
    /// Stores `changed` (new regressions, or new versions of known ones,
    /// replacing them by id); an error means none of them was stored.
    fn put(&self, changed: &[Regression]) -> Result<()>;

    /// Says `node` is alive and wants to run detection, and returns the
    /// id of the node that should: among the nodes heard from within
    /// `ttl`, the one that has wanted it longest. A book only one node
    /// uses (the default) always answers `node`.
    fn lead(&self, node: &Node, ttl: Duration) -> Result<String> {
        let _ = ttl;
        Ok(node.id.clone())
    }
}

/// An analyzer process, as the detection lease knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Random, new for each process.
    pub id: String,
    /// When it started, ms since the Unix epoch (the earliest live node
    /// leads, so a node that joins does not take over).
    pub since_ms: i64,
}

impl Node {
    /// This process, with a new random id.
    pub fn new(since_ms: i64) -> Node {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_i64(since_ms);
        h.write_u32(std::process::id());
        Node {
            id: format!("{:016x}", h.finish()),
            since_ms,
        }
    }
}

#[derive(Default, Serialize, Deserialize)]
struct OnDisk {
    regressions: Regressions,
}

/// `regressions.json` in a data directory, written whole (to a temporary
/// file, fsynced, renamed) on every change.
#[derive(Debug)]
pub struct FileBook {
    path: PathBuf,
    book: Mutex<Regressions>,
}

const FILE: &str = "regressions.json";

impl FileBook {
    /// Loads `regressions.json` from `dir` (an unreadable file is moved
    /// aside and reported, not fatal).
    pub fn open(dir: &Path) -> Result<FileBook> {
        let path = dir.join(FILE);
        let book = match fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<OnDisk>(&bytes) {
                Ok(book) => book.regressions,
                Err(e) => {
                    let aside = dir.join(format!("{FILE}.corrupt"));
                    tracing::error!(error = %e, moved_to = %aside.display(), "unreadable regressions file; starting empty");
                    fs::rename(&path, &aside)
                        .map_err(|e| Error::io(format!("move {} aside", path.display()), e))?;
                    Regressions::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Regressions::new(),
            Err(e) => return Err(Error::io(format!("read {}", path.display()), e)),
        };
        Ok(FileBook {
            path,
            book: Mutex::new(book),
        })
    }

    fn save(&self, book: &Regressions) -> Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let tmp = dir.join(format!(".{FILE}.tmp"));
        let body = serde_json::to_vec_pretty(&serde_json::json!({ "regressions": book }))
            .map_err(|e| Error::io("encode the regressions", std::io::Error::other(e)))?;
        fs::write(&tmp, body)
            .and_then(|_| fs::File::open(&tmp)?.sync_all())
            .and_then(|_| fs::rename(&tmp, &self.path))
            .map_err(|e| Error::io(format!("write {}", self.path.display()), e))?;
        sync_dir(dir)
    }
}

impl RegressionBook for FileBook {
    fn all(&self) -> Result<Regressions> {
        Ok(self.book.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    fn put(&self, changed: &[Regression]) -> Result<()> {
        let mut book = self.book.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = book.clone();
        for regression in changed {
            next.insert(regression.id.clone(), regression.clone());
        }
        self.save(&next)?;
        *book = next;
        Ok(())
    }
}
