//! Human-readable quantities: `12.3 M instructions`, `45 ms`, `3.2 MiB`.

use crate::SampleType;

/// Formats `value` of sample type `ty` for people: time units are scaled to
/// ns/µs/ms/s, bytes to KiB/MiB/GiB, everything else gets an SI prefix and
/// the unit (or, for plain counts, the kind) spelled out.
///
/// ```
/// use flameshift_profile::{units::format_quantity, SampleType};
/// let ins = SampleType::new("instructions", "instructions");
/// assert_eq!(format_quantity(12_345_678.0, &ins), "12.3 M instructions");
/// let cpu = SampleType::new("cpu", "nanoseconds");
/// assert_eq!(format_quantity(45_000_000.0, &cpu), "45 ms");
/// let samples = SampleType::new("samples", "count");
/// assert_eq!(format_quantity(7.0, &samples), "7 samples");
/// ```
pub fn format_quantity(value: f64, ty: &SampleType) -> String {
    if let Some(ns_per_unit) = nanoseconds_per_unit(&ty.unit) {
        return format_duration_ns(value * ns_per_unit);
    }
    if ty.unit == "bytes" {
        return format_bytes(value);
    }
    let noun = if ty.unit == "count" || ty.unit.is_empty() {
        ty.kind.as_str()
    } else {
        ty.unit.as_str()
    };
    let (scaled, prefix) = si_prefix(value);
    let noun = if value == 1.0 {
        noun.strip_suffix('s').unwrap_or(noun)
    } else {
        noun
    };
    if prefix.is_empty() {
        format!("{} {noun}", significant(scaled))
    } else {
        format!("{} {prefix} {noun}", significant(scaled))
    }
}

/// `1 sample`, `2 samples`.
pub fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// How many nanoseconds one `unit` is, for the time units pprof uses.
pub fn nanoseconds_per_unit(unit: &str) -> Option<f64> {
    match unit {
        "nanoseconds" | "ns" => Some(1.0),
        "microseconds" | "us" => Some(1e3),
        "milliseconds" | "ms" => Some(1e6),
        "seconds" | "s" => Some(1e9),
        _ => None,
    }
}

/// `1234567` ns → `1.23 ms`.
pub fn format_duration_ns(ns: f64) -> String {
    let abs = ns.abs();
    let (scaled, unit) = if abs >= 1e9 {
        (ns / 1e9, "s")
    } else if abs >= 1e6 {
        (ns / 1e6, "ms")
    } else if abs >= 1e3 {
        (ns / 1e3, "µs")
    } else {
        (ns, "ns")
    };
    format!("{} {unit}", significant(scaled))
}

fn format_bytes(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut scaled = bytes;
    let mut unit = 0;
    while scaled.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        scaled /= 1024.0;
        unit += 1;
    }
    format!("{} {}", significant(scaled), UNITS[unit])
}

fn si_prefix(value: f64) -> (f64, &'static str) {
    let abs = value.abs();
    if abs >= 1e12 {
        (value / 1e12, "T")
    } else if abs >= 1e9 {
        (value / 1e9, "G")
    } else if abs >= 1e6 {
        (value / 1e6, "M")
    } else if abs >= 1e4 {
        (value / 1e3, "k")
    } else {
        (value, "")
    }
}

/// Three significant digits, trailing zeros dropped: `45`, `1.23`, `12.3`.
fn significant(value: f64) -> String {
    let abs = value.abs();
    let decimals = if abs >= 100.0 || abs == abs.trunc() && abs < 1e4 {
        0
    } else if abs >= 10.0 {
        1
    } else {
        2
    };
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_pick_a_readable_unit() {
        assert_eq!(format_duration_ns(45_000_000.0), "45 ms");
        assert_eq!(format_duration_ns(1_234_567_890.0), "1.23 s");
        assert_eq!(format_duration_ns(999.0), "999 ns");
        assert_eq!(format_duration_ns(1_500.0), "1.5 µs");
        let ms = SampleType::new("wall", "milliseconds");
        assert_eq!(format_quantity(2_500.0, &ms), "2.5 s");
    }

    #[test]
    fn counts_get_si_prefixes_and_a_noun() {
        let ins = SampleType::new("instructions", "instructions");
        assert_eq!(format_quantity(1_000_000_000.0, &ins), "1 G instructions");
        assert_eq!(format_quantity(9_999.0, &ins), "9999 instructions");
        assert_eq!(format_quantity(12_500.0, &ins), "12.5 k instructions");
        let bytes = SampleType::new("alloc_space", "bytes");
        assert_eq!(format_quantity(3.5 * 1024.0 * 1024.0, &bytes), "3.5 MiB");
        let samples = SampleType::new("samples", "count");
        assert_eq!(format_quantity(0.0, &samples), "0 samples");
        assert_eq!(format_quantity(1.0, &samples), "1 sample");
        assert_eq!(plural(1, "sample"), "1 sample");
        assert_eq!(plural(1234, "sample"), "1234 samples");
    }
}
