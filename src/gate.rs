//! `flameshift gate`: fail a CI build when the candidate's profiles show a
//! function meaningfully more expensive than the baseline's, with a
//! Markdown report fit for a pull-request comment, JSON, and a
//! differential flame graph.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Context};
use flameshift_analyzer::detect::gate::{gate, newest_point, GateReport, GateRow, GateSettings, RunCosts};
use flameshift_profile::render::{self, FlameGraphOptions};
use flameshift_profile::Profile;

use crate::commands::{read_one, write_output, InputConfig};

/// What the command line said.
pub struct GateOptions {
    pub baseline: Vec<PathBuf>,
    pub candidate: Vec<PathBuf>,
    pub max_regression: String,
    pub significance: f64,
    pub min_share: String,
    pub metric: String,
    pub report: Option<PathBuf>,
    pub json: Option<PathBuf>,
    pub diff_svg: Option<PathBuf>,
    pub input: InputConfig,
}

/// `2%` → 0.02; `0.02` → 0.02.
pub fn parse_fraction(what: &str, text: &str) -> anyhow::Result<f64> {
    let value = match text.strip_suffix('%') {
        Some(pct) => pct.trim().parse::<f64>().map(|v| v / 100.0),
        None => text.trim().parse::<f64>(),
    }
    .ok()
    .filter(|v| v.is_finite() && *v >= 0.0)
    .with_context(|| format!("{what} {text:?} is not a percentage such as 2% or a fraction such as 0.02"))?;
    Ok(value)
}

