//! Group commit: uploads arriving at one node while an insert is under
//! way, or within `interval` of the last one's start, wait and go to
//! ClickHouse together, one `INSERT` per table, so that each of a node's
//! two inserting threads inserts at most once per `interval` however many
//! agents send (ClickHouse wants few large inserts: each makes a part to
//! merge). Every upload is answered only after its rows were accepted, or
//! with the error that stopped them (a batch fails or succeeds whole).
//!
//! Exactly once: an upload carrying an `Idempotency-Key` stores the
//! key's hash in each of its rows (`upload`, the last column of the
//! tables' keys), so the rows and the mark that they arrived are written
//! by the same atomic insert. Before inserting, the writer asks which of
//! the batch's keys are already stored and leaves those uploads out: an
//! agent that sends again after losing an answer (the node was killed,
//! ClickHouse answered too late) does not count its samples twice.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::client::{quote, Client};
use super::rows::{self, Lines, Rows};
use crate::store::days::{day_name, day_of};
use crate::{Error, Result};

/// A batch stops growing at this many rows of one table: half of
/// ClickHouse's `max_insert_block_size` (1,048,576), below which an
/// insert is one block, so atomic.
const MAX_BATCH_ROWS: usize = 500_000;
/// Inserting threads per node: ClickHouse parses and sorts an insert on
/// one core, so one thread would leave the second idle.
const WRITERS: usize = 2;
/// A batch also stops growing at this many bytes of rows.
const MAX_BATCH_BYTES: usize = 256 << 20;

/// One upload's rows, waiting for the next insert.
pub struct Job {
    /// Its service.
    pub service: String,
    /// Hash of its `Idempotency-Key` (0: none, kept every time it comes).
    pub upload: u64,
    /// Where its samples or requests lie.
    pub span: Option<rows::Span>,
    /// Its rows.
    pub lines: Lines,
}

impl Job {
    /// The table its key is looked up in (none for a deploy event, which
    /// is idempotent by itself).
    fn keyed_table(&self) -> Option<&'static str> {
        if self.upload == 0 || self.span.is_none() {
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

/// The queues in front of one node's inserting threads.
#[derive(Debug)]
pub struct Writer {
    queues: Vec<Mutex<Sender<(Job, Reply)>>>,
    /// Turns of jobs without a key.
    next: AtomicUsize,
}

impl Writer {
    /// Starts the inserting threads.
    pub fn start(client: Arc<Client>, interval: Duration) -> Result<Writer> {
        let mut queues = Vec::new();
        for n in 0..WRITERS {
            let (queue, jobs) = mpsc::channel();
            let client = client.clone();
            thread::Builder::new()
                .name(format!("clickhouse-writer-{n}"))
                .spawn(move || run(&client, &jobs, interval))
                .map_err(|e| Error::Backend(format!("start a ClickHouse writer thread: {e}")))?;
            queues.push(Mutex::new(queue));
        }
        Ok(Writer {
            queues,
            next: AtomicUsize::new(0),
        })
    }

    /// Queues `job` and waits until its batch was inserted (or refused).
    /// Every attempt of one upload goes to the same thread, which looks
    /// its key up only after inserting the attempts before it.
    pub fn write(&self, job: Job) -> Result<Outcome> {
        let (reply, answer) = mpsc::sync_channel(1);
        let turn = match job.upload {
            0 => self.next.fetch_add(1, Ordering::Relaxed),
            key => (key % WRITERS as u64) as usize,
        };
        self.queues[turn % WRITERS]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send((job, reply))
            .map_err(|_| Error::Backend("the ClickHouse writer thread is gone".into()))?;
        answer
            .recv()
            .map_err(|_| Error::Backend("the ClickHouse writer thread is gone".into()))?
    }
}

/// Takes the next batch off the queue: the first job, then whatever comes
/// until `due` (or the batch is full). None when the store is gone.
fn next_batch(jobs: &Receiver<(Job, Reply)>, due: Option<Instant>) -> Option<Vec<(Job, Reply)>> {
    let first = jobs.recv().ok()?;
    let due = due.unwrap_or_else(Instant::now);
    let (mut bytes, mut rows) = (first.0.lines.bytes(), first.0.lines.rows());
    let mut batch = vec![first];
    while bytes < MAX_BATCH_BYTES && rows < MAX_BATCH_ROWS {
        let wait = due.saturating_duration_since(Instant::now());
        let next = if wait.is_zero() {
            jobs.try_recv().map_err(|_| RecvTimeoutError::Timeout)
        } else {
            jobs.recv_timeout(wait)
        };
        match next {
            Ok(job) => {
                bytes += job.0.lines.bytes();
                rows += job.0.lines.rows();
                batch.push(job);
            }
            Err(_) => break,
        }
    }
    Some(batch)
}

/// One inserting thread, with a queue of its own: ClickHouse gets up to
/// two inserts at once per node, each thread at most one per `interval`.
fn run(client: &Client, jobs: &Receiver<(Job, Reply)>, interval: Duration) {
    let mut last_insert: Option<Instant> = None;
    while let Some(batch) = next_batch(jobs, last_insert.map(|at| at + interval)) {
        let (batch, replies): (Vec<Job>, Vec<Reply>) = batch.into_iter().unzip();
        // The interval runs from an insert's start: an insert that took
        // longer than it is followed at once by the next.
        last_insert = Some(Instant::now());
        let outcomes = commit(client, &batch);
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

/// The (service, key) pairs of `jobs` already in ClickHouse: looked up
/// where their rows would be (service, deploy and time lead the tables'
/// sort order), so the lookup reads a few granules, not the whole day.
fn stored_keys(client: &Client, jobs: &[&Job], table: &str) -> Result<BTreeSet<(String, u64)>> {
    let mut found = BTreeSet::new();
    let places: Vec<String> = jobs
        .iter()
        .filter_map(|job| {
            let span = job.span.as_ref()?;
            let deploys: Vec<String> = span.deploys.iter().map(|d| quote(d)).collect();
            Some(format!(
                "(service = {} AND deploy IN ({}) AND day >= toDate({}) AND day <= toDate({}) \
                 AND time_ms >= {} AND time_ms <= {} AND upload = {})",
                quote(&job.service),
                deploys.join(", "),
                quote(&day_name(day_of(span.from_ms))),
                quote(&day_name(day_of(span.until_ms))),
                span.from_ms,
                span.until_ms,
                job.upload
            ))
        })
        .collect();
    if places.is_empty() {
        return Ok(found);
    }
    let sql = format!(
        "SELECT DISTINCT service, upload FROM {table} WHERE {}",
        places.join(" OR ")
    );
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
    let mut tables: [Rows; 5] = Default::default();
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
            .zip([&l.stacks, &l.samples, &l.requests, &l.deploys, &l.facts])
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
        ("facts", rows::FACT_COLUMNS),
    ];
    for ((table, columns), rows) in columns.iter().zip(&tables) {
        client.insert_binary(table, columns, rows)?;
    }
    Ok(outcomes)
}
