//! Content detection and every reader (pprof, folded, perf script) on
//! arbitrary bytes: an error is fine, a panic is not.
#![no_main]

use flameshift_profile::format::{self, ReadOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let options = ReadOptions { max_decompressed: 16 << 20 };
    if let Ok(profile) = format::read_bytes(data, &options) {
        let index = profile.default_value_index();
        let _ = flameshift_profile::report::top_table(&profile, index, Default::default(), 10);
    }
});
