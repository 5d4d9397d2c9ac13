//! ClickHouse's HTTP interface: statements in a POST body, rows in and
//! out as `JSONEachRow`, credentials in the `X-ClickHouse-User` /
//! `X-ClickHouse-Key` headers (never in the URL), errors sorted into
//! "try again later" ([`Error::Unavailable`], HTTP 503 to uploaders) and
//! "ClickHouse refused" ([`Error::Backend`], with its message).
//!
//! Works with ClickHouse 18.16 (Debian's package) and current releases:
//! no query parameters (18.16 has none), so string literals are quoted
//! here by [`quote`].

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::{Error, Result};

/// Largest answer read (a day's per-stack sums stay far below it).
const MAX_ANSWER: u64 = 1 << 30;

/// ClickHouse error codes that mean "busy or starting; try again".
const TRANSIENT_CODES: &[u32] = &[
    159, // TIMEOUT_EXCEEDED
    202, // TOO_MANY_SIMULTANEOUS_QUERIES
    209, // SOCKET_TIMEOUT
    210, // NETWORK_ERROR
    241, // MEMORY_LIMIT_EXCEEDED
    252, // TOO_MANY_PARTS
    279, // ALL_CONNECTION_TRIES_FAILED
];

/// Where and as whom to talk to ClickHouse.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port` of the HTTP interface statements are sent to.
    pub address: String,
    /// The cluster (of the servers' `remote_servers`) the tables are
    /// spread over, if any.
    pub cluster: Option<String>,
    /// `host:port` of each shard's HTTP interface, where the schema is
    /// made (empty: `address` alone).
    pub shards: Vec<String>,
    /// The database.
    pub database: String,
    /// User, if not ClickHouse's `default`.
    pub user: Option<String>,
    /// Password.
    pub password: Option<String>,
}

/// A connection pool to one ClickHouse server (or a load balancer in
/// front of several).
#[derive(Debug)]
pub struct Client {
    agent: ureq::Agent,
    endpoint: Endpoint,
    /// Every statement sent is appended here, one per line, when set (the
    /// test suite replays them on a current ClickHouse engine).
    sql_log: Option<Mutex<std::fs::File>>,
}

/// `text` as a ClickHouse string literal.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `name` checked as a database or table identifier (letters, digits, `_`).
pub fn identifier(name: &str) -> Result<&str> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(name)
    } else {
        Err(Error::Config(format!(
            "ClickHouse database name {name:?}: use letters, digits and `_`, not starting with a digit"
        )))
    }
}

