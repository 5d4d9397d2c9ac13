//! Flame graphs, icicle graphs and differential flame graphs as SVG,
//! drawn by inferno (search with Ctrl-F, click to zoom, as inferno provides).
//!
//! Values are shown in units people read: time profiles are displayed in
//! µs or ms, other units keep their name (`instructions`, `samples`); the
//! subtitle gives the total in short form (`12.3 M instructions`).

use std::io::Write;

use inferno::flamegraph::{self, Direction};

use crate::ops::FoldOptions;
use crate::units::{format_quantity, nanoseconds_per_unit, plural};
use crate::{Error, Profile, Result, SampleType};

/// What to draw.
#[derive(Debug, Clone, Default)]
pub struct FlameGraphOptions {
    /// Title; a default that names the kind of graph when `None`.
    pub title: Option<String>,
    /// Draw an icicle graph (root at the top).
    pub inverted: bool,
    /// Which sample type to draw; the profile's default when `None`.
    pub value_index: Option<usize>,
    /// Prepend this label's value as a root frame (e.g. `thread`).
    pub root_label: Option<String>,
}

/// How counts are displayed: inferno shows `round(count × factor)` `name`s.
struct DisplayUnit {
    name: String,
    factor: f64,
}

fn display_unit(ty: &SampleType, total: i64) -> DisplayUnit {
    if let Some(ns) = nanoseconds_per_unit(&ty.unit) {
        let total_ns = total as f64 * ns;
        let (name, per) = if total_ns >= 10e9 {
            ("ms", 1e6)
        } else {
            ("µs", 1e3)
        };
        return DisplayUnit {
            name: name.into(),
            factor: ns / per,
        };
    }
    let name = match ty.unit.as_str() {
        "count" | "" => ty.kind.clone(),
        unit => unit.to_owned(),
    };
    DisplayUnit { name, factor: 1.0 }
}

fn base_options(
    title: String,
    subtitle: String,
    unit: &DisplayUnit,
    inverted: bool,
) -> flamegraph::Options<'static> {
    let mut options = flamegraph::Options::default();
    options.title = title;
    options.subtitle = Some(subtitle);
    options.count_name = unit.name.clone();
    options.factor = unit.factor;
    // Colours from an FNV hash of the name: stable across runs and
    // machines, so two graphs can be compared by eye. (inferno's `hash`
    // mode costs ~20% more on large graphs for a similar effect.)
    options.deterministic = true;
    if inverted {
        options.direction = Direction::Inverted;
    }
    options
}

fn value_type(profile: &Profile, index: Option<usize>) -> Result<(usize, SampleType)> {
    let index = index.unwrap_or_else(|| profile.default_value_index());
    let ty = profile
        .sample_types
        .get(index)
        .cloned()
        .ok_or_else(|| Error::NoSuchSampleType(index.to_string()))?;
    Ok((index, ty))
}

/// Draws a flame graph (or icicle graph) of `profile`.
pub fn flamegraph(profile: &Profile, options: &FlameGraphOptions, out: &mut dyn Write) -> Result<()> {
    let (index, ty) = value_type(profile, options.value_index)?;
    // `from_lines` wants its lines sorted; `fold_sorted` gives them so.
    let folded = profile.fold_sorted(&FoldOptions {
        value_index: index,
        root_label: options.root_label.clone(),
    });
    let lines: Vec<String> = folded
        .into_iter()
        .filter(|&(_, v)| v > 0)
        .map(|(mut stack, v)| {
            use std::fmt::Write as _;
            let _ = write!(stack, " {v}");
            stack
        })
        .collect();
    if lines.is_empty() {
        return Err(Error::Render(format!(
            "the profile has no positive {ty} values to draw"
        )));
    }
    let total = profile.total(index);
    let unit = display_unit(&ty, total);
    let subtitle = subtitle_for(&ty, total, profile.samples().len());
    let mut opts = base_options(title_for(options), subtitle, &unit, options.inverted);
    flamegraph::from_lines(&mut opts, lines.iter().map(String::as_str), out)
        .map_err(|e| Error::Render(e.to_string()))
}

