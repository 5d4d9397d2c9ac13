//! A data directory written by an earlier flameshift (the one whose store
//! ran on polars, before the store read and wrote Parquet itself) still
//! answers every query as it did then: `tests/fixtures/polars-store/`
//! holds its tables, `answers.json` what that version answered (both
//! written by the `write_fixture` test of commit 4029bb1, the last with
//! polars: two deploys, two days, labels, endpoints, request statistics
//! and a deploy event, flushed nine times).

use std::fs;

use flameshift_analyzer::store::{Selection, Store};

use super::*;

/// Every query the store answers, over the fixture's two days, as JSON.
pub(crate) fn answers(store: &dyn Store) -> serde_json::Value {
    let all = Selection {
        service: "shop".to_owned(),
        ..Selection::default()
    };
    let labelled = Selection {
        labels: vec![("region".to_owned(), "eu".to_owned())],
        ..all.clone()
    };
    let v2_buy = Selection {
        deploys: vec!["v2".to_owned()],
        endpoint: Some("/buy".to_owned()),
        from_ms: Some(DAY1 + 10_000),
        until_ms: Some(DAY2 + 86_400_000),
        ..all.clone()
    };
    let totals = |sel: &Selection| {
        let t = store.stack_totals(sel).unwrap();
        let mut rows: Vec<(String, i64, i64)> = t
            .stacks
            .iter()
            .map(|(id, w)| {
                let frames = store.stacks("shop", &[*id]).unwrap().remove(id).unwrap();
                (frames.join(";"), w.weight, w.count)
            })
            .collect();
        rows.sort();
        serde_json::json!({ "unit": t.unit.as_str(), "rows": rows })
    };
    let series = |sel: &Selection, by_endpoint: bool| {
        let s = store.stack_series(sel, 60_000, by_endpoint).unwrap();
        let rows: Vec<_> = s
            .rows
            .iter()
            .map(|r| {
                let frames = store
                    .stacks("shop", &[r.stack_id])
                    .unwrap()
                    .remove(&r.stack_id)
                    .unwrap();
                (
                    r.window_ms,
                    r.deploy.to_string(),
                    r.endpoint.to_string(),
                    frames.join(";"),
                    r.weight.weight,
                    r.weight.count,
                )
            })
            .collect();
        serde_json::json!({ "unit": s.unit.as_str(), "rows": rows })
    };
    serde_json::json!({
        "services": store.services().unwrap(),
        "deploys": store.deploys("shop").unwrap(),
        "has_v1": store.has_deploy("shop", "v1").unwrap(),
        "has_v9": store.has_deploy("shop", "v9").unwrap(),
        "totals": totals(&all),
        "totals_labelled": totals(&labelled),
        "totals_v2_buy": totals(&v2_buy),
        "series": series(&all, false),
        "series_by_endpoint": series(&labelled, true),
        "requests": store.requests(&all, 60_000).unwrap(),
        "requests_v2_buy": store.requests(&v2_buy, 60_000).unwrap(),
    })
}

/// 2026-01-01T00:00:00Z and the day after.
const DAY1: i64 = 1_767_225_600_000;
const DAY2: i64 = DAY1 + 86_400_000;

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/polars-store")
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn open_kept(dir: &Path) -> DiskStore {
    let mut config = StoreConfig::new(dir);
    config.retention_ms = None;
    config.compact_at_files = 2;
    DiskStore::open(config).unwrap()
}

#[test]
fn a_data_directory_of_the_polars_store_answers_as_it_did() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture().join("data"), dir.path());
    let store = open_kept(dir.path());
    assert_eq!(store.stats().corrupt_on_start, 0);
    assert!(store.stats().parquet_files >= 8, "{:?}", store.stats());
    let expected: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(fixture().join("answers.json")).unwrap()).unwrap();
    assert_eq!(answers(&store), expected);
    // And after a compaction that rewrites those files in today's format,
    // and a restart that reads them.
    store.flush().unwrap();
    assert!(store.stats().parquet_files < 8, "{:?}", store.stats());
    assert_eq!(answers(&store), expected);
    drop(store);
    assert_eq!(answers(&open_kept(dir.path())), expected);
}