/// ClickHouse's error code in its message (`Code: 81, e.displayText() = …`).
fn error_code(message: &str) -> Option<u32> {
    let rest = message.trim_start().strip_prefix("Code: ")?;
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// The first words of a statement, for error messages.
fn gist(sql: &str) -> String {
    let words: Vec<&str> = sql.split_whitespace().take(4).collect();
    words.join(" ")
}

impl Client {
    /// A client; nothing is sent until the first statement.
    pub fn new(endpoint: Endpoint, timeout: Duration, sql_log: Option<PathBuf>) -> Result<Client> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .timeout_connect(Some(timeout.min(Duration::from_secs(5))))
            .http_status_as_error(false)
            .build()
            .into();
        let sql_log = match sql_log {
            Some(path) => Some(Mutex::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| Error::io(format!("open {}", path.display()), e))?,
            )),
            None => None,
        };
        Ok(Client {
            agent,
            endpoint,
            sql_log,
        })
    }

    /// The server and database, for messages.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The database name (checked).
    pub fn database(&self) -> &str {
        &self.endpoint.database
    }

    fn log(&self, sql: &str) {
        if let Some(file) = &self.sql_log {
            let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
            // One write a line: clients of parallel tests share the file.
            let line = format!("{}\n", sql.replace('\n', " "));
            let _ = file.write_all(line.as_bytes());
        }
    }

    /// Sends `query` (in the URL) with `body`, in `database` unless none;
    /// returns the answer's text.
    fn send(&self, query: Option<&str>, body: &[u8], database: bool) -> Result<String> {
        let mut url = format!(
            "http://{}/?output_format_json_quote_64bit_integers=0",
            self.endpoint.address
        );
        let mut params = form_urlencoded::Serializer::new(String::new());
        if database {
            params.append_pair("database", &self.endpoint.database);
        }
        if self.endpoint.cluster.is_some() {
            // An insert is acknowledged once the shard wrote it, not when
            // queued on the server that received it.
            params.append_pair("insert_distributed_sync", "1");
        }
        if let Some(query) = query {
            params.append_pair("query", query);
        }
        let params = params.finish();
        if !params.is_empty() {
            url.push('&');
            url.push_str(&params);
        }
        let mut request = self.agent.post(&url);
        if let Some(user) = &self.endpoint.user {
            request = request.header("X-ClickHouse-User", user);
        }
        if let Some(password) = &self.endpoint.password {
            request = request.header("X-ClickHouse-Key", password);
        }
        let what = gist(query.unwrap_or_else(|| std::str::from_utf8(body).unwrap_or("")));
        let unreachable = |e: &dyn std::fmt::Display| {
            Error::Unavailable(format!(
                "ClickHouse at {} did not answer `{what}`: {e}",
                self.endpoint.address
            ))
        };
        let response = request.send(body).map_err(|e| unreachable(&e))?;
        let status = response.status().as_u16();
        let mut text = String::new();
        response
            .into_body()
            .into_reader()
            .take(MAX_ANSWER)
            .read_to_string(&mut text)
            .map_err(|e| unreachable(&e))?;
        if status == 200 {
            return Ok(text);
        }
        let message = text.trim().to_owned();
        match error_code(&message) {
            Some(code) if TRANSIENT_CODES.contains(&code) => Err(Error::Unavailable(format!(
                "ClickHouse at {} is busy (`{what}`): {message}",
                self.endpoint.address
            ))),
            _ if status == 503 => Err(Error::Unavailable(format!(
                "ClickHouse at {} answered 503 to `{what}`: {message}",
                self.endpoint.address
            ))),
            _ => Err(Error::Backend(format!(
                "ClickHouse at {} refused `{what}`: {message}",
                self.endpoint.address
            ))),
        }
    }

    /// Runs a statement that returns nothing (DDL, ALTER), in the database.
    pub fn execute(&self, sql: &str) -> Result<()> {
        self.log(sql);
        self.send(None, sql.as_bytes(), true).map(drop)
    }

    /// Runs a statement outside any database (checks, `CREATE DATABASE`).
    pub fn execute_bare(&self, sql: &str) -> Result<String> {
        self.log(sql);
        self.send(None, sql.as_bytes(), false)
    }

    /// Runs a `SELECT` and decodes its rows; `sql` must not say `FORMAT`.
    pub fn rows<T: DeserializeOwned>(&self, sql: &str) -> Result<Vec<T>> {
        let sql = format!("{sql} FORMAT JSONEachRow");
        self.log(&sql);
        let text = self.send(None, sql.as_bytes(), true)?;
        text.lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                serde_json::from_str(line).map_err(|e| {
                    Error::Backend(format!(
                        "unexpected row from ClickHouse for `{}`: {e}: {line}",
                        gist(&sql)
                    ))
                })
            })
            .collect()
    }

    /// Inserts `rows` (one JSON object a line) into `table`; nothing is
    /// sent when there are none.
    pub fn insert(&self, table: &str, rows: &[u8]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let query = format!("INSERT INTO {table} FORMAT JSONEachRow");
        if self.sql_log.is_some() {
            // The first row inline, so the log replays as it is.
            let first = rows.split(|&b| b == b'\n').next().unwrap_or_default();
            self.log(&format!("{query} {}", String::from_utf8_lossy(first)));
        }
        self.send(Some(&query), rows, true).map(drop)
    }

    /// Inserts `rows` (`RowBinary`, in the order of `columns`) into
    /// `table`; nothing is sent when there are none. The SQL log shows the
    /// statement with the first row as `JSONEachRow`, so that it replays.
    pub fn insert_binary(&self, table: &str, columns: &str, rows: &super::rows::Rows) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        if let (Some(_), Some(first)) = (&self.sql_log, &rows.first) {
            self.log(&format!(
                "INSERT INTO {table} ({columns}) FORMAT JSONEachRow {first}"
            ));
        }
        let query = format!("INSERT INTO {table} ({columns}) FORMAT RowBinary");
        self.send(Some(&query), &rows.data, true).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_quoted_and_escaped() {
        assert_eq!(quote("plain"), "'plain'");
        assert_eq!(quote("it's"), "'it\\'s'");
        assert_eq!(quote("a\\b"), "'a\\\\b'");
        assert_eq!(quote("x\ny\tz\0"), "'x\\ny\\tz\\0'");
    }

    #[test]
    fn identifiers_are_letters_digits_and_underscores() {
        assert_eq!(identifier("flameshift_1").unwrap(), "flameshift_1");
        for bad in ["", "1st", "a-b", "a b", "a;DROP", "ä"] {
            assert!(identifier(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn error_codes_are_read_from_messages() {
        let message = "Code: 81, e.displayText() = DB::Exception: Database nope doesn't exist";
        assert_eq!(error_code(message), Some(81));
        assert_eq!(error_code("Code: 252. DB::Exception: Too many parts"), Some(252));
        assert_eq!(error_code("something else"), None);
    }
}