/// Draws a flame graph straight from folded-stack text, the way
/// `inferno-flamegraph` does, without building a [`Profile`]: for a
/// single folded file with no filter this is the same picture as
/// [`flamegraph`] of the parsed profile, at inferno's speed. Every line is
/// still checked, and a bad one is an error naming its line number.
pub fn flamegraph_from_folded(text: &[u8], options: &FlameGraphOptions, out: &mut dyn Write) -> Result<()> {
    use crate::format::folded::parse_line;
    // Valid UTF-8 is borrowed as it is; anything else is repaired once.
    let text = match std::str::from_utf8(text) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(text),
    };
    let mut lines: Vec<&str> = Vec::new();
    let (mut total, mut samples) = (0i64, 0usize);
    for (index, raw) in crate::format::str_lines(&text).enumerate() {
        let Some((_, count)) = parse_line(index, raw.as_bytes())? else {
            continue;
        };
        samples += 1;
        total = total.saturating_add(count);
        if count > 0 {
            lines.push(raw.trim_end());
        }
    }
    let ty = crate::format::folded::folded_sample_type();
    if lines.is_empty() {
        return Err(Error::Render(format!(
            "the profile has no positive {ty} values to draw"
        )));
    }
    lines.sort_unstable();
    let unit = display_unit(&ty, total);
    let subtitle = subtitle_for(&ty, total, samples);
    let mut opts = base_options(title_for(options), subtitle, &unit, options.inverted);
    flamegraph::from_lines(&mut opts, lines, out).map_err(|e| Error::Render(e.to_string()))
}

fn title_for(options: &FlameGraphOptions) -> String {
    let default_title = if options.inverted {
        "Icicle Graph"
    } else {
        "Flame Graph"
    };
    options.title.clone().unwrap_or_else(|| default_title.into())
}

fn subtitle_for(ty: &SampleType, total: i64, samples: usize) -> String {
    format!(
        "{ty}: {} in {}",
        format_quantity(total as f64, ty),
        plural(samples, "sample")
    )
}

/// Draws a differential flame graph: frame widths are the candidate's,
/// colours the change from the base (red: grew, blue: shrank), with the
/// base scaled to the candidate's total so that a longer run is not a
/// regression.
pub fn diff_flamegraph(
    base: &Profile,
    candidate: &Profile,
    options: &FlameGraphOptions,
    out: &mut dyn Write,
) -> Result<()> {
    let (cand_index, ty) = value_type(candidate, options.value_index)?;
    let base_index =
        base.sample_types
            .iter()
            .position(|t| *t == ty)
            .ok_or_else(|| Error::MismatchedUnits {
                left: base
                    .sample_types
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                right: ty.to_string(),
            })?;
    let fold = |p: &Profile, value_index| {
        p.fold(&FoldOptions {
            value_index,
            root_label: options.root_label.clone(),
        })
    };
    let before = fold(base, base_index);
    let after = fold(candidate, cand_index);
    let (base_total, cand_total) = (base.total(base_index), candidate.total(cand_index));
    if cand_total <= 0 {
        return Err(Error::Render(format!(
            "the candidate profile has no positive {ty} values to draw"
        )));
    }
    let scale = if base_total > 0 {
        cand_total as f64 / base_total as f64
    } else {
        1.0
    };
    let mut stacks: std::collections::BTreeMap<&str, (i64, i64)> = Default::default();
    for (stack, &v) in &before {
        stacks.entry(stack).or_default().0 = (v as f64 * scale).round() as i64;
    }
    for (stack, &v) in &after {
        stacks.entry(stack).or_default().1 = v;
    }
    let lines: Vec<String> = stacks
        .iter()
        .filter(|(_, (b, a))| *b > 0 || *a > 0)
        .map(|(s, (b, a))| format!("{s} {} {}", b.max(&0), a.max(&0)))
        .collect();
    let unit = display_unit(&ty, cand_total);
    let title = options
        .title
        .clone()
        .unwrap_or_else(|| "Differential Flame Graph".into());
    let subtitle = format!(
        "{ty}: base {} → candidate {} (base scaled ×{scale:.3} to the same total); red grew, blue shrank",
        format_quantity(base_total as f64, &ty),
        format_quantity(cand_total as f64, &ty),
    );
    let mut opts = base_options(title, subtitle, &unit, options.inverted);
    flamegraph::from_lines(&mut opts, lines.iter().map(String::as_str), out)
        .map_err(|e| Error::Render(e.to_string()))
}
