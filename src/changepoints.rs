//! `flameshift changepoints FILE`: change points of the numeric series in
//! a CSV (a header row, one column per metric) or a JSON array of numbers.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use flameshift_detect::changepoint::{e_divisive, pelt, ChangePoint, EDivisive, Pelt};

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

/// Named numeric columns of a CSV text: every column whose cells all parse
/// as numbers (empty cells are refused: a series has no holes).
fn csv_columns(text: &str) -> anyhow::Result<Vec<(String, Vec<f64>)>> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> = lines
        .next()
        .context("the CSV is empty: expected a header row")?
        .split(',')
        .map(|h| h.trim().trim_matches('"').to_owned())
        .collect();
    let mut columns: Vec<(String, Vec<f64>, bool)> =
        header.into_iter().map(|h| (h, Vec::new(), true)).collect();
    for (row, line) in lines.enumerate() {
        let cells: Vec<&str> = line.split(',').collect();
        if cells.len() != columns.len() {
            bail!(
                "row {} has {} cells, the header {}",
                row + 2,
                cells.len(),
                columns.len()
            );
        }
        for (cell, column) in cells.iter().zip(columns.iter_mut()) {
            match cell.trim().trim_matches('"').parse::<f64>() {
                Ok(v) if v.is_finite() => column.1.push(v),
                _ => column.2 = false,
            }
        }
    }
    Ok(columns
        .into_iter()
        .filter(|c| c.2 && !c.1.is_empty())
        .map(|c| (c.0, c.1))
        .collect())
}

/// The numeric series of a CSV (a header row, one column per metric) or a
/// JSON array, or only the one called `column`.
pub fn read_series(input: &std::path::Path, column: Option<&str>) -> anyhow::Result<Vec<(String, Vec<f64>)>> {
    let text = std::fs::read_to_string(input).with_context(|| format!("reading {}", input.display()))?;
    let all = if text.trim_start().starts_with('[') {
        let values: Vec<f64> = serde_json::from_str(&text).context("expected a JSON array of numbers")?;
        vec![("value".to_owned(), values)]
    } else {
        csv_columns(&text)?
    };
    if all.is_empty() {
        bail!("no numeric column in {}", input.display());
    }
    match column {
        None => Ok(all),
        Some(name) => match all.into_iter().find(|(n, _)| n == name) {
            Some(column) => Ok(vec![column]),
            None => bail!("no numeric column named {name:?}"),
        },
    }
}

/// Prints the change points of each series; exit status is always 0 on
/// success (finding change points is not an error).
pub fn run(options: ChangepointsArgs) -> anyhow::Result<ExitCode> {
    let mut results: Vec<(String, usize, Vec<ChangePoint>)> = Vec::new();
    for (name, values) in read_series(&options.file, options.column.as_deref())? {
        let found = match options.method {
            Method::EDivisive => e_divisive(
                &values,
                &EDivisive {
                    max_p_value: options.max_p_value,
                    ..EDivisive::default()
                },
            ),
            Method::Pelt => pelt(&values, &Pelt::default()),
        };
        results.push((name, values.len(), found));
    }
    let mut out = String::new();
    if options.json {
        let json: Vec<serde_json::Value> = results
            .iter()
            .map(|(name, n, found)| serde_json::json!({"column": name, "points": n, "change_points": found}))
            .collect();
        out = serde_json::to_string_pretty(&json)? + "\n";
    } else {
        for (name, n, found) in &results {
            out.push_str(&format!("{name}: {n} points, {} change point(s)\n", found.len()));
            if !found.is_empty() {
                out.push_str(&format!(
                    "  {:>6}  {:>14}  {:>14}  {:>9}  {:>10}\n",
                    "index", "mean before", "mean after", "change", "p-value"
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
    Ok(ExitCode::SUCCESS)
}
