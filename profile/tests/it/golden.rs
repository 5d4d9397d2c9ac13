//! Golden files: the folded output and the top table of every fixture.
//! `BLESS=1 cargo test -p flameshift-profile --test it golden` rewrites them.

use std::path::Path;

use flameshift_profile::format::{self, Format, WriteOptions};
use flameshift_profile::report::top_table;
use flameshift_profile::TopBy;

use crate::support::{fixtures, read_fixture, FIXTURES};

fn check_golden(path: &Path, actual: &[u8]) {
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(path, actual).unwrap();
        return;
    }
    let expected = std::fs::read(path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with BLESS=1 to create it)", path.display()));
    if expected != actual {
        panic!(
            "{} differs from the output (run with BLESS=1 to accept):\n--- expected\n{}\n--- actual\n{}",
            path.display(),
            String::from_utf8_lossy(&expected),
            String::from_utf8_lossy(actual)
        );
    }
}

fn golden_name(fixture: &str, suffix: &str) -> std::path::PathBuf {
    fixtures()
        .join("golden")
        .join(format!("{}.{suffix}", fixture.replace('/', "__")))
}

#[test]
fn folded_output_of_every_fixture() {
    for name in FIXTURES {
        let profile = read_fixture(name);
        let mut out = Vec::new();
        format::write(&profile, Format::Folded, &WriteOptions::default(), &mut out).unwrap();
        check_golden(&golden_name(name, "folded"), &out);
    }
}

#[test]
fn top_tables_of_every_fixture() {
    for name in FIXTURES {
        let profile = read_fixture(name);
        let index = profile.default_value_index();
        let mut text = String::new();
        if !profile.sample_types.is_empty() {
            text.push_str("# by self\n");
            text.push_str(&top_table(&profile, index, TopBy::SelfCost, 15).unwrap());
            text.push_str("# by inclusive\n");
            text.push_str(&top_table(&profile, index, TopBy::Inclusive, 15).unwrap());
        }
        check_golden(&golden_name(name, "top.txt"), text.as_bytes());
    }
}
