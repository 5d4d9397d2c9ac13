//! Text reports for the terminal: the top-functions table.

use crate::units::{format_quantity, plural};
use crate::{Error, Profile, Result, TopBy};

/// Renders the `n` most expensive functions as an aligned table:
/// self and inclusive cost with their shares of the total, like
/// `go tool pprof -top` and `perf report --no-children`.
///
/// ```
/// use flameshift_profile::{format, report::top_table, TopBy};
/// let p = format::read_bytes(b"main;f 3\nmain;g 1\n", &Default::default()).unwrap();
/// let table = top_table(&p, 0, TopBy::SelfCost, 10)?;
/// assert!(table.lines().nth(1).unwrap().contains("75.00%"));
/// # Ok::<(), flameshift_profile::Error>(())
/// ```
pub fn top_table(profile: &Profile, value_index: usize, by: TopBy, n: usize) -> Result<String> {
    let ty = profile
        .sample_types
        .get(value_index)
        .ok_or_else(|| Error::NoSuchSampleType(value_index.to_string()))?;
    let total = profile.total(value_index);
    let top = profile.top_functions(value_index, by);
    let share = |v: i64| {
        if total == 0 {
            0.0
        } else {
            100.0 * v as f64 / total as f64
        }
    };
    let rows: Vec<[String; 5]> = top
        .iter()
        .take(n)
        .map(|f| {
            [
                format_quantity(f.self_value as f64, ty),
                format!("{:.2}%", share(f.self_value)),
                format_quantity(f.inclusive_value as f64, ty),
                format!("{:.2}%", share(f.inclusive_value)),
                f.name.clone(),
            ]
        })
        .collect();
    let header = ["self", "self%", "inclusive", "incl%", "function"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut push_row = |cells: &[&str]| {
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count());
                out.extend(std::iter::repeat_n(' ', pad));
                out.push_str(cell);
                out.push_str("  ");
            }
        }
        out.push('\n');
    };
    push_row(&header);
    for row in &rows {
        push_row(&row.iter().map(String::as_str).collect::<Vec<_>>());
    }
    let shown = rows.len();
    out.push_str(&format!(
        "total {} ({ty}) in {}; {shown} of {} functions shown, by {}\n",
        format_quantity(total as f64, ty),
        plural(profile.samples().len(), "sample"),
        top.len(),
        match by {
            TopBy::SelfCost => "self",
            TopBy::Inclusive => "inclusive",
        }
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_aligned_and_unknown_sample_type_is_an_error() {
        let p = crate::format::read_bytes(b"main;parse 1\nmain;a_much_longer_name 3\n", &Default::default())
            .unwrap();
        let table = top_table(&p, 0, TopBy::SelfCost, 1).unwrap();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "header, one row, total: {table}");
        assert_eq!(lines[0].find("function"), lines[1].find("a_much_longer_name"));
        assert!(lines[2].contains("1 of 3 functions shown"), "{table}");
        assert!(matches!(
            top_table(&p, 1, TopBy::SelfCost, 5),
            Err(Error::NoSuchSampleType(_))
        ));
    }
}
