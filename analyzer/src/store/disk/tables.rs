//! The Parquet tables on disk: where each file lives, how it is written
//! (temporary name, fsync, rename, fsync of the directory) and how the
//! set of files is loaded and checked on start.
//!
//! ```text
//! DATA/tables/samples/SERVICE/YYYY-MM-DD/part-FROM-TO.parquet
//! DATA/tables/requests/SERVICE/YYYY-MM-DD/part-FROM-TO.parquet
//! DATA/tables/stacks/SERVICE/part-FROM-TO.parquet
//! DATA/tables/deploys/SERVICE/part-FROM-TO.parquet
//! DATA/tables/facts/SERVICE/part-FROM-TO.parquet
//! ```
//!
//! `FROM-TO` is the range of write-ahead-log segments whose rows the file
//! holds. It makes flushes and compactions idempotent across crashes: a
//! file past the checkpoint is an unfinished flush (its rows are still in
//! the log), and a file whose range lies inside another file's range of
//! the same partition was already compacted into it. `SERVICE` is the
//! service name with every byte outside `[A-Za-z0-9_.-]` percent-encoded.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use super::format;
use super::wal::sync_dir;
pub use crate::store::days::day_of;
use crate::store::days::{day_name, parse_day};
use crate::{Error, Result};

/// One of the five tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// Sample rows, partitioned by day.
    Samples,
    /// Request rows, partitioned by day.
    Requests,
    /// Stack nodes.
    Stacks,
    /// Deploy events.
    Deploys,
    /// Facts about deploys (commits, source spans).
    Facts,
}

impl Table {
    const ALL: [Table; 5] = [
        Table::Samples,
        Table::Requests,
        Table::Stacks,
        Table::Deploys,
        Table::Facts,
    ];

    fn dir_name(self) -> &'static str {
        match self {
            Table::Samples => "samples",
            Table::Requests => "requests",
            Table::Stacks => "stacks",
            Table::Deploys => "deploys",
            Table::Facts => "facts",
        }
    }

    fn by_day(self) -> bool {
        matches!(self, Table::Samples | Table::Requests)
    }
}

/// Each service's files.
pub type FilesByService = BTreeMap<String, Vec<PartFile>>;

/// One Parquet file of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartFile {
    /// Its table.
    pub table: Table,
    /// Days since the Unix epoch, for day-partitioned tables.
    pub day: Option<i64>,
    /// First log segment it covers.
    pub from: u64,
    /// Last log segment it covers.
    pub to: u64,
    /// Where it is.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
}

