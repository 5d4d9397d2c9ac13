//! `flameshift changepoints FILE`: change points of the numeric series in
//! a CSV (a header row, one column per metric) or a JSON array of numbers.

use std::path::PathBuf;

use anyhow::{bail, Context};
use flameshift_analyzer::detect::changepoint::{e_divisive, pelt, ChangePoint, EDivisive, Pelt};

/// What the command line said.
pub struct ChangepointOptions {
    pub input: PathBuf,
    pub column: Option<String>,
    pub json: bool,
    pub method: String,
    pub max_p_value: f64,
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

fn series(options: &ChangepointOptions) -> anyhow::Result<Vec<(String, Vec<f64>)>> {
    read_series(&options.input, options.column.as_deref())
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
pub fn run(options: &ChangepointOptions) -> anyhow::Result<()> {
    if !(options.max_p_value > 0.0 && options.max_p_value < 1.0) {
        bail!("--max-p-value must be between 0 and 1");
    }
    let mut results: Vec<(String, usize, Vec<ChangePoint>)> = Vec::new();
    for (name, values) in series(options)? {
        let found = match options.method.as_str() {
            "e-divisive" => e_divisive(
                &values,
                &EDivisive {
                    max_p_value: options.max_p_value,
                    ..EDivisive::default()
                },
            ),
            "pelt" => pelt(&values, &Pelt::default()),
            other => bail!("unknown method {other:?}"),
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
    Ok(())
}
