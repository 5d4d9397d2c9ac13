//! Folded text must parse or fail with a line number; what parses must
//! write out and parse back to the same stacks.
#![no_main]

use flameshift_profile::format::folded;
use flameshift_profile::FoldOptions;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(profile) = folded::read(data) {
        let mut out = Vec::new();
        folded::write(&profile, &FoldOptions::default(), &mut out).expect("write to memory");
        let again = folded::read(&out).expect("our own output must parse");
        assert_eq!(again.fold(&FoldOptions::default()), profile.fold(&FoldOptions::default()));
    }
});