/// The profile files of `paths`: files as given, directories' regular
/// files in name order.
fn runs_of(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            files.sort();
            if files.is_empty() {
                bail!("{} has no profile files", path.display());
            }
            out.extend(files);
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

fn load_side(what: &str, paths: &[PathBuf], input: &InputConfig) -> anyhow::Result<Vec<(PathBuf, Profile)>> {
    if paths.is_empty() {
        bail!("no {what} profiles given");
    }
    runs_of(paths)?
        .into_iter()
        .map(|path| {
            let profile = read_one(&path, input)?;
            Ok((path, profile))
        })
        .collect()
}

/// History mode: judges the newest point of every column of `path` (or
/// of `column`); `Ok(true)` when one starts a regression.
pub fn history(options: &GateOptions, path: &std::path::Path, column: Option<&str>) -> anyhow::Result<bool> {
    let settings = GateSettings {
        max_regression: parse_fraction("--max-regression", &options.max_regression)?,
        significance: options.significance,
        ..GateSettings::default()
    };
    let mut out = String::new();
    let mut failed = Vec::new();
    for (name, values) in crate::changepoints::read_series(path, column)? {
        let Some(v) = newest_point(&values, &settings) else {
            bail!(
                "{name}: {} points are too few to judge the newest one (at least 4)",
                values.len()
            );
        };
        let verdict = if v.regression { "REGRESSION" } else { "ok" };
        let _ = writeln!(
            out,
            "| `{name}` | {:.4} | {:.4} ± {:.4} (points {}–{}) | {} | {:.1e} | {verdict} |",
            v.value,
            v.mean,
            v.sd,
            v.segment_start,
            values.len() - 2,
            pct(v.change),
            v.p_value
        );
        if v.regression {
            failed.push(name);
        }
    }
    let verdict = if failed.is_empty() {
        "**flameshift gate: pass** — the newest point of every series is in line with its history.".to_owned()
    } else {
        format!(
            "**flameshift gate: FAIL** — the newest point starts a regression in {}.",
            failed
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let markdown = format!(
        "{verdict}\n\n| series | newest | segment mean ± sd | change | p | verdict |\n|---|---|---|---|---|---|\n{out}"
    );
    if let Some(report) = &options.report {
        write_output(report, |w| Ok(w.write_all(markdown.as_bytes())?))?;
    }
    #[allow(clippy::print_stdout, reason = "the report is the command's output")]
    {
        println!("{markdown}");
    }
    Ok(!failed.is_empty())
}

/// Runs the gate; `Ok(true)` when it fails (a regression).
pub fn run(options: &GateOptions) -> anyhow::Result<bool> {
    let settings = GateSettings {
        max_regression: parse_fraction("--max-regression", &options.max_regression)?,
        significance: options.significance,
        min_share: parse_fraction("--min-share", &options.min_share)?,
        self_cost: options.metric != "inclusive",
        inclusive: options.metric != "self",
        ..GateSettings::default()
    };
    let baseline = load_side("baseline", &options.baseline, &options.input)?;
    let candidate = load_side("candidate", &options.candidate, &options.input)?;
    // Every run in the same sample type and unit.
    let mut unit: Option<(String, PathBuf)> = None;
    let mut costs = |runs: &[(PathBuf, Profile)]| -> anyhow::Result<Vec<RunCosts>> {
        runs.iter()
            .map(|(path, profile)| {
                let index = profile.sample_type_index(options.input.sample_type.as_deref())?;
                let ty = &profile.sample_types[index];
                let this = format!("{}/{}", ty.kind, ty.unit);
                match &unit {
                    Some((first, at)) if *first != this => bail!(
                        "mismatched units: {} is in {first}, {} in {this}; compare like with like (--sample-type)",
                        at.display(),
                        path.display()
                    ),
                    Some(_) => {}
                    None => unit = Some((this, path.clone())),
                }
                Ok(RunCosts::from_profile(profile, index))
            })
            .collect()
    };
    let (before, after) = (costs(&baseline)?, costs(&candidate)?);
    let report = gate(&before, &after, &settings)?;
    let unit = unit.map(|u| u.0).unwrap_or_default();
    let markdown = markdown(&report, &settings, &unit);
    if let Some(path) = &options.report {
        write_output(path, |out| Ok(out.write_all(markdown.as_bytes())?))?;
    }
    if let Some(path) = &options.json {
        let json = serde_json::to_vec_pretty(
            &serde_json::json!({ "failed": report.failed(), "unit": unit, "report": report }),
        )?;
        write_output(path, |out| Ok(out.write_all(&json)?))?;
    }
    if let Some(path) = &options.diff_svg {
        let merge = |runs: &[(PathBuf, Profile)]| -> anyhow::Result<Profile> {
            let mut merged = runs[0].1.clone();
            for (path, p) in &runs[1..] {
                merged
                    .merge(p)
                    .with_context(|| format!("merging {}", path.display()))?;
            }
            Ok(merged)
        };
        let (base, cand) = (merge(&baseline)?, merge(&candidate)?);
        let options = FlameGraphOptions {
            title: Some("flameshift gate: baseline → candidate".to_owned()),
            value_index: Some(cand.sample_type_index(options.input.sample_type.as_deref())?),
            ..FlameGraphOptions::default()
        };
        write_output(path, |out| {
            Ok(render::diff_flamegraph(&base, &cand, &options, out)?)
        })?;
    }
    #[allow(clippy::print_stdout, reason = "the report is the command's output")]
    {
        println!("{markdown}");
    }
    Ok(report.failed())
}

fn pct(x: f64) -> String {
    format!("{:+.1}%", x * 100.0)
}

fn table(out: &mut String, rows: &[GateRow]) {
    let _ = writeln!(
        out,
        "| function | cost | before | after | change [95% CI] | p | q |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for r in rows {
        let _ = writeln!(
            out,
            "| `{}` | {} | {:.4} | {:.4} | {} [{}, {}] | {:.1e} | {:.1e} |",
            r.function.replace('|', "\\|"),
            r.metric.as_str(),
            r.before,
            r.after,
            pct(r.change),
            pct(r.low),
            pct(r.high),
            r.p_value,
            r.q_value
        );
    }
}

/// The Markdown report: verdict, regressions, improvements, untested.
pub fn markdown(report: &GateReport, settings: &GateSettings, unit: &str) -> String {
    let mut out = String::new();
    let [a, b] = report.runs;
    let mode = if report.exact {
        format!("{a} vs {b} run(s), exact counts compared as values")
    } else if a >= 2 && b >= 2 {
        format!("{a} baseline runs vs {b} candidate runs, cost per run")
    } else {
        format!("{a} vs {b} run(s), share of samples")
    };
    if report.failed() {
        let _ = writeln!(
            out,
            "**flameshift gate: FAIL** — {} function(s) more expensive by at least {} (q ≤ {}; {mode}; {unit}).\n",
            report.regressions.len(),
            pct(settings.max_regression).trim_start_matches('+'),
            settings.significance
        );
        table(&mut out, &report.regressions);
    } else {
        let _ = writeln!(
            out,
            "**flameshift gate: pass** — no function more expensive by {} or more at q ≤ {} ({} tested; {mode}; {unit}).",
            pct(settings.max_regression).trim_start_matches('+'),
            settings.significance,
            report.tests
        );
    }
    if !report.improvements.is_empty() {
        let _ = writeln!(out, "\nImprovements:\n");
        table(&mut out, &report.improvements);
    }
    if !report.untested.is_empty() {
        let shown: Vec<String> = report
            .untested
            .iter()
            .take(10)
            .map(|f| format!("`{f}`"))
            .collect();
        let more = report.untested.len().saturating_sub(10);
        let _ = writeln!(
            out,
            "\nNot tested for lack of samples: {}{}.",
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        );
    }
    out
}
