//! `flameshift changepoints FILE`: change points of the numeric series in
//! a CSV (a header row, one column per metric) or a JSON array of numbers
//! (read by [`crate::series`]: missing values skipped, rows kept).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use flameshift_detect::changepoint::{
    e_divisive, pelt, robust_at, EDivisive, Pelt, Period, Robust, Segmentation,
};

use crate::series::{self, Series};

/// Find change points in a numeric series (CSV with a header row, or a JSON array).
#[derive(Debug, Args)]
pub struct ChangepointsArgs {
    /// CSV (one column per metric, a header row) or JSON array of numbers.
    file: PathBuf,
    /// Only this column (default: every numeric column).
    #[arg(long)]
    column: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// The search method.
    #[arg(long, value_enum, default_value_t = Method::Robust)]
    method: Method,
    /// Significance threshold: of a jump or a drift (robust), or of a split after a
    /// Bonferroni correction over the splits tried (e-divisive).
    /// [default: 0.01 robust, 0.001 e-divisive]
    #[arg(long, value_parser = crate::parse::probability)]
    max_p_value: Option<f64>,
    /// Seasonal period in rows (robust): `auto` finds a clear one, `none` takes none out.
    #[arg(long, default_value = "auto", value_parser = parse_period)]
    period: Period,
    /// Ignore changes smaller than this fraction of the level before (robust), e.g. 1% or 0.01.
    #[arg(long, default_value_t = 0.0, value_parser = crate::parse::fraction)]
    min_change: f64,
    /// Penalty per segment in units of σ²·ln n (robust; higher finds fewer changes).
    #[arg(long, default_value_t = Robust::default().penalty_factor, value_parser = parse_penalty)]
    penalty: f64,
}

fn parse_penalty(text: &str) -> Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|p| p.is_finite() && *p > 0.0)
        .ok_or_else(|| format!("`{text}` is not a penalty: a positive number such as 4"))
}

fn parse_period(text: &str) -> Result<Period, String> {
    match text {
        "auto" => Ok(Period::Detect),
        "none" | "0" => Ok(Period::None),
        n => match n.parse::<usize>() {
            Ok(p) if p >= 2 => Ok(Period::Every(p)),
            _ => Err(format!(
                "`{n}` is not a period: auto, none, or a number of rows of at least 2"
            )),
        },
    }
}

/// `--method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Method {
    /// Level changes told from drifts, seasons and outliers (line segments by PELT).
    Robust,
    /// E-Divisive means with a t-test significance step (as Apache Otava).
    EDivisive,
    /// PELT with an MBIC-like penalty.
    Pelt,
}

impl Method {
    /// The shortest series it can split (a segment of its smallest size on
    /// each side).
    fn fewest_points(self) -> usize {
        match self {
            Method::Robust => 2 * Robust::default().min_segment.max(3),
            Method::EDivisive => 2 * EDivisive::default().min_segment.max(2),
            Method::Pelt => 2 * Pelt::default().min_segment.max(1),
        }
    }
}

/// Prints the change points of each series (finding some is not an
/// error). Columns that cannot be judged (a word or an infinity among
/// numbers, too few values) are named on stderr and make the exit
/// status 2, after the others are printed.
pub fn run(options: ChangepointsArgs) -> anyhow::Result<ExitCode> {
    let file = series::read(&options.file, options.column.as_deref())?;
    let mut problems: Vec<String> = file
        .refused
        .iter()
        .map(|r| format!("column {:?} skipped: {}", r.name, r.reason))
        .collect();
    let mut results: Vec<(Series, Segmentation)> = Vec::new();
    for series in file.series {
        let fewest = options.method.fewest_points();
        if series.values.len() < fewest {
            problems.push(format!(
                "column {:?} skipped: {} values, {} needs at least {fewest}",
                series.name,
                series.values.len(),
                options
                    .method
                    .to_possible_value()
                    .map_or_else(String::new, |v| v.get_name().to_owned()),
            ));
            continue;
        }
        let found = segment(&series, &options);
        results.push((series, found));
    }
    if results.is_empty() && !problems.is_empty() {
        anyhow::bail!("no column could be judged: {}", problems.join("; "));
    }
    let out = if options.json {
        let json: Vec<serde_json::Value> = results
            .iter()
            .map(|(series, found)| {
                serde_json::json!({
                    "column": series.name,
                    "points": series.values.len(),
                    "missing": series.missing,
                    "change_points": found.change_points,
                    "drifts": found.drifts,
                    "period": found.period,
                    "outliers": found.outliers,
                })
            })
            .collect();
        serde_json::to_string_pretty(&json)? + "\n"
    } else {
        results
            .iter()
            .map(|(series, found)| table(series, found))
            .collect()
    };
    use std::io::Write;
    std::io::stdout().write_all(out.as_bytes())?;
    if problems.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for problem in &problems {
        #[allow(clippy::print_stderr, reason = "what was skipped belongs beside the output")]
        {
            eprintln!("flameshift: {problem}");
        }
    }
    Ok(ExitCode::from(2))
}

