//! On perf input, flameshift's folding agrees with inferno's collapser
//! (inferno puts the process name in the root frame; flameshift keeps it
//! as the `thread` label, so we ask for it as the root).

use flameshift_profile::FoldOptions;
use inferno::collapse::perf::{Folder, Options};
use inferno::collapse::Collapse;

use crate::support::{fixtures, read_fixture};

#[test]
fn perf_script_folds_like_inferno_collapse_perf() {
    let path = fixtures().join("perf/workload.perf-script");
    let mut theirs = Vec::new();
    Folder::from(Options::default())
        .collapse_file(Some(&path), &mut theirs)
        .unwrap();
    let theirs = String::from_utf8(theirs).unwrap();

    let profile = read_fixture("perf/workload.perf-script");
    let ours: String = profile
        .fold(&FoldOptions {
            value_index: profile.default_value_index(),
            root_label: Some("thread".into()),
        })
        .into_iter()
        .map(|(stack, v)| format!("{stack} {v}\n"))
        .collect();
    assert!(!ours.is_empty());
    assert_eq!(ours, theirs);
}
