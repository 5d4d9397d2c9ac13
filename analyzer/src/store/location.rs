//! Where `flameshift serve` keeps its data: `dir://PATH` (the embedded
//! store, also written as a plain path) or
//! `clickhouse://[USER[:PASSWORD]@]HOST[:PORT][,HOST[:PORT]…]/DATABASE[?cluster=NAME]`
//! (ClickHouse's HTTP interface, port 8123 unless given; statements go to
//! the first host; with `cluster`, the tables are spread over that
//! cluster's shards, every listed host being one whose schema is made),
//! and opening either with its regression book.

use std::path::PathBuf;
use std::sync::Arc;

use super::{ClickHouseConfig, ClickHouseStore, DiskStore, Endpoint, Store, StoreConfig};
use crate::store::{FileBook, RegressionBook};
use crate::{Error, Result};

/// ClickHouse's HTTP port, when a URL names none.
const CLICKHOUSE_HTTP_PORT: u16 = 8123;

/// A parsed `--store` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// The embedded store in this directory.
    Dir(PathBuf),
    /// A ClickHouse database.
    ClickHouse(Endpoint),
}

fn percent_decode(text: &str, what: &str) -> Result<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| Error::Config(format!("the store URL's {what} has a bad %-escape")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| Error::Config(format!("the store URL's {what} is not UTF-8")))
}

impl StoreLocation {
    /// Parses `dir://PATH`, `clickhouse://…` or a plain path.
    pub fn parse(text: &str) -> Result<StoreLocation> {
        let usage =
            "use dir://PATH or clickhouse://[USER[:PASSWORD]@]HOST[:PORT][,HOST[:PORT]...]/DATABASE[?cluster=NAME]";
        if let Some(path) = text.strip_prefix("dir://") {
            if path.is_empty() {
                return Err(Error::Config(format!(
                    "store URL {text:?} names no directory: {usage}"
                )));
            }
            return Ok(StoreLocation::Dir(PathBuf::from(path)));
        }
        let Some(rest) = text.strip_prefix("clickhouse://") else {
            if text.contains("://") {
                return Err(Error::Config(format!(
                    "unknown store URL scheme in {text:?}: {usage}"
                )));
            }
            return Ok(StoreLocation::Dir(PathBuf::from(text)));
        };
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut cluster = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("cluster", name)) if !name.is_empty() => {
                    cluster = Some(percent_decode(name, "cluster")?)
                }
                _ => {
                    return Err(Error::Config(format!(
                        "store URL {text:?}: unknown option {pair:?} (the one option is cluster=NAME)"
                    )))
                }
            }
        }
        let (authority, database) = rest
            .split_once('/')
            .ok_or_else(|| Error::Config(format!("store URL {text:?} names no database: {usage}")))?;
        let database = database.trim_end_matches('/');
        if database.is_empty() || database.contains(['/', '?', '#']) {
            return Err(Error::Config(format!(
                "store URL {text:?}: the path must be one database name: {usage}"
            )));
        }
        let (credentials, host_port) = match authority.rsplit_once('@') {
            Some((c, h)) => (Some(c), h),
            None => (None, authority),
        };
        let (user, password) = match credentials {
            Some(c) => match c.split_once(':') {
                Some((u, p)) => (
                    Some(percent_decode(u, "user")?),
                    Some(percent_decode(p, "password")?),
                ),
                None => (Some(percent_decode(c, "user")?), None),
            },
            None => (None, None),
        };
        let mut hosts = Vec::new();
        for host_port in host_port.split(',') {
            let (host, port) = match host_port.rsplit_once(':') {
                Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
                    let port: u16 = p
                        .parse()
                        .map_err(|_| Error::Config(format!("store URL {text:?}: bad port {p:?}")))?;
                    (h, port)
                }
                _ => (host_port, CLICKHOUSE_HTTP_PORT),
            };
            if host.is_empty() {
                return Err(Error::Config(format!(
                    "store URL {text:?} names no host: {usage}"
                )));
            }
            hosts.push(format!("{host}:{port}"));
        }
        if hosts.len() > 1 && cluster.is_none() {
            return Err(Error::Config(format!(
                "store URL {text:?} lists several hosts but no ?cluster=NAME to spread the tables over"
            )));
        }
        Ok(StoreLocation::ClickHouse(Endpoint {
            address: hosts[0].clone(),
            shards: if cluster.is_some() { hosts } else { Vec::new() },
            cluster,
            database: database.to_owned(),
            user,
            password,
        }))
    }
}

/// A store and the regression book beside it.
#[derive(Clone)]
pub struct Backend {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Where regressions and their states are kept.
    pub regressions: Arc<dyn RegressionBook>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend").finish_non_exhaustive()
    }
}

impl Backend {
    /// The embedded store and `regressions.json` in its directory.
    pub fn disk(config: StoreConfig) -> Result<Backend> {
        let regressions = FileBook::open(&config.dir)?;
        Ok(Backend {
            store: Arc::new(DiskStore::open(config)?),
            regressions: Arc::new(regressions),
        })
    }

    /// A ClickHouse database and its `regressions` table.
    pub fn clickhouse(config: ClickHouseConfig) -> Result<Backend> {
        let store = ClickHouseStore::open(config)?;
        Ok(Backend {
            regressions: Arc::new(store.regression_book()),
            store: Arc::new(store),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clickhouse(text: &str) -> Endpoint {
        match StoreLocation::parse(text).unwrap() {
            StoreLocation::ClickHouse(e) => e,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn store_urls_parse() {
        assert_eq!(
            StoreLocation::parse("dir:///var/lib/fs").unwrap(),
            StoreLocation::Dir("/var/lib/fs".into())
        );
        assert_eq!(
            StoreLocation::parse("data").unwrap(),
            StoreLocation::Dir("data".into())
        );
        let e = clickhouse("clickhouse://ch.internal/profiles");
        assert_eq!(
            (e.address.as_str(), e.database.as_str()),
            ("ch.internal:8123", "profiles")
        );
        assert_eq!((e.user, e.password), (None, None));
        let e = clickhouse("clickhouse://alice:s%40cret@127.0.0.1:18123/fs/");
        assert_eq!(e.address, "127.0.0.1:18123");
        assert_eq!(e.database, "fs");
        assert_eq!(e.user.as_deref(), Some("alice"));
        assert_eq!(e.password.as_deref(), Some("s@cret"));
        assert_eq!((e.cluster, e.shards.len()), (None, 0));
        let e = clickhouse("clickhouse://a:9001,b/fs?cluster=two");
        assert_eq!(e.address, "a:9001");
        assert_eq!(e.shards, ["a:9001", "b:8123"]);
        assert_eq!(e.cluster.as_deref(), Some("two"));
    }

    #[test]
    fn bad_store_urls_say_what_is_wrong() {
        for (text, says) in [
            ("clickhouse://host", "names no database"),
            ("clickhouse://host:99999/db", "bad port"),
            ("clickhouse:///db", "names no host"),
            ("clickhouse://host/a/b", "one database name"),
            ("postgres://host/db", "unknown store URL scheme"),
            ("dir://", "names no directory"),
            ("clickhouse://u:%zz@host/db", "bad %-escape"),
            ("clickhouse://a,b/db", "no ?cluster=NAME"),
            ("clickhouse://a/db?shards=2", "unknown option \"shards=2\""),
            ("clickhouse://a,/db?cluster=c", "names no host"),
        ] {
            let error = StoreLocation::parse(text).unwrap_err().to_string();
            assert!(error.contains(says), "{text}: {error}");
        }
    }
}
