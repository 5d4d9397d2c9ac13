//! The store across restarts: replay of the log, Parquet after flushes
//! and compactions, leftovers of interrupted flushes, corrupt files,
//! retention.

use std::fs;

use flameshift_analyzer::ingest::{Upload, UploadKind};
use flameshift_analyzer::query;
use flameshift_analyzer::store::{Selection, Store};

use super::*;

fn upload(service: &str, deploy: &str, leaf: &str, ns: i64, time_ms: i64) -> Upload {
    Upload {
        kind: UploadKind::Profile,
        params: [
            ("service", service),
            ("deploy", deploy),
            ("time_ms", &time_ms.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        received_ms: now_ms(),
        key: None,
        body: pprof(&[S {
            stack: &["main", leaf],
            labels: &[],
            count: 1,
            ns,
        }]),
    }
}

fn total(store: &dyn Store, service: &str) -> (i64, i64) {
    let sel = Selection {
        service: service.to_owned(),
        ..Selection::default()
    };
    let top = query::top_functions(store, &sel, query::TopOrder::SelfCost, 100).unwrap();
    (top.samples, top.total)
}

fn parquet_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn open(dir: &Path) -> DiskStore {
    let mut config = StoreConfig::new(dir);
    config.compact_at_files = 3;
    DiskStore::open(config).unwrap()
}

#[test]
fn replay_flush_compaction_and_leftovers_keep_totals_exact() {
    let dir = tempfile::tempdir().unwrap();
    let now = now_ms();
    {
        let store = open(dir.path());
        store.ingest(upload("a", "v1", "x", 100, now)).unwrap();
        store.ingest(upload("b", "v1", "y", 5, now)).unwrap();
    } // dropped without a flush: only the log has it
    let store = open(dir.path());
    assert_eq!(total(&store, "a"), (1, 100), "replayed from the log");
    assert_eq!(total(&store, "b"), (1, 5));
    store.flush().unwrap();
    assert!(!parquet_files(dir.path()).is_empty());
    for i in 0..4 {
        store.ingest(upload("a", "v1", "x", 100, now + i)).unwrap();
        store.flush().unwrap();
    }
    assert_eq!(total(&store, "a"), (5, 500));
    let samples_a: Vec<_> = parquet_files(&dir.path().join("tables/samples/a"));
    assert!(samples_a.len() < 5, "compacted: {samples_a:?}");
    drop(store);
    let store = open(dir.path());
    assert_eq!(total(&store, "a"), (5, 500), "from Parquet after a restart");
    drop(store);

    // A flush that died before its checkpoint, and a compaction that died
    // before deleting its inputs, leave files that must not count twice.
    let file = &parquet_files(&dir.path().join("tables/samples/a"))[0];
    let name = file.file_name().unwrap().to_str().unwrap();
    let unfinished = file.with_file_name("part-0000000000009990-0000000000009999.parquet");
    fs::copy(file, &unfinished).unwrap();
    let (from, to) = name
        .trim_start_matches("part-")
        .trim_end_matches(".parquet")
        .split_once('-')
        .unwrap();
    let (from, to): (u64, u64) = (from.parse().unwrap(), to.parse().unwrap());
    if from < to {
        let inner = file.with_file_name(format!("part-{:016}-{:016}.parquet", from + 1, to));
        fs::copy(file, &inner).unwrap();
    }
    let store = open(dir.path());
    assert_eq!(total(&store, "a"), (5, 500));
    assert!(!unfinished.exists());
    assert_eq!(store.stats().wal_bytes, 0);
}

#[test]
fn a_corrupt_parquet_file_is_reported_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let now = now_ms();
    {
        let store = open(dir.path());
        store.ingest(upload("a", "v1", "x", 100, now)).unwrap();
        store.ingest(upload("b", "v1", "y", 5, now)).unwrap();
        store.flush().unwrap();
    }
    let victim = &parquet_files(&dir.path().join("tables/samples/a"))[0];
    fs::write(victim, b"PAR1 this is not a parquet file").unwrap();
    let store = open(dir.path());
    assert_eq!(store.stats().corrupt_on_start, 1);
    assert_eq!(total(&store, "b"), (1, 5), "the rest is intact");
    assert_eq!(total(&store, "a"), (0, 0), "the corrupt file is skipped");
    assert!(fs::read_dir(dir.path().join("quarantine")).unwrap().count() == 1);
    // New data for `a` still lands.
    store.ingest(upload("a", "v2", "x", 7, now)).unwrap();
    assert_eq!(total(&store, "a"), (1, 7));
}

#[test]
fn retention_drops_old_days_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(dir.path());
    config.retention_ms = Some(2 * 86_400_000);
    let store = DiskStore::open(config).unwrap();
    let now = now_ms();
    store
        .ingest(upload("a", "v1", "old", 100, now - 5 * 86_400_000))
        .unwrap();
    store.ingest(upload("a", "v1", "new", 7, now)).unwrap();
    assert_eq!(total(&store, "a"), (2, 107));
    store.flush().unwrap();
    assert_eq!(total(&store, "a"), (1, 7));
    assert_eq!(parquet_files(&dir.path().join("tables/samples/a")).len(), 1);
}

#[test]
fn units_are_never_mixed_in_one_answer() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let now = now_ms();
    store.ingest(upload("a", "v1", "x", 100, now)).unwrap();
    let mut p =
        flameshift_analyzer::profile::Profile::new(vec![SampleType::new("instructions", "instructions")]);
    let stack = p.stack_from_names(["main", "x"]);
    p.push_sample(stack, LabelSetId::EMPTY, &[5_000]);
    let mut pmu = upload("a", "v2", "x", 1, now);
    pmu.body = format::pprof::to_proto_bytes(&p);
    store.ingest(pmu).unwrap();
    let all = Selection {
        service: "a".into(),
        ..Selection::default()
    };
    let err = query::top_functions(&store, &all, query::TopOrder::SelfCost, 10).unwrap_err();
    assert!(
        err.to_string().contains("mixes units (instructions and cpu_ns)"),
        "{err}"
    );
    let v2 = Selection {
        deploys: vec!["v2".into()],
        ..all
    };
    let top = query::top_functions(&store, &v2, query::TopOrder::SelfCost, 10).unwrap();
    assert_eq!((top.unit.as_str(), top.total), ("instructions", 5_000));
}
