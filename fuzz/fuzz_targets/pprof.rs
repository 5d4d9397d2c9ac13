//! pprof bytes (gzipped or not) must decode or fail cleanly; what decodes
//! must survive a round trip through the encoder.
#![no_main]

use flameshift_profile::format::pprof;
use flameshift_profile::FoldOptions;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(profile) = pprof::read(data, 16 << 20) {
        let bytes = pprof::to_proto_bytes(&profile);
        let again = pprof::read(&bytes, 16 << 20).expect("our own output must decode");
        for i in 0..profile.sample_types.len() {
            let options = FoldOptions { value_index: i, root_label: None };
            assert_eq!(again.fold(&options), profile.fold(&options));
        }
        let _ = profile.top_functions(0, flameshift_profile::TopBy::Inclusive);
    }
});
