//! The write-ahead log: every accepted upload is appended and fsynced
//! before the server answers 2xx, so a crash loses nothing acknowledged.
//!
//! The log is a directory of segments `NNNNNNNNNNNNNNNN.wal`. A record is
//! `[u32 length][u32 crc32][u32 meta length][meta JSON][body]`, little
//! endian, the CRC over everything after it. Appends from many uploads
//! share fsyncs (group commit): a writer whose bytes were covered by
//! another's fsync returns without its own. A failed write is cut off
//! again, so no partial record stays behind.
//!
//! On open, every segment is read back; a torn or corrupt record ends its
//! segment: the tail is reported, cut from the last segment, and skipped
//! elsewhere, and everything before it is kept.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::ingest::Upload;
use crate::{Error, Result};

/// Largest record accepted on replay (a corrupt length beyond it ends the segment).
const MAX_RECORD: u32 = 1 << 30;

/// Logged uploads with the segment each came from, oldest first.
pub type Replay = Vec<(u64, Upload)>;

/// What replay found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    /// Records read back.
    pub records: usize,
    /// Bytes of torn or corrupt tails skipped, per segment file.
    pub corrupt: Vec<(PathBuf, u64)>,
}

/// The write-ahead log.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    writer: Mutex<Writer>,
    synced: Mutex<u64>,
}

#[derive(Debug)]
struct Writer {
    seq: u64,
    file: Arc<File>,
    len: u64,
    /// Bytes written since open, over all segments.
    written: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016}.wal"))
}

/// Fsyncs a directory, so that files created or removed in it persist.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("fsync {}", dir.display()), e))
}

/// The segments in `dir`, oldest first.
fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| Error::io(format!("read {}", dir.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("read {}", dir.display()), e))?;
        let name = entry.file_name();
        let Some(seq) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".wal"))
            .and_then(|n| n.parse().ok())
        else {
            continue;
        };
        found.push((seq, entry.path()));
    }
    found.sort();
    Ok(found)
}

fn encode(upload: &Upload) -> Vec<u8> {
    let meta = serde_json::to_vec(upload).unwrap_or_default();
    let mut payload = Vec::with_capacity(4 + meta.len() + upload.body.len());
    payload.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    payload.extend_from_slice(&meta);
    payload.extend_from_slice(&upload.body);
    let mut record = Vec::with_capacity(8 + payload.len());
    record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    record.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    record.extend_from_slice(&payload);
    record
}

fn decode_payload(payload: &[u8]) -> Option<Upload> {
    let meta_len = u32::from_le_bytes(payload.get(..4)?.try_into().ok()?) as usize;
    let meta = payload.get(4..4 + meta_len)?;
    let mut upload: Upload = serde_json::from_slice(meta).ok()?;
    upload.body = payload[4 + meta_len..].to_vec();
    Some(upload)
}

/// Reads the records of one segment: the uploads and the length of the
/// good prefix.
fn read_segment(bytes: &[u8]) -> (Vec<Upload>, u64) {
    let mut uploads = Vec::new();
    let mut at = 0usize;
    while let Some(header) = bytes.get(at..at + 8) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len > MAX_RECORD {
            break;
        }
        let Some(payload) = bytes.get(at + 8..at + 8 + len as usize) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        let Some(upload) = decode_payload(payload) else {
            break;
        };
        uploads.push(upload);
        at += 8 + len as usize;
    }
    (uploads, at as u64)
}

