//! Numeric series read from a file, as measurement histories really
//! come: a CSV (read with the `csv` crate: a header row, quoted fields,
//! one column per metric, text columns such as a commit beside them) or
//! a JSON array of numbers. Missing values (an empty cell, `NA`, `NaN`,
//! `null`, `-`) are skipped and every value keeps its row, so that change
//! points are reported at the file's row numbers.

use std::path::Path;

use anyhow::{bail, Context};

/// One column's values and where they were.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The column's header (`value` for a JSON array).
    pub name: String,
    /// The values present, in file order.
    pub values: Vec<f64>,
    /// For each value, its data row (0-based, the header not counted).
    pub rows: Vec<usize>,
    /// Rows with a missing value.
    pub missing: usize,
}

impl Series {
    /// The data row of the `index`-th value present.
    pub fn row_of(&self, index: usize) -> usize {
        self.rows.get(index).copied().unwrap_or(index)
    }
}

/// A column that could not be read as a series, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The column.
    pub name: String,
    /// Why, e.g. "line 7: `12ms` is not a number" (lines of the file,
    /// the header being line 1).
    pub reason: String,
}

/// The series of a file: the numeric columns, and the columns that look
/// numeric but hold something else (named, with the first bad row).
#[derive(Debug, Default)]
pub struct SeriesFile {
    /// Columns read.
    pub series: Vec<Series>,
    /// Columns refused.
    pub refused: Vec<Refused>,
}

/// What one cell holds.
enum Cell {
    Number(f64),
    Missing,
    Infinite,
    Text,
}

fn cell(text: &str) -> Cell {
    let text = text.trim();
    let missing = ["", "na", "n/a", "nan", "null", "none", "-"];
    if missing.iter().any(|m| text.eq_ignore_ascii_case(m)) {
        return Cell::Missing;
    }
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Cell::Number(v),
        Ok(v) if v.is_infinite() => Cell::Infinite,
        _ => Cell::Text,
    }
}

/// Builds columns cell by cell: a column with no number at all is text
/// (a commit, a date) and left out; one with numbers and something else
/// is refused at its first bad row.
struct ColumnBuilder {
    series: Series,
    numbers: usize,
    bad: Option<String>,
}

impl ColumnBuilder {
    fn new(name: String) -> ColumnBuilder {
        ColumnBuilder {
            series: Series {
                name,
                values: Vec::new(),
                rows: Vec::new(),
                missing: 0,
            },
            numbers: 0,
            bad: None,
        }
    }

    /// Adds the cell of data row `row`; `place` says where it is in the
    /// file (`line 12`, `element 3`) for a message.
    fn push(&mut self, row: usize, text: &str, place: impl Fn() -> String) {
        match cell(text) {
            Cell::Number(v) => {
                self.numbers += 1;
                self.series.values.push(v);
                self.series.rows.push(row);
            }
            Cell::Missing => self.series.missing += 1,
            Cell::Infinite => {
                self.numbers += 1;
                self.bad
                    .get_or_insert_with(|| format!("{}: `{}` is infinite", place(), text.trim()));
            }
            Cell::Text => {
                self.bad
                    .get_or_insert_with(|| format!("{}: `{}` is not a number", place(), text.trim()));
            }
        }
    }

    /// Adds the column to `out`: as a series, as a refused column, or
    /// not at all for a text column.
    fn finish(self, out: &mut SeriesFile) {
        match (self.numbers, self.bad) {
            (0, _) => {} // a text or empty column: not a series
            (_, Some(reason)) => out.refused.push(Refused {
                name: self.series.name,
                reason,
            }),
            (_, None) => out.series.push(self.series),
        }
    }
}

