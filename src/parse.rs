//! Typed value parsers for the command line, so that clap reports a bad
//! value with the option's name before any work starts. One grammar each:
//!
//! - durations: humantime's (`500ms`, `30s`, `1.5s`, `2m`, `12h`, `14d`,
//!   `1h 30m`), or a bare number of seconds;
//! - fractions: `2%` or `0.02`;
//! - sizes: `64MiB`, `1GB`, `4096` (bytes);
//! - label names: `http.route`.

use std::time::Duration;

/// A positive duration: humantime's grammar, or a bare number of seconds.
pub fn duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let parsed = match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds >= 0.0 => Ok(Duration::from_secs_f64(seconds)),
        Ok(_) => Err("a duration is a positive number of seconds".to_owned()),
        Err(_) => humantime::parse_duration(text)
            .or_else(|e| fractional_duration(text).ok_or_else(|| e.to_string())),
    };
    match parsed {
        Ok(d) if d.is_zero() => Err(format!("{text:?} is zero: give a positive duration")),
        Ok(d) => Ok(d),
        Err(e) => Err(format!(
            "{text:?} is not a duration such as 500ms, 30s, 2m, 12h or 14d ({e})"
        )),
    }
}

/// `1.5s`, `0.5h`: one number with a fraction and one unit (humantime
/// takes whole numbers only).
fn fractional_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let seconds_per_unit = match unit.trim() {
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" | "sec" => 1.0,
        "m" | "min" => 60.0,
        "h" | "hr" => 3_600.0,
        "d" | "day" | "days" => 86_400.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(value * seconds_per_unit).ok()
}

/// How long data is kept: a [`duration`], or `forever`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Delete data older than this.
    For(Duration),
    /// Keep everything.
    Forever,
}

/// `forever` (or `none`), else a [`duration`].
pub fn retention(text: &str) -> Result<Retention, String> {
    match text.trim() {
        "forever" | "none" => Ok(Retention::Forever),
        other => duration(other).map(Retention::For),
    }
}

/// A non-negative fraction: `2%` → 0.02, `0.02` → 0.02.
pub fn fraction(text: &str) -> Result<f64, String> {
    let trimmed = text.trim();
    let value = match trimmed.strip_suffix('%') {
        Some(pct) => pct.trim().parse::<f64>().map(|v| v / 100.0),
        None => trimmed.parse::<f64>(),
    };
    value
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| format!("{text:?} is not a percentage such as 2% or a fraction such as 0.02"))
}

/// A probability strictly between 0 and 1 (a significance level).
pub fn probability(text: &str) -> Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|p| *p > 0.0 && *p < 1.0)
        .ok_or_else(|| format!("{text:?} is not a probability between 0 and 1, such as 0.01"))
}

/// A size in bytes: a number with an optional unit (`B`, `KB`/`KiB`,
/// `MB`/`MiB`, `GB`/`GiB`; decimal units are powers of 1000).
pub fn size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "ki" | "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mi" | "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gi" | "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use B, KiB, MiB, GiB, KB, MB or GB)"
            ))
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 64MiB or 4096"))?;
    let bytes = value * multiplier as f64;
    if !(bytes.is_finite() && bytes >= 1.0 && bytes <= u64::MAX as f64) {
        return Err(format!("{text:?} is not a positive size"));
    }
    Ok(bytes as u64)
}

/// `FUNCTION=PERCENT` (the percent sign is optional).
pub fn function_percent(text: &str) -> Result<(String, u64), String> {
    text.split_once('=')
        .and_then(|(function, pct)| {
            let pct = pct.trim().trim_end_matches('%').parse().ok()?;
            (!function.is_empty()).then(|| (function.to_owned(), pct))
        })
        .ok_or_else(|| format!("{text:?}: expected FUNCTION=PERCENT, e.g. score_items=15"))
}

/// A label name as the analyzer accepts one: letters, digits, `_`, `.`,
/// `-`, starting with a letter or `_` (`http.route`).
pub fn label_name(text: &str) -> Result<String, String> {
    let valid = text.len() <= 200
        && text
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if valid {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "{text:?}: a label name is letters, digits, `_`, `.` or `-`, starting with a letter or `_`"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_are_checked() {
        assert_eq!(label_name("http.route"), Ok("http.route".to_owned()));
        assert_eq!(label_name("_route-1"), Ok("_route-1".to_owned()));
        for bad in ["", "1route", "route name", "a{b}", "é"] {
            assert!(label_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations_have_one_grammar() {
        assert_eq!(duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(duration("14d"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(duration("1h 30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(duration("1.5"), Ok(Duration::from_millis(1_500)));
        assert_eq!(duration("1.5s"), Ok(Duration::from_millis(1_500)));
        assert_eq!(duration("0.5h"), Ok(Duration::from_secs(1_800)));
        assert_eq!(duration("10"), Ok(Duration::from_secs(10)));
        for bad in ["soon", "0s", "0", "-1", "5 fortnights", ""] {
            assert!(duration(bad).is_err(), "{bad}");
        }
        assert!(duration("soon").unwrap_err().contains("500ms"));
    }

    #[test]
    fn retention_is_a_duration_or_forever() {
        assert_eq!(retention("forever"), Ok(Retention::Forever));
        assert_eq!(
            retention("7d"),
            Ok(Retention::For(Duration::from_secs(7 * 86_400)))
        );
        assert!(retention("always").is_err());
    }

    #[test]
    fn fractions_and_percentages() {
        assert_eq!(fraction("2%"), Ok(0.02));
        assert_eq!(fraction("0.1%"), Ok(0.001));
        assert_eq!(fraction("0.05"), Ok(0.05));
        assert!(fraction("-1%").is_err());
        assert!(fraction("lots").is_err());
        assert_eq!(probability("0.01"), Ok(0.01));
        assert!(probability("1").is_err());
        assert!(probability("0").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(size("4096"), Ok(4096));
        assert_eq!(size("64MiB"), Ok(64 << 20));
        assert_eq!(size("1 GB"), Ok(1_000_000_000));
        assert_eq!(size("1.5KiB"), Ok(1536));
        assert!(size("0").is_err());
        assert!(size("12 parsecs").is_err());
    }

    #[test]
    fn function_percents() {
        assert_eq!(function_percent("score_items=15"), Ok(("score_items".into(), 15)));
        assert_eq!(function_percent("f=5%"), Ok(("f".into(), 5)));
        assert!(function_percent("f").is_err());
        assert!(function_percent("=5").is_err());
    }
}