impl Wal {
    /// Opens the log in `dir`, deleting segments at or below `checkpoint`
    /// (already in Parquet), and returns the uploads of the others, in
    /// order, with the segment each came from. New appends go to a fresh
    /// segment.
    pub fn open(dir: &Path, checkpoint: u64) -> Result<(Wal, Replay, ReplayReport)> {
        fs::create_dir_all(dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        let mut report = ReplayReport::default();
        let mut replay = Vec::new();
        let all = segments(dir)?;
        let last = all.last().map(|(seq, _)| *seq).unwrap_or(0);
        for (seq, path) in &all {
            if *seq <= checkpoint {
                fs::remove_file(path).map_err(|e| Error::io(format!("remove {}", path.display()), e))?;
                continue;
            }
            let mut bytes = Vec::new();
            File::open(path)
                .and_then(|mut f| f.read_to_end(&mut bytes))
                .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
            let (uploads, good) = read_segment(&bytes);
            if good < bytes.len() as u64 {
                let bad = bytes.len() as u64 - good;
                tracing::warn!(
                    segment = %path.display(),
                    good_bytes = good,
                    skipped_bytes = bad,
                    "write-ahead log segment has a torn or corrupt tail; keeping the records before it"
                );
                report.corrupt.push((path.clone(), bad));
                if *seq == last {
                    OpenOptions::new()
                        .write(true)
                        .open(path)
                        .and_then(|f| f.set_len(good).and_then(|_| f.sync_all()))
                        .map_err(|e| Error::io(format!("truncate {}", path.display()), e))?;
                }
            }
            report.records += uploads.len();
            replay.extend(uploads.into_iter().map(|u| (*seq, u)));
        }
        let seq = last.max(checkpoint) + 1;
        let file = create_segment(dir, seq)?;
        let wal = Wal {
            dir: dir.to_owned(),
            writer: Mutex::new(Writer {
                seq,
                file: Arc::new(file),
                len: 0,
                written: 0,
            }),
            synced: Mutex::new(0),
        };
        Ok((wal, replay, report))
    }

    /// Appends `upload` and returns once it is on disk (fsynced).
    pub fn append(&self, upload: &Upload) -> Result<()> {
        let record = encode(upload);
        let target = {
            let mut w = lock(&self.writer);
            let start = w.len;
            if let Err(e) = (&*w.file).write_all(&record) {
                // Cut the partial record off so the log stays whole.
                let _ = w.file.set_len(start);
                return Err(Error::io("append to the write-ahead log", e));
            }
            w.len += record.len() as u64;
            w.written += record.len() as u64;
            w.written
        };
        let mut synced = lock(&self.synced);
        if *synced >= target {
            return Ok(()); // another writer's fsync covered these bytes
        }
        let (file, upto) = {
            let w = lock(&self.writer);
            (w.file.clone(), w.written)
        };
        file.sync_data()
            .map_err(|e| Error::io("fsync the write-ahead log", e))?;
        *synced = upto;
        Ok(())
    }

    /// Starts a new segment and returns the number of the last full one:
    /// everything appended so far is in segments up to it.
    pub fn rotate(&self) -> Result<u64> {
        let mut synced = lock(&self.synced);
        let mut w = lock(&self.writer);
        w.file
            .sync_data()
            .map_err(|e| Error::io("fsync the write-ahead log", e))?;
        *synced = w.written;
        let next = w.seq + 1;
        let file = create_segment(&self.dir, next)?;
        let done = w.seq;
        w.seq = next;
        w.file = Arc::new(file);
        w.len = 0;
        Ok(done)
    }

    /// Deletes segments up to and including `seq` (their data is in Parquet).
    pub fn remove_through(&self, seq: u64) -> Result<()> {
        for (s, path) in segments(&self.dir)? {
            if s <= seq {
                fs::remove_file(&path).map_err(|e| Error::io(format!("remove {}", path.display()), e))?;
            }
        }
        sync_dir(&self.dir)
    }

    /// Bytes in the log's segments.
    pub fn size_bytes(&self) -> u64 {
        segments(&self.dir)
            .unwrap_or_default()
            .iter()
            .filter_map(|(_, p)| fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// The segment being written.
    #[cfg(test)]
    pub fn current_segment(&self) -> u64 {
        lock(&self.writer).seq
    }
}

fn create_segment(dir: &Path, seq: u64) -> Result<File> {
    let path = segment_path(dir, seq);
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| Error::io(format!("create {}", path.display()), e))?;
    sync_dir(dir)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::ingest::UploadKind;

    fn upload(n: u8) -> Upload {
        Upload {
            kind: UploadKind::Deploy,
            params: BTreeMap::from([("n".to_owned(), n.to_string())]),
            received_ms: 1000 + i64::from(n),
            key: None,
            body: vec![n; 100 + usize::from(n)],
        }
    }

    #[test]
    fn appends_survive_reopen_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, replay, _) = Wal::open(dir.path(), 0).unwrap();
        assert!(replay.is_empty());
        wal.append(&upload(1)).unwrap();
        let done = wal.rotate().unwrap();
        wal.append(&upload(2)).unwrap();
        drop(wal);
        let (_, replay, report) = Wal::open(dir.path(), 0).unwrap();
        assert_eq!(
            replay.iter().map(|(_, u)| u.clone()).collect::<Vec<_>>(),
            vec![upload(1), upload(2)]
        );
        assert_eq!(replay[0].0, done);
        assert!(report.corrupt.is_empty());
        // A checkpoint drops the segments it covers.
        let (_, replay, _) = Wal::open(dir.path(), done).unwrap();
        assert_eq!(replay.len(), 1);
        assert_eq!(replay[0].1, upload(2));
    }

    #[test]
    fn torn_and_corrupt_tails_are_cut_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _, _) = Wal::open(dir.path(), 0).unwrap();
        for n in 1..=3 {
            wal.append(&upload(n)).unwrap();
        }
        let seq = wal.current_segment();
        drop(wal);
        let path = segment_path(dir.path(), seq);
        let full = fs::metadata(&path).unwrap().len();
        // Tear the last record in half.
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(full - 50)
            .unwrap();
        let (_, replay, report) = Wal::open(dir.path(), 0).unwrap();
        assert_eq!(replay.len(), 2);
        assert_eq!(report.corrupt.len(), 1);
        assert!(
            fs::metadata(&path).unwrap().len() < full - 50,
            "the torn tail is cut off"
        );

        // Flip a byte inside the second record: the first survives.
        let mut bytes = fs::read(&path).unwrap();
        let second = bytes.len() - 20;
        bytes[second] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let (_, replay, report) = Wal::open(dir.path(), 0).unwrap();
        assert_eq!(replay.len(), 1);
        assert_eq!(replay[0].1, upload(1));
        assert_eq!(report.corrupt.len(), 1);
    }

    #[test]
    fn concurrent_appends_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _, _) = Wal::open(dir.path(), 0).unwrap();
        let wal = Arc::new(wal);
        let threads: Vec<_> = (0..8u8)
            .map(|t| {
                let wal = wal.clone();
                std::thread::spawn(move || {
                    for i in 0..20u8 {
                        wal.append(&upload(t * 20 + i)).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(wal);
        let (_, replay, report) = Wal::open(dir.path(), 0).unwrap();
        assert_eq!(replay.len(), 160);
        assert!(report.corrupt.is_empty());
    }
}
