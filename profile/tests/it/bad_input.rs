//! Bad input gets a clear error naming what and where, never a panic.

use std::io::Write;

use flameshift_profile::format::{self, pprof::proto, ReadOptions};
use flameshift_profile::Error;
use prost::Message;

fn read(bytes: &[u8]) -> Result<flameshift_profile::Profile, Error> {
    format::read_bytes(bytes, &ReadOptions::default())
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// A small valid profile: one sample main → work.
fn valid() -> proto::Profile {
    proto::Profile {
        sample_type: vec![proto::ValueType { r#type: 1, unit: 2 }],
        sample: vec![proto::Sample {
            location_id: vec![2, 1],
            value: vec![7],
            label: vec![],
        }],
        location: vec![
            proto::Location {
                id: 1,
                line: vec![proto::Line {
                    function_id: 1,
                    line: 1,
                    column: 0,
                }],
                ..Default::default()
            },
            proto::Location {
                id: 2,
                line: vec![proto::Line {
                    function_id: 2,
                    line: 2,
                    column: 0,
                }],
                ..Default::default()
            },
        ],
        function: vec![
            proto::Function {
                id: 1,
                name: 3,
                ..Default::default()
            },
            proto::Function {
                id: 2,
                name: 4,
                ..Default::default()
            },
        ],
        string_table: ["", "cpu", "nanoseconds", "main", "work"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect(),
        ..Default::default()
    }
}

fn message_error(m: proto::Profile) -> String {
    let err = read(&m.encode_to_vec()).unwrap_err();
    assert!(matches!(err, Error::InvalidPprof { .. }), "{err:?}");
    err.to_string()
}

#[test]
fn the_valid_baseline_reads() {
    let p = read(&gzip(&valid().encode_to_vec())).unwrap();
    assert_eq!(p.total(0), 7);
}

#[test]
fn truncated_gzip() {
    let gz = gzip(&valid().encode_to_vec());
    let err = read(&gz[..gz.len() / 2]).unwrap_err();
    assert!(matches!(err, Error::Gzip(_)), "{err:?}");
    assert!(err.to_string().starts_with("corrupt gzip stream"), "{err}");
}

#[test]
fn corrupt_gzip() {
    let mut gz = gzip(&valid().encode_to_vec());
    let n = gz.len();
    gz[n - 6] ^= 0xff; // inside the CRC32 trailer
    let err = read(&gz).unwrap_err();
    assert!(matches!(err, Error::Gzip(_)), "{err:?}");
}

#[test]
fn protobuf_garbage() {
    let err = read(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02]).unwrap_err();
    assert!(matches!(err, Error::Protobuf(_)), "{err:?}");
    assert!(err.to_string().contains("not a valid pprof"), "{err}");
}

#[test]
fn string_index_out_of_range() {
    let mut m = valid();
    m.function[1].name = 99;
    let err = message_error(m);
    assert!(err.contains("function[1].name"), "{err}");
    assert!(err.contains("string index 99 out of range"), "{err}");

    let mut m = valid();
    m.sample[0].label.push(proto::Label {
        key: 1,
        str: -4,
        ..Default::default()
    });
    let err = message_error(m);
    assert!(err.contains("sample[0].label[0].str"), "{err}");
}

#[test]
fn location_that_does_not_exist() {
    let mut m = valid();
    m.sample[0].location_id[1] = 42;
    let err = message_error(m);
    assert!(
        err.contains("sample[0].location_id[1]: location 42 does not exist"),
        "{err}"
    );
}

#[test]
fn function_and_mapping_that_do_not_exist() {
    let mut m = valid();
    m.location[0].line[0].function_id = 9;
    assert!(message_error(m).contains("location[0].line[0].function_id: function 9 does not exist"));
    let mut m = valid();
    m.location[1].mapping_id = 3;
    assert!(message_error(m).contains("location[1].mapping_id: mapping 3 does not exist"));
}

#[test]
fn wrong_number_of_values() {
    let mut m = valid();
    m.sample[0].value.push(1);
    assert!(message_error(m).contains("sample[0].value: has 2 values for 1 sample types"));
}

#[test]
fn string_table_must_start_empty() {
    let mut m = valid();
    m.string_table[0] = b"x".to_vec();
    assert!(message_error(m).contains("string_table[0]"));
}

#[test]
fn decompression_bomb_is_capped() {
    let bomb = gzip(&vec![0u8; 4 << 20]);
    assert!(bomb.len() < 64 << 10, "compresses well: {}", bomb.len());
    let options = ReadOptions {
        max_decompressed: 1 << 20,
    };
    let err = format::read_bytes(&bomb, &options).unwrap_err();
    assert!(
        matches!(err, Error::TooLarge { limit } if limit == 1 << 20),
        "{err:?}"
    );
    assert!(err.to_string().contains("decompression bomb"), "{err}");
    assert_eq!(ReadOptions::default().max_decompressed, 512 << 20);
    // Exactly at the limit is fine.
    let options = ReadOptions {
        max_decompressed: 4 << 20,
    };
    assert!(!matches!(
        format::read_bytes(&bomb, &options),
        Err(Error::TooLarge { .. })
    ));
}

#[test]
fn folded_line_without_count() {
    let err = read(b"main;a 1\nmain;b 2\nmain;c\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "folded line 3: missing count: expected `frame;frame;... COUNT`"
    );
    let err = read(b"main;a 1\nmain;b 1.5\n").unwrap_err();
    assert!(
        err.to_string().starts_with("folded line 2: count field \"1.5\""),
        "{err}"
    );
}

#[test]
fn speedscope_input_is_refused_clearly() {
    let err = read(b"{\"$schema\": \"x\"}").unwrap_err();
    assert!(matches!(err, Error::UnknownFormat(_)));
    assert!(err.to_string().contains("write-only"), "{err}");
}

/// `rounds` copies of `base` with 1 to 4 bytes changed and, one in four,
/// cut short: a cheap, deterministic stand-in for the fuzzers in CI
/// (fuzz/), run in every test run.
fn mutants(base: &[u8], rounds: usize, seed: u64) -> impl Iterator<Item = Vec<u8>> + '_ {
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..rounds).map(move |_| {
        let mut bytes = base.to_vec();
        for _ in 0..1 + next() % 4 {
            let at = (next() % bytes.len() as u64) as usize;
            bytes[at] = next() as u8;
        }
        if next() % 4 == 0 {
            bytes.truncate((next() % bytes.len() as u64) as usize);
        }
        bytes
    })
}

#[test]
fn mutated_pprof_never_panics() {
    let raw = valid().encode_to_vec();
    for bytes in mutants(&raw, 2_500, 0x9e37_79b9_7f4a_7c15).chain(mutants(&gzip(&raw), 2_500, 7)) {
        let _ = read(&bytes);
    }
}

/// Other producers' requests, mutated: each reads or fails with an
/// error, and both happen often (the mutations reach past the envelope).
#[test]
fn mutated_otlp_exports_and_pushes_never_panic() {
    use format::{otlp, pyroscope_push};
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures");
    for fixture in [
        "otlp-profiles/python-sdk.pb.gz",
        "pyroscope-push/pyspy-python.pb.gz",
    ] {
        let plain = format::gunzip(&std::fs::read(format!("{dir}/{fixture}")).unwrap(), 1 << 24).unwrap();
        let (mut refused, mut taken) = (0, 0);
        for bytes in mutants(&plain, 3_000, 0x2545_f491_4f6c_dd1d) {
            let _ = otlp::split_by_resource(&bytes, 1 << 24, "service.name");
            let _ = read(&bytes);
            let decoded = if fixture.starts_with("otlp") {
                otlp::read(&bytes, 1 << 24).map(drop)
            } else {
                pyroscope_push::read_merged(&bytes, pyroscope_push::Encoding::Protobuf, 1 << 24).map(drop)
            };
            match decoded {
                Ok(()) => taken += 1,
                Err(_) => refused += 1,
            }
        }
        assert!(
            refused > 100 && taken > 100,
            "{fixture}: {refused} refused, {taken} taken"
        );
    }
}
