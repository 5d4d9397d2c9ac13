//! `flameshift changepoints FILE`: change points of the numeric series in
//! a CSV (a header row, one column per metric) or a JSON array of numbers
//! (read by [`crate::series`]: missing values skipped, rows kept).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use flameshift_detect::changepoint::{e_divisive, pelt, ChangePoint, EDivisive, Pelt};

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
    #[arg(long, value_enum, default_value_t = Method::EDivisive)]
    method: Method,
    /// E-Divisive's significance threshold (after a Bonferroni correction over the splits tried).
    #[arg(long, default_value_t = 0.001, value_parser = crate::parse::probability)]
    max_p_value: f64,
}

/// `--method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Method {
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
    let mut results: Vec<(Series, Vec<ChangePoint>)> = Vec::new();
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
        let values = &series.values;
        let mut found = match options.method {
            Method::EDivisive => e_divisive(
                values,
                &EDivisive {
                    max_p_value: options.max_p_value,
                    ..EDivisive::default()
                },
            ),
            Method::Pelt => pelt(values, &Pelt::default()),
        };
        for point in &mut found {
            point.index = series.row_of(point.index);
        }
        results.push((series, found));
    }
    if results.is_empty() && !problems.is_empty() {
        anyhow::bail!("no column could be judged: {}", problems.join("; "));
    }
    let mut out = String::new();
    if options.json {
        let json: Vec<serde_json::Value> = results
            .iter()
            .map(|(series, found)| {
                serde_json::json!({
                    "column": series.name,
                    "points": series.values.len(),
                    "missing": series.missing,
                    "change_points": found,
                })
            })
            .collect();
        out = serde_json::to_string_pretty(&json)? + "\n";
    } else {
        for (series, found) in &results {
            let missing = match series.missing {
                0 => String::new(),
                n => format!(" ({n} missing, skipped)"),
            };
            out.push_str(&format!(
                "{}: {} points{missing}, {} change point(s)\n",
                series.name,
                series.values.len(),
                found.len()
            ));
            if !found.is_empty() {
                out.push_str(&format!(
                    "  {:>6}  {:>14}  {:>14}  {:>9}  {:>10}\n",
                    "row", "mean before", "mean after", "change", "p-value"
                ));
            }
            for c in found {
                out.push_str(&format!(
                    "  {:>6}  {:>14.6}  {:>14.6}  {:>+8.2}%  {:>10.3e}\n",
                    c.index,
                    c.mean_before,
                    c.mean_after,
                    c.change * 100.0,
                    c.p_value
                ));
            }
        }
    }
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