/// Percent-encodes a service name into a directory name.
pub fn encode_service(service: &str) -> String {
    let mut out = String::with_capacity(service.len());
    for b in service.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-') || (b == b'.' && !out.is_empty()) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reverses [`encode_service`].
pub fn decode_service(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn partition_dir(root: &Path, table: Table, service: &str, day: Option<i64>) -> PathBuf {
    let dir = root.join(table.dir_name()).join(encode_service(service));
    match day {
        Some(day) => dir.join(day_name(day)),
        None => dir,
    }
}

fn parse_file_name(name: &str) -> Option<(u64, u64)> {
    let range = name.strip_prefix("part-")?.strip_suffix(".parquet")?;
    let (from, to) = range.split_once('-')?;
    Some((from.parse().ok()?, to.parse().ok()?))
}

/// Writes a new file of `table` for `service`, durably: `contents`
/// writes the Parquet data to the (temporary) file it is given.
pub fn write(
    root: &Path,
    table: Table,
    service: &str,
    day: Option<i64>,
    (from, to): (u64, u64),
    contents: impl FnOnce(&mut File, &Path) -> Result<()>,
) -> Result<PartFile> {
    let dir = partition_dir(root, table, service, day);
    fs::create_dir_all(&dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    let path = dir.join(format!("part-{from:016}-{to:016}.parquet"));
    let tmp = dir.join(format!(".part-{from:016}-{to:016}.parquet.tmp"));
    let result = (|| {
        let mut file = File::create(&tmp).map_err(|e| Error::io(format!("create {}", tmp.display()), e))?;
        contents(&mut file, &tmp)?;
        file.sync_all()
            .map_err(|e| Error::io(format!("fsync {}", tmp.display()), e))?;
        fs::rename(&tmp, &path).map_err(|e| Error::io(format!("rename {}", path.display()), e))?;
        sync_dir(&dir)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    let bytes = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    Ok(PartFile {
        table,
        day,
        from,
        to,
        path,
        bytes,
    })
}

/// The files of every service, after the start-up rules: files past
/// `checkpoint` and files already compacted into another are deleted;
/// files whose footer does not read are moved to `quarantine` and
/// reported.
pub fn load(root: &Path, checkpoint: u64, quarantine: &Path) -> Result<(FilesByService, Vec<PathBuf>)> {
    let mut by_service: BTreeMap<String, Vec<PartFile>> = BTreeMap::new();
    let mut corrupt = Vec::new();
    for table in Table::ALL {
        let table_dir = root.join(table.dir_name());
        for service_dir in read_dir(&table_dir)? {
            let Some(service) = service_dir
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(decode_service)
            else {
                continue;
            };
            let partitions: Vec<(Option<i64>, PathBuf)> = if table.by_day() {
                read_dir(&service_dir)?
                    .into_iter()
                    .filter_map(|p| {
                        let day = parse_day(p.file_name()?.to_str()?)?;
                        Some((Some(day), p))
                    })
                    .collect()
            } else {
                vec![(None, service_dir.clone())]
            };
            for (day, dir) in partitions {
                let mut files = Vec::new();
                for path in read_dir(&dir)? {
                    let Some((from, to)) = path
                        .file_name()
                        .and_then(|n| n.to_str())
                        .and_then(parse_file_name)
                    else {
                        continue;
                    };
                    files.push((from, to, path));
                }
                let ranges: Vec<(u64, u64)> = files.iter().map(|(f, t, _)| (*f, *t)).collect();
                for (from, to, path) in files {
                    let unfinished = to > checkpoint;
                    let compacted = ranges
                        .iter()
                        .any(|&(f, t)| f <= from && to <= t && (f, t) != (from, to));
                    if unfinished || compacted {
                        tracing::info!(file = %path.display(), unfinished, compacted, "removing a leftover Parquet file");
                        fs::remove_file(&path)
                            .map_err(|e| Error::io(format!("remove {}", path.display()), e))?;
                        continue;
                    }
                    if let Err(e) = format::check(&path, table) {
                        tracing::error!(file = %path.display(), error = %e, "corrupt Parquet file; moved to quarantine and skipped");
                        fs::create_dir_all(quarantine).map_err(|e| Error::io("create quarantine", e))?;
                        let target = quarantine.join(format!(
                            "{}-{}-{}",
                            table.dir_name(),
                            encode_service(&service),
                            path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
                        ));
                        fs::rename(&path, &target).map_err(|e| Error::io("quarantine a corrupt file", e))?;
                        corrupt.push(path);
                        continue;
                    }
                    let bytes = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                    by_service.entry(service.clone()).or_default().push(PartFile {
                        table,
                        day,
                        from,
                        to,
                        path,
                        bytes,
                    });
                }
            }
        }
    }
    Ok((by_service, corrupt))
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    match fs::read_dir(dir) {
        Ok(entries) => {
            let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            Ok(paths)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io(format!("read {}", dir.display()), e)),
    }
}

/// Removes a partition directory if it is empty.
pub fn remove_if_empty(dir: &Path) {
    let _ = fs::remove_dir(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_round_trip() {
        for name in ["shop", "a/b", "..", ".hidden", "ünï code", "%41", "x y"] {
            let encoded = encode_service(name);
            assert!(
                !encoded.contains('/') && encoded != "." && encoded != "..",
                "{encoded}"
            );
            assert_eq!(decode_service(&encoded).as_deref(), Some(name));
        }
    }
}
