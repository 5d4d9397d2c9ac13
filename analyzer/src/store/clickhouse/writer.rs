//! Group commit: uploads arriving at one node while an insert is under
//! way, or within `interval` of the last one, wait and go to ClickHouse
//! together, one `INSERT` per table, so that a node inserts about once
//! per `interval` however many agents send (ClickHouse wants few large
//! inserts: each makes a part to merge). Every upload is answered only
//! after its rows were accepted, or with the error that stopped them.
//!
//! Exactly once: an upload carrying an `Idempotency-Key` stores the
//! key's hash in each of its rows (`upload`, the last column of the
//! tables' keys), so the rows and the mark that they arrived are written
//! by the same atomic insert. Before inserting, the writer asks which of
//! the batch's keys are already stored and leaves those uploads out: an
//! agent that sends again after losing an answer (the node was killed,
//! ClickHouse answered too late) does not count its samples twice.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::client::{quote, Client};
use super::rows::{self, Lines, Rows};
use crate::{Error, Result};

/// A batch stops growing at this many bytes of rows.
const MAX_BATCH_BYTES: usize = 64 << 20;

/// One upload's rows, waiting for the next insert.
pub struct Job {
    /// Its service.
    pub service: String,
    /// Hash of its `Idempotency-Key` (0: none, kept every time it comes).
    pub upload: u64,
    /// First and last day its samples or requests fall on (`YYYY-MM-DD`).
    pub days: Option<(String, String)>,
    /// Its rows.
    pub lines: Lines,
}

impl Job {
    fn bytes(&self) -> usize {
        self.lines.bytes()
    }

    /// The table its key is looked up in (none for a deploy event, which
    /// is idempotent by itself).
    fn keyed_table(&self) -> Option<&'static str> {
        if self.upload == 0 || self.days.is_none() {
            None
        } else if !self.lines.samples.is_empty() {
            Some("samples")
        } else if !self.lines.requests.is_empty() {
            Some("requests")
        } else {
            None
        }
    }
}

/// What became of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its rows were inserted.
    Inserted,
    /// Its key was already stored: nothing inserted again.
    Duplicate,
}

type Reply = SyncSender<Result<Outcome>>;

/// The queue in front of one node's inserting thread.
#[derive(Debug)]
pub struct Writer {
    queue: Mutex<Sender<(Job, Reply)>>,
}

impl Writer {
    /// Starts the inserting thread.
    pub fn start(client: Arc<Client>, interval: Duration) -> Result<Writer> {
        let (queue, jobs) = mpsc::channel();
        thread::Builder::new()
            .name("clickhouse-writer".into())
            .spawn(move || run(&client, &jobs, interval))
            .map_err(|e| Error::Backend(format!("start the ClickHouse writer thread: {e}")))?;
        Ok(Writer {
            queue: Mutex::new(queue),
        })
    }

    /// Queues `job` and waits until its batch was inserted (or refused).
    pub fn write(&self, job: Job) -> Result<Outcome> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send((job, reply))
            .map_err(|_| Error::Backend("the ClickHouse writer thread is gone".into()))?;
        answer
            .recv()
            .map_err(|_| Error::Backend("the ClickHouse writer thread is gone".into()))?
    }
}

