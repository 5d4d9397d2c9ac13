//! Round-trip properties: pprof → model → pprof and folded → model →
//! folded keep every stack, label and value.

use flameshift_profile::format::{self, folded, pprof, DEFAULT_MAX_DECOMPRESSED};
use flameshift_profile::{FoldOptions, Frame, Profile, SampleType};
use proptest::prelude::*;

use crate::support::{canonical, read_fixture, FIXTURES};

/// Names with the characters that break naive formats: separators,
/// spaces, markup, quotes, non-ASCII.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_][a-z0-9_:]{0,12}",
        "[a-zA-Z0-9 <>&\"';/(){}.*é漢-]{1,16}",
        Just("main".to_owned()),
    ]
}

#[derive(Debug, Clone)]
struct SampleSpec {
    frames: Vec<(usize, bool, u32)>,
    labels: Vec<(usize, Option<String>, i64)>,
    values: Vec<i64>,
}

fn profile_spec() -> impl Strategy<Value = (Vec<String>, usize, Vec<SampleSpec>)> {
    (prop::collection::vec(name(), 1..12), 1usize..4).prop_flat_map(|(names, types)| {
        let n = names.len();
        let sample = (
            prop::collection::vec((0..n, any::<bool>(), 0u32..500), 1..20),
            prop::collection::vec((0..n, prop::option::of("[a-z /{}]{1,8}"), -5i64..5000), 0..3),
            prop::collection::vec(-10i64..1_000_000_000_000, types),
        )
            .prop_map(|(frames, labels, values)| SampleSpec {
                frames,
                labels,
                values,
            });
        (Just(names), Just(types), prop::collection::vec(sample, 0..30))
    })
}

fn build(names: &[String], types: usize, samples: &[SampleSpec]) -> Profile {
    let units = ["nanoseconds", "count", "instructions"];
    let mut p = Profile::new(
        (0..types)
            .map(|i| SampleType::new(format!("t{i}"), units[i]))
            .collect(),
    );
    for spec in samples {
        let mut stack = Vec::new();
        for (i, &(name, inlined, line)) in spec.frames.iter().enumerate() {
            let function = p.intern_str(&names[name]);
            let file = p.intern_str("src/lib.rs");
            // The root frame cannot be inlined into anything.
            let inlined = inlined && i > 0;
            stack.push(p.intern_frame(Frame {
                function,
                file,
                line,
                inlined,
                ..Frame::default()
            }));
        }
        let stack = p.intern_stack(&stack);
        let labels = spec
            .labels
            .iter()
            .map(|(key, text, num)| match text {
                Some(text) => p.str_label(&names[*key], text),
                None => p.num_label(&names[*key], *num, "bytes"),
            })
            .collect();
        let labels = p.intern_labels(labels);
        p.push_sample(stack, labels, &spec.values);
    }
    p
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn pprof_round_trip_keeps_every_stack_label_and_value((names, types, samples) in profile_spec()) {
        let original = build(&names, types, &samples);
        let bytes = pprof::to_proto_bytes(&original);
        let decoded = pprof::read(&bytes, DEFAULT_MAX_DECOMPRESSED).unwrap();
        prop_assert_eq!(&decoded.sample_types, &original.sample_types);
        prop_assert_eq!(canonical(&decoded), canonical(&original));
        // And once more through gzip and content detection.
        let mut gz = Vec::new();
        pprof::write(&decoded, &mut gz).unwrap();
        let again = format::read_bytes(&gz, &Default::default()).unwrap();
        prop_assert_eq!(canonical(&again), canonical(&original));
    }

    #[test]
    fn folded_round_trip_keeps_every_stack_and_value(
        lines in prop::collection::btree_map(
            prop::collection::vec("[a-zA-Z0-9_<>&\"'.:()é][a-zA-Z0-9 _<>&\"'.:()é-]{0,10}[a-zA-Z0-9_)]", 1..8)
                .prop_map(|frames| frames.join(";")),
            0i64..1_000_000,
            0..40,
        )
    ) {
        let text: String = lines.iter().map(|(s, v)| format!("{s} {v}\n")).collect();
        let profile = folded::read(text.as_bytes()).unwrap();
        let mut out = Vec::new();
        folded::write(&profile, &FoldOptions::default(), &mut out).unwrap();
        prop_assert_eq!(String::from_utf8(out).unwrap(), text);
    }

    #[test]
    fn merge_then_fold_adds_up(
        (names, types, samples) in profile_spec(),
        split in 0usize..30,
    ) {
        let split = split.min(samples.len());
        let whole = build(&names, types, &samples);
        let mut left = build(&names, types, &samples[..split]);
        let right = build(&names, types, &samples[split..]);
        left.merge(&right).unwrap();
        prop_assert_eq!(canonical(&left), canonical(&whole));
        for i in 0..types {
            prop_assert_eq!(left.total(i), whole.total(i));
        }
    }
}

#[test]
fn every_fixture_survives_pprof_round_trip() {
    for name in FIXTURES {
        let original = read_fixture(name);
        let mut gz = Vec::new();
        pprof::write(&original, &mut gz).unwrap();
        let again = format::read_bytes(&gz, &Default::default()).unwrap();
        assert_eq!(canonical(&again), canonical(&original), "{name}");
        assert_eq!(again.sample_types, original.sample_types, "{name}");
        assert_eq!(again.period, original.period, "{name}");
        assert_eq!(
            (again.time_nanos, again.duration_nanos),
            (original.time_nanos, original.duration_nanos)
        );
        assert_eq!(
            again.default_value_index(),
            original.default_value_index(),
            "{name}"
        );
    }
}

#[test]
fn inlined_frames_are_read_and_written_as_one_location() {
    let p = read_fixture("edge/multi.pb.gz");
    let folded = p.fold(&FoldOptions {
        value_index: 1,
        root_label: None,
    });
    assert_eq!(folded.get("main;serve;parse_header;memcpy"), Some(&50_000_000));
    let message = {
        use prost::Message;
        pprof::proto::Profile::decode(&pprof::to_proto_bytes(&p)[..]).unwrap()
    };
    let with_two_lines = message.location.iter().filter(|l| l.line.len() == 2).count();
    assert_eq!(with_two_lines, 1, "serve+parse_header stay one location");
    assert_eq!(message.location.len(), 4);
}

#[test]
fn go_profile_keeps_labels_period_and_default_type() {
    let p = read_fixture("go/cpu.pb.gz");
    assert_eq!(
        p.sample_types[p.default_value_index()],
        SampleType::new("cpu", "nanoseconds")
    );
    assert_eq!(p.period.as_ref().map(|x| x.value), Some(10_000_000));
    let hash = p.filter_labels(&["endpoint=GET /hash".parse().unwrap()]);
    let sort = p.filter_labels(&["endpoint=GET /sort".parse().unwrap()]);
    assert!(hash.total(1) > 0 && sort.total(1) > 0);
    let top = hash.top_functions(1, flameshift_profile::TopBy::Inclusive);
    assert!(top.iter().any(|f| f.name == "main.hashLoop"));
    assert!(
        !top.iter().any(|f| f.name == "main.sortLoop"),
        "labels keep endpoints apart"
    );
}