fn read_csv(text: &str) -> anyhow::Result<SeriesFile> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader.headers().context("reading the CSV header")?.clone();
    if headers.is_empty() {
        bail!("the CSV is empty: expected a header row");
    }
    let mut columns: Vec<ColumnBuilder> = headers.iter().map(|h| ColumnBuilder::new(h.to_owned())).collect();
    for (row, record) in reader.records().enumerate() {
        let record = record.map_err(|e| match e.kind() {
            csv::ErrorKind::UnequalLengths {
                pos,
                len,
                expected_len,
            } => anyhow::anyhow!(
                "line {} has {len} cells, the header {expected_len}",
                pos.as_ref().map_or(row as u64 + 2, |p| p.line())
            ),
            _ => anyhow::anyhow!("reading the CSV: {e}"),
        })?;
        let line = record.position().map_or(row as u64 + 2, |p| p.line());
        for (column, text) in columns.iter_mut().zip(record.iter()) {
            column.push(row, text, || format!("line {line}"));
        }
    }
    let mut out = SeriesFile::default();
    for column in columns {
        column.finish(&mut out);
    }
    Ok(out)
}

fn read_json(text: &str) -> anyhow::Result<SeriesFile> {
    let values: Vec<Option<f64>> =
        serde_json::from_str(text).context("expected a JSON array of numbers (null for a missing one)")?;
    let mut column = ColumnBuilder::new("value".to_owned());
    for (row, value) in values.iter().enumerate() {
        let place = || format!("element {row}");
        match value {
            Some(v) => column.push(row, &v.to_string(), place),
            None => column.push(row, "", place),
        }
    }
    let mut out = SeriesFile::default();
    column.finish(&mut out);
    Ok(out)
}

/// The series of `path` (a JSON array when it starts with `[`, else a
/// CSV), or only the column called `column`. An error when no column is
/// a series, or `column` is not one (naming what is there).
pub fn read(path: &Path, column: Option<&str>) -> anyhow::Result<SeriesFile> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut file = if text.trim_start().starts_with('[') {
        read_json(&text)?
    } else if text.trim().is_empty() {
        bail!("the CSV is empty: expected a header row");
    } else {
        read_csv(&text)?
    };
    if let Some(name) = column {
        if let Some(refused) = file.refused.iter().find(|r| r.name == name) {
            bail!("column {name:?}: {}", refused.reason);
        }
        let Some(series) = file.series.into_iter().find(|s| s.name == name) else {
            bail!("no numeric column named {name:?} in {}", path.display());
        };
        return Ok(SeriesFile {
            series: vec![series],
            refused: Vec::new(),
        });
    }
    if file.series.is_empty() {
        let why: Vec<String> = file
            .refused
            .iter()
            .map(|r| format!("{:?}: {}", r.name, r.reason))
            .collect();
        match why.is_empty() {
            true => bail!("no numeric column in {}", path.display()),
            false => bail!("no numeric column in {} ({})", path.display(), why.join("; ")),
        }
    }
    file.series.retain(|s| !s.values.is_empty());
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(text: &str) -> SeriesFile {
        read_csv(text).unwrap()
    }

    #[test]
    fn missing_cells_are_skipped_and_rows_kept() {
        let file = csv("commit,ns,rss\nabc,10,1\ndef,,2\n\"g,h\",NaN,3\nijk,12,NA\n");
        assert_eq!(file.refused, []);
        let ns = &file.series[0];
        assert_eq!(
            (ns.name.as_str(), &ns.values[..], &ns.rows[..]),
            ("ns", &[10.0, 12.0][..], &[0, 3][..])
        );
        assert_eq!(ns.missing, 2);
        assert_eq!(file.series[1].rows, [0, 1, 2], "the quoted comma is one cell");
        assert_eq!(file.series.len(), 2, "the commit column is text, not a series");
    }

    #[test]
    fn a_numeric_column_with_a_word_or_an_infinity_is_refused_at_its_row() {
        let file = csv("a,b,c\n1,1,1\n2,inf,x\n3,3,3\n");
        assert_eq!(file.series.len(), 1);
        assert_eq!(
            file.refused,
            [
                Refused {
                    name: "b".into(),
                    reason: "line 3: `inf` is infinite".into()
                },
                Refused {
                    name: "c".into(),
                    reason: "line 3: `x` is not a number".into()
                },
            ]
        );
    }

    #[test]
    fn json_nulls_are_missing_values() {
        let file = read_json("[1, null, 3]").unwrap();
        assert_eq!(file.series[0].values, [1.0, 3.0]);
        assert_eq!(file.series[0].row_of(1), 2);
    }
}
