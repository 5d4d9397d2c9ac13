//! Costs as a reader wants them in a report: `3.07 s`, `12.3 M
//! instructions`, `4.1% of samples`, not `3072144264.0000`.

/// `value` in the unit of a profile's sample type (`kind/unit`, e.g.
/// `cpu/nanoseconds`, `instructions/count`), with three significant
/// digits and an SI prefix; a share of samples (`shares`) as a percent.
pub fn format(value: f64, sample_type: &str, shares: bool) -> String {
    if shares {
        return format!("{}% of samples", significant(value * 100.0));
    }
    if !value.is_finite() {
        return value.to_string();
    }
    let (kind, unit) = sample_type.split_once('/').unwrap_or((sample_type, ""));
    match unit {
        "nanoseconds" => scaled(value, &[(1e9, "s"), (1e6, "ms"), (1e3, "µs"), (1.0, "ns")]),
        "microseconds" => scaled(value * 1e3, &[(1e9, "s"), (1e6, "ms"), (1e3, "µs"), (1.0, "ns")]),
        "milliseconds" => scaled(value * 1e6, &[(1e9, "s"), (1e6, "ms"), (1e3, "µs"), (1.0, "ns")]),
        "seconds" => scaled(value * 1e9, &[(1e9, "s"), (1e6, "ms"), (1e3, "µs"), (1.0, "ns")]),
        "bytes" => scaled(
            value,
            &[
                (1_073_741_824.0, "GiB"),
                (1_048_576.0, "MiB"),
                (1024.0, "KiB"),
                (1.0, "B"),
            ],
        ),
        _ => {
            // Counts: instructions, samples, allocations — named by the kind.
            let name = if kind.is_empty() { unit } else { kind };
            let number = scaled(value, &[(1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, "")]);
            match name {
                "" => number,
                name => format!("{number} {name}"),
            }
        }
    }
}

/// `value` divided by the largest step it reaches, with that step's name.
fn scaled(value: f64, steps: &[(f64, &str)]) -> String {
    let magnitude = value.abs();
    let (size, name) = steps
        .iter()
        .find(|(size, _)| magnitude >= *size)
        .copied()
        .unwrap_or(steps[steps.len() - 1]);
    let number = significant(value / size);
    if name.is_empty() {
        number
    } else {
        format!("{number} {name}")
    }
}

/// Three significant digits, without trailing zeros after the point.
fn significant(x: f64) -> String {
    let magnitude = x.abs();
    let decimals = if magnitude >= 100.0 || magnitude == 0.0 {
        0
    } else if magnitude >= 10.0 {
        1
    } else if magnitude >= 1.0 {
        2
    } else {
        3
    };
    let text = format!("{x:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::format;

    #[test]
    fn costs_read_as_quantities() {
        assert_eq!(format(3_072_144_264.0, "cpu/nanoseconds", false), "3.07 s");
        assert_eq!(
            format(12_345_678.0, "instructions/count", false),
            "12.3 M instructions"
        );
        assert_eq!(format(812.0, "samples/count", false), "812 samples");
        assert_eq!(format(1_500.0, "cpu/nanoseconds", false), "1.5 µs");
        assert_eq!(format(0.5, "cpu/nanoseconds", false), "0.5 ns");
        assert_eq!(format(2_621_440.0, "space/bytes", false), "2.5 MiB");
        assert_eq!(format(0.04123, "cpu/nanoseconds", true), "4.12% of samples");
        assert_eq!(format(7.0, "", false), "7");
    }
}
