//! Row groups decoded on every core while the query's thread sums them:
//! decoding (zstd, dictionaries, strings) is most of a scan, and summing
//! into one map needs one thread.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;

use super::format::{self, SampleColumns, SampleGroup, TableFile};
use super::tables::Table;
use crate::Result;

/// Decodes every listed row group of `files` (path, row groups) on up
/// to one thread per core and calls `visit` with each, on the calling
/// thread, in no particular order. Each thread opens the files itself: a
/// file handle's offset is shared by its clones. The first error stops
/// the scan and is returned.
pub fn decode_then_visit(
    files: &[(PathBuf, Vec<usize>)],
    columns: SampleColumns,
    visit: &mut dyn FnMut(&SampleGroup),
) -> Result<()> {
    let tasks: Vec<(&PathBuf, usize)> = files
        .iter()
        .flat_map(|(path, groups)| groups.iter().map(move |&g| (path, g)))
        .collect();
    let workers = thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(tasks.len());
    if workers <= 1 {
        let mut open = HashMap::new();
        for (path, index) in tasks {
            visit(&read(&mut open, path, index, columns)?);
        }
        return Ok(());
    }
    let next = AtomicUsize::new(0);
    // Two decoded groups in flight per worker bound the memory a scan holds.
    let (sender, receiver) = mpsc::sync_channel::<Result<SampleGroup>>(2 * workers);
    thread::scope(|scope| {
        for _ in 0..workers {
            let (sender, tasks, next) = (sender.clone(), &tasks, &next);
            scope.spawn(move || {
                let mut open = HashMap::new();
                loop {
                    let Some(&(path, index)) = tasks.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        return;
                    };
                    if sender.send(read(&mut open, path, index, columns)).is_err() {
                        return; // the scan stopped
                    }
                }
            });
        }
        drop(sender);
        // Owned here, so that an early return drops it and wakes the
        // workers blocked on a full channel.
        let receiver = receiver;
        for decoded in receiver.iter() {
            match decoded {
                Ok(group) => visit(&group),
                Err(e) => {
                    next.store(tasks.len(), Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        Ok(())
    })
}

/// Reads one row group, opening its file once per thread.
fn read<'a>(
    open: &mut HashMap<&'a PathBuf, TableFile>,
    path: &'a PathBuf,
    index: usize,
    columns: SampleColumns,
) -> Result<SampleGroup> {
    let file = match open.entry(path) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => e.insert(TableFile::open(path, Table::Samples)?),
    };
    format::read_sample_group(file, index, columns)
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use super::*;
    use crate::model::{SampleKey, Unit, Weight};

    /// Several files of several row groups, summed through the threads,
    /// give the sums of their rows.
    #[test]
    fn every_row_group_of_every_file_is_visited_once() {
        let dir = tempfile::tempdir().unwrap();
        let rows_per_file = format::ROW_GROUP_ROWS * 3 + 17;
        let mut files = Vec::new();
        let mut expected = (0i64, 0usize);
        for f in 0..3i64 {
            let keys: Vec<SampleKey> = (0..rows_per_file as i64)
                .map(|i| SampleKey {
                    time_ms: i,
                    deploy: format!("v{f}").into(),
                    host: "h".into(),
                    endpoint: "/".into(),
                    labels: "{}".into(),
                    stack_id: (i % 1000) as u64,
                    unit: Unit::CpuNs,
                })
                .collect();
            let mut rows: Vec<(&SampleKey, Weight)> = keys
                .iter()
                .map(|k| {
                    (
                        k,
                        Weight {
                            weight: k.time_ms + f,
                            count: 1,
                        },
                    )
                })
                .collect();
            expected.0 += rows.iter().map(|(_, w)| w.weight).sum::<i64>();
            expected.1 += rows.len();
            let path = dir.path().join(format!("{f}.parquet"));
            format::write_samples(&mut File::create(&path).unwrap(), &path, &mut rows).unwrap();
            let (_, groups) = format::sample_groups(&path, format::TimeRange::default(), None).unwrap();
            assert_eq!(groups.len(), 4);
            files.push((path, groups));
        }
        let (mut weight, mut rows, mut groups) = (0i64, 0usize, 0usize);
        decode_then_visit(&files, SampleColumns::ALL, &mut |group| {
            groups += 1;
            rows += group.len();
            weight += group.weight.iter().sum::<i64>();
        })
        .unwrap();
        assert_eq!((groups, rows, weight), (12, expected.1, expected.0));
    }

    #[test]
    fn a_file_that_went_missing_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<(PathBuf, Vec<usize>)> = (0..8)
            .map(|i| (dir.path().join(format!("gone-{i}.parquet")), vec![0, 1, 2]))
            .collect();
        let err = decode_then_visit(&files, SampleColumns::ALL, &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("gone-"), "{err}");
    }
}