/// The series' change points (and, for the robust method, drifts, season
/// and outliers), at the file's rows.
fn segment(series: &Series, options: &ChangepointsArgs) -> Segmentation {
    let values = &series.values;
    let mut found = match options.method {
        Method::Robust => robust_at(
            values,
            &series.rows,
            &Robust {
                max_p_value: options.max_p_value.unwrap_or(Robust::default().max_p_value),
                period: options.period,
                min_change: options.min_change,
                penalty_factor: options.penalty,
                ..Robust::default()
            },
        ),
        Method::EDivisive => Segmentation {
            change_points: e_divisive(
                values,
                &EDivisive {
                    max_p_value: options.max_p_value.unwrap_or(EDivisive::default().max_p_value),
                    ..EDivisive::default()
                },
            ),
            ..Segmentation::default()
        },
        Method::Pelt => Segmentation {
            change_points: pelt(values, &Pelt::default()),
            ..Segmentation::default()
        },
    };
    for point in &mut found.change_points {
        point.index = series.row_of(point.index);
    }
    for drift in &mut found.drifts {
        drift.start = series.row_of(drift.start);
        drift.end = series.row_of(drift.end);
    }
    for outlier in &mut found.outliers {
        *outlier = series.row_of(*outlier);
    }
    found
}

/// A number as people write it: up to six significant digits, no
/// trailing zeros (`3072144264`, `0.0312`, `1.5e-07`).
fn number(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let magnitude = x.abs().log10().floor() as i32;
    if !(-4..15).contains(&magnitude) {
        return format!("{x:.3e}");
    }
    let decimals = (5 - magnitude).max(0) as usize;
    let text = format!("{x:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// The text report of one series.
fn table(series: &Series, found: &Segmentation) -> String {
    let mut out = String::new();
    let missing = match series.missing {
        0 => String::new(),
        n => format!(" ({n} missing, skipped)"),
    };
    let drifts = match found.drifts.len() {
        0 => String::new(),
        n => format!(", {n} drift(s)"),
    };
    out.push_str(&format!(
        "{}: {} points{missing}, {} change point(s){drifts}\n",
        series.name,
        series.values.len(),
        found.change_points.len()
    ));
    if let Some(period) = found.period {
        out.push_str(&format!("  a season of {period} rows taken out\n"));
    }
    if !found.outliers.is_empty() {
        let rows: Vec<String> = found.outliers.iter().map(usize::to_string).collect();
        out.push_str(&format!("  outliers set aside at rows {}\n", rows.join(", ")));
    }
    if !found.change_points.is_empty() {
        out.push_str(&format!(
            "  {:>6}  {:>14}  {:>14}  {:>9}  {:>10}\n",
            "row", "before", "after", "change", "p-value"
        ));
    }
    for c in &found.change_points {
        out.push_str(&format!(
            "  {:>6}  {:>14}  {:>14}  {:>+8.2}%  {:>10.3e}\n",
            c.index,
            number(c.mean_before),
            number(c.mean_after),
            c.change * 100.0,
            c.p_value
        ));
    }
    for d in &found.drifts {
        out.push_str(&format!(
            "  drift from row {} to {}: {} per row ({:+.2}% of the level per row), {} to {} ({:+.1}%), p {:.1e}\n",
            d.start,
            d.end,
            number(d.slope),
            d.relative_slope * 100.0,
            number(d.level_start),
            number(d.level_end),
            d.change * 100.0,
            d.p_value
        ));
    }
    out
}