fn run(client: &Client, jobs: &Receiver<(Job, Reply)>, interval: Duration) {
    let mut last_insert: Option<Instant> = None;
    while let Ok(first) = jobs.recv() {
        let mut bytes = first.0.bytes();
        let mut batch = vec![first];
        let due = last_insert.map_or_else(Instant::now, |at| at + interval);
        while bytes < MAX_BATCH_BYTES {
            let wait = due.saturating_duration_since(Instant::now());
            let next = if wait.is_zero() {
                jobs.try_recv().map_err(|_| RecvTimeoutError::Timeout)
            } else {
                jobs.recv_timeout(wait)
            };
            match next {
                Ok(job) => {
                    bytes += job.0.bytes();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        let (batch, replies): (Vec<Job>, Vec<Reply>) = batch.into_iter().unzip();
        let outcomes = commit(client, &batch);
        last_insert = Some(Instant::now());
        for (n, reply) in replies.into_iter().enumerate() {
            let outcome = match &outcomes {
                Ok(each) => Ok(each[n]),
                Err(e) => Err(same_error(e)),
            };
            let _ = reply.send(outcome);
        }
    }
}

/// The same error again, for each upload of a failed batch.
fn same_error(e: &Error) -> Error {
    match e {
        Error::Unavailable(message) => Error::Unavailable(message.clone()),
        other => Error::Backend(other.to_string()),
    }
}

#[derive(Deserialize)]
struct Stored {
    service: String,
    upload: u64,
}

/// The (service, key) pairs of `jobs` already in ClickHouse.
fn stored_keys(client: &Client, jobs: &[&Job], table: &str) -> Result<BTreeSet<(String, u64)>> {
    let mut found = BTreeSet::new();
    if jobs.is_empty() {
        return Ok(found);
    }
    let services: BTreeSet<&str> = jobs.iter().map(|j| j.service.as_str()).collect();
    let keys: BTreeSet<u64> = jobs.iter().map(|j| j.upload).collect();
    let first = jobs.iter().filter_map(|j| j.days.as_ref().map(|d| &d.0)).min();
    let last = jobs.iter().filter_map(|j| j.days.as_ref().map(|d| &d.1)).max();
    let (Some(first), Some(last)) = (first, last) else {
        return Ok(found);
    };
    let mut sql = format!(
        "SELECT DISTINCT service, upload FROM {table} WHERE day >= toDate({}) AND day <= toDate({}) AND service IN (",
        quote(first),
        quote(last)
    );
    let services: Vec<String> = services.iter().map(|s| quote(s)).collect();
    sql.push_str(&services.join(", "));
    sql.push_str(") AND upload IN (");
    for (n, key) in keys.iter().enumerate() {
        let _ = write!(sql, "{}{key}", if n == 0 { "" } else { "," });
    }
    sql.push(')');
    for row in client.rows::<Stored>(&sql)? {
        found.insert((row.service, row.upload));
    }
    Ok(found)
}

/// Inserts the jobs not stored before; says which were.
fn commit(client: &Client, jobs: &[Job]) -> Result<Vec<Outcome>> {
    let mut outcomes = vec![Outcome::Inserted; jobs.len()];
    let mut stored: BTreeSet<(String, u64)> = BTreeSet::new();
    for table in ["samples", "requests"] {
        let keyed: Vec<&Job> = jobs.iter().filter(|j| j.keyed_table() == Some(table)).collect();
        stored.extend(stored_keys(client, &keyed, table)?);
    }
    // Twice in one batch (an agent gave up on an answer and sent again
    // while the first attempt was waiting here): kept once.
    let mut first_of: HashMap<(&str, u64), usize> = HashMap::new();
    let mut tables: [Rows; 4] = Default::default();
    for (n, job) in jobs.iter().enumerate() {
        if job.upload != 0 {
            let key = (job.service.as_str(), job.upload);
            if stored.contains(&(job.service.clone(), job.upload)) || first_of.insert(key, n).is_some() {
                outcomes[n] = Outcome::Duplicate;
                continue;
            }
        }
        let l = &job.lines;
        for (out, rows) in tables
            .iter_mut()
            .zip([&l.stacks, &l.samples, &l.requests, &l.deploys])
        {
            out.extend(rows);
        }
    }
    // Stacks before the samples that use them: no stored sample lacks its stack.
    let columns = [
        ("stacks", rows::STACK_COLUMNS),
        ("samples", rows::SAMPLE_COLUMNS),
        ("requests", rows::REQUEST_COLUMNS),
        ("deploys", rows::DEPLOY_COLUMNS),
    ];
    for ((table, columns), rows) in columns.iter().zip(&tables) {
        client.insert_binary(table, columns, rows)?;
    }
    Ok(outcomes)
}
