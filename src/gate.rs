//! `flameshift gate`: fail a CI build when the candidate's profiles show a
//! function meaningfully more expensive than the baseline's, with a
//! Markdown report fit for a pull-request comment, JSON, and a
//! differential flame graph.

use std::fmt::Write as _;
use std::path::PathBuf;

use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use flameshift_detect::gate::{gate, newest_point, GateMeasure, GateReport, GateRow, GateSettings, RunCosts};
use flameshift_detect::suspects::{self, Regressed, Suspect};
use flameshift_profile::render::{self, FlameGraphOptions};
use flameshift_profile::Profile;

use crate::input::InputArgs;
use crate::output::write_output;
use crate::parse;

/// CI gate: exit 1 when the candidate's profiles show a function meaningfully more expensive than the baseline's.
#[derive(Debug, Args)]
pub struct GateArgs {
    /// Baseline profiles: files (one run each) or directories of runs.
    #[arg(long, num_args = 1.., required_unless_present = "history")]
    baseline: Vec<PathBuf>,
    /// Candidate profiles: files or directories of runs.
    #[arg(long, num_args = 1.., required_unless_present = "history")]
    candidate: Vec<PathBuf>,
    /// History mode: a CSV (header row, a column per benchmark, oldest row
    /// first) or JSON array; fail when the newest point starts a regression.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["baseline", "candidate"])]
    history: Option<PathBuf>,
    /// History mode: only this column.
    #[arg(long, requires = "history")]
    column: Option<String>,
    /// Smallest relative rise that fails the build (`2%` or `0.02`).
    #[arg(long, default_value = "2%", value_parser = parse::fraction)]
    max_regression: f64,
    /// Largest Benjamini–Hochberg q-value of a failing rise.
    #[arg(long, default_value_t = 0.01, value_parser = parse::probability)]
    significance: f64,
    /// Functions below this share of the candidate's cost are not tested.
    #[arg(long, default_value = "0.1%", value_parser = parse::fraction)]
    min_share: f64,
    /// Which cost to test.
    #[arg(long, value_enum, default_value_t = GateMetric::SelfCost)]
    metric: GateMetric,
    /// Write the Markdown report here too.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the differential flame graph (baseline → candidate) here.
    #[arg(long)]
    diff_svg: Option<PathBuf>,
    /// Rank the commits of BASE..HEAD that may have caused each
    /// regression: those that changed the function's lines (from the
    /// candidate's debug info), then a function on its call path, then
    /// its file. Needs git; the verdict and exit code do not depend on it.
    #[arg(long, value_name = "BASE..HEAD", conflicts_with = "history")]
    commits: Option<String>,
    /// The git repository of --commits (default: the current directory).
    #[arg(long, value_name = "DIR", requires = "commits")]
    repo: Option<PathBuf>,
    #[command(flatten)]
    input: InputArgs,
}

/// `--metric`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GateMetric {
    /// The function's own cost.
    #[value(name = "self")]
    SelfCost,
    /// The function and everything it calls.
    Inclusive,
    /// Both, each a test of its own.
    Both,
}

/// Runs the gate: exit 0 (pass), 1 (a regression).
pub fn run(args: GateArgs) -> anyhow::Result<ExitCode> {
    let failed = match &args.history {
        Some(path) => history(&args, path, args.column.as_deref())?,
        None => compare(&args)?,
    };
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
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

fn load_side(what: &str, paths: &[PathBuf], input: &InputArgs) -> anyhow::Result<Vec<(PathBuf, Profile)>> {
    if paths.is_empty() {
        bail!("no {what} profiles given");
    }
    runs_of(paths)?
        .into_iter()
        .map(|path| {
            let profile = input.read_one(&path)?;
            Ok((path, profile))
        })
        .collect()
}

/// History mode: judges the newest point of every column of `path` (or
/// of `column`); `Ok(true)` when one starts a regression.
fn history(options: &GateArgs, path: &std::path::Path, column: Option<&str>) -> anyhow::Result<bool> {
    let settings = GateSettings {
        max_regression: options.max_regression,
        significance: options.significance,
        ..GateSettings::default()
    };
    let mut out = String::new();
    let mut failed = Vec::new();
    let file = crate::series::read(path, column)?;
    if let Some(refused) = file.refused.first() {
        bail!("column {:?}: {}", refused.name, refused.reason);
    }
    for series in file.series {
        let (name, values) = (&series.name, &series.values);
        let Some(v) = newest_point(values, &settings) else {
            bail!(
                "{name}: {} points are too few to judge the newest one (at least 4)",
                values.len()
            );
        };
        let verdict = if v.regression { "REGRESSION" } else { "ok" };
        let drift = v
            .drift
            .map_or_else(String::new, |d| format!(", drifting {d:+.4} a row"));
        let _ = writeln!(
            out,
            "| `{name}` | {:.4} | {:.4} ± {:.4} (rows {}–{}{drift}) | {} | {:.1e} | {verdict} |",
            v.value,
            v.mean,
            v.sd,
            series.row_of(v.segment_start),
            series.row_of(values.len() - 2),
            pct(v.change),
            v.p_value
        );
        if v.regression {
            failed.push(name.clone());
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
        "{verdict}\n\n| series | newest | expected ± sd | change | p | verdict |\n|---|---|---|---|---|---|\n{out}"
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

/// Compares the runs; `Ok(true)` when the gate fails (a regression).
fn compare(options: &GateArgs) -> anyhow::Result<bool> {
    let settings = GateSettings {
        max_regression: options.max_regression,
        significance: options.significance,
        min_share: options.min_share,
        self_cost: options.metric != GateMetric::Inclusive,
        inclusive: options.metric != GateMetric::SelfCost,
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
    let (before, mut after) = (costs(&baseline)?, costs(&candidate)?);
    // With a repository: the program's own code is what its files hold
    // (libraries can carry lines too), so that a rise inside a library
    // names the repository's frame that called it.
    if options.commits.is_some() {
        let repo = options.repo.clone().unwrap_or_else(|| PathBuf::from("."));
        if let Ok(tracked) = crate::commits::tracked_files(&repo) {
            let spans = suspects::spans(candidate.iter().map(|(_, p)| p));
            for run in &mut after {
                run.with_source.retain(|function| {
                    spans
                        .get(function)
                        .is_some_and(|span| tracked.iter().any(|path| suspects::same_file(&span.file, path)))
                });
            }
        }
    }
    let report = gate(&before, &after, &settings)?;
    let unit = unit.map(|u| u.0).unwrap_or_default();
    let mut markdown = markdown(&report, &settings, &unit);
    let suspects: Option<Suspects> = options
        .commits
        .as_deref()
        .filter(|_| report.failed())
        .map(|range| {
            let repo = options.repo.clone().unwrap_or_else(|| PathBuf::from("."));
            suspect_commits(&report, candidate.iter().map(|(_, p)| p), &repo, range)
        });
    if let Some(suspects) = &suspects {
        markdown.push_str(&suspects_markdown(suspects));
    }
    if let Some(path) = &options.report {
        write_output(path, |out| Ok(out.write_all(markdown.as_bytes())?))?;
    }
    if let Some(path) = &options.json {
        let json = serde_json::to_vec_pretty(
            &serde_json::json!({ "failed": report.failed(), "unit": unit, "report": report, "suspects": suspects.as_ref().map(|s| serde_json::json!({ "range": s.range, "commits": s.commits, "notes": s.notes })) }),
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

/// The suspect commits of a failed gate, and what kept some from being
/// found.
#[derive(Debug)]
struct Suspects {
    /// `BASE..HEAD`.
    range: String,
    /// Ranked, strongest first.
    commits: Vec<Suspect>,
    /// Why the list may be short or empty.
    notes: Vec<String>,
    /// Whether git read the range (else `notes` says why not).
    read: bool,
}

/// Ranks the commits of `range` in `repo` against the report's
/// regressions; a range git cannot read gives an empty list and a note.
fn suspect_commits<'a>(
    report: &GateReport,
    candidate: impl IntoIterator<Item = &'a Profile>,
    repo: &std::path::Path,
    range: &str,
) -> Suspects {
    let mut notes = Vec::new();
    let changes = match crate::commits::read(repo, range) {
        Ok(changes) => changes,
        Err(why) => {
            return Suspects {
                range: range.to_owned(),
                commits: Vec::new(),
                notes: vec![why],
                read: false,
            }
        }
    };
    notes.extend(changes.notes);
    let spans = suspects::spans(candidate);
    let mut regressed: Vec<Regressed> = Vec::new();
    for row in &report.regressions {
        if regressed.iter().any(|r| r.function == row.function) {
            continue;
        }
        if !spans.contains_key(&row.function) {
            notes.push(format!(
                "`{}` has no source lines in the candidate's profiles (build with -g, or a profile format with lines): only its callers and file can name a suspect, and without its file none",
                row.function
            ));
        }
        // The callers holding the rise, and the program's own frame that
        // called into a library without lines (its change is the likely
        // one).
        regressed.push(Regressed {
            function: row.function.clone(),
            callers: row
                .call_path
                .as_ref()
                .map(|p| p.callers.iter().chain(&p.code).cloned().collect())
                .unwrap_or_default(),
        });
    }
    if changes.commits.is_empty() {
        notes.push(format!("{range} has no commits (merges aside)"));
    }
    Suspects {
        range: range.to_owned(),
        commits: suspects::rank(&regressed, &spans, &changes.commits),
        notes,
        read: true,
    }
}

/// The report's "Suspect commits" section.
fn suspects_markdown(suspects: &Suspects) -> String {
    let mut out = format!("\n### Suspect commits ({})\n\n", suspects.range);
    if suspects.read && suspects.commits.is_empty() {
        out.push_str("No commit of the range changed a regressed function, its callers or its file.\n");
    }
    for (i, s) in suspects.commits.iter().take(10).enumerate() {
        let _ = writeln!(
            out,
            "{}. `{}` {} — {}: {}",
            i + 1,
            s.short,
            s.title,
            s.author,
            s.describe()
        );
    }
    if suspects.commits.len() > 10 {
        let _ = writeln!(out, "\n…and {} more.", suspects.commits.len() - 10);
    }
    for note in &suspects.notes {
        let _ = writeln!(out, "\n> {note}");
    }
    out
}

/// A cost for the report: `3.07 s`, `12.3 M instructions` in the runs'
/// `kind/unit`, or a share of the samples when there is one run a side.
fn cost(value: f64, unit: &str, shares: bool) -> String {
    if shares {
        return format!("{:.2}% of samples", value * 100.0);
    }
    let (kind, unit) = unit.split_once('/').unwrap_or((unit, ""));
    flameshift_profile::units::format_quantity(value, &flameshift_profile::SampleType::new(kind, unit))
}

fn pct(x: f64) -> String {
    format!("{:+.1}%", x * 100.0)
}

/// A row's change and interval, or `new` for a function the baseline
/// did not run (a relative change would be infinite).
fn change(r: &GateRow) -> String {
    if r.new {
        "new".to_owned()
    } else {
        format!("{} [{}, {}]", pct(r.change), pct(r.low), pct(r.high))
    }
}

fn table(out: &mut String, rows: &[GateRow], unit: &str, shares: bool) {
    let _ = writeln!(
        out,
        "| function | cost | before | after | change [95% CI] | p | q |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for r in rows {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {:.1e} | {:.1e} |",
            r.function.replace('|', "\\|"),
            r.metric.as_str(),
            cost(r.before, unit, shares),
            cost(r.after, unit, shares),
            change(r),
            r.p_value,
            r.q_value
        );
    }
}

/// The Markdown report: verdict, regressions, improvements, untested.
pub fn markdown(report: &GateReport, settings: &GateSettings, unit: &str) -> String {
    let mut out = String::new();
    let [a, b] = report.runs;
    // One run a side (not exact counts): costs are shares of the samples.
    let shares = report.measure == GateMeasure::Share;
    let per = match report.measure {
        GateMeasure::PerRequest => "cost per request",
        GateMeasure::PerRun => "cost per run",
        GateMeasure::Share => "share of samples",
    };
    let mode = if report.exact {
        format!("{a} vs {b} run(s), exact counts compared as values, {per}")
    } else if a >= 2 && b >= 2 {
        format!("{a} baseline runs vs {b} candidate runs, {per}")
    } else {
        format!("{a} vs {b} run(s), {per}")
    };
    if report.failed() {
        let _ = writeln!(
            out,
            "**flameshift gate: FAIL** — {} function(s) more expensive by at least {} (q ≤ {}; {mode}; {unit}).\n",
            report.regressions.len(),
            pct(settings.max_regression).trim_start_matches('+'),
            settings.significance
        );
        table(&mut out, &report.regressions, unit, shares);
        let paths: Vec<String> = report
            .regressions
            .iter()
            .filter_map(|r| {
                let path = r.call_path.as_ref()?;
                let how = if r.new {
                    format!(
                        "new: {} → {}",
                        cost(r.before, unit, shares),
                        cost(r.after, unit, shares)
                    )
                } else {
                    pct(r.change)
                };
                Some(format!(
                    "- `{}` self {how}: {}",
                    r.function,
                    path.describe_markdown()
                ))
            })
            .collect();
        if !paths.is_empty() {
            let _ = writeln!(
                out,
                "\nWhere the rise is (the callers above the function):\n\n{}",
                paths.join("\n")
            );
        }
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
        table(&mut out, &report.improvements, unit, shares);
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
    sensitivity(&mut out, report, settings);
    out
}

/// The "could see" section: for the costliest functions, the smallest
/// rise their test would catch (80% power at the gate's q), and the runs a
/// side they would need to see the gate's threshold.
fn sensitivity(out: &mut String, report: &GateReport, settings: &GateSettings) {
    let shown: Vec<String> = report
        .sensitivity
        .iter()
        .take(10)
        .map(|s| {
            let name = s.function.as_deref().unwrap_or("(total)");
            let needs = match (s.mde, s.more_for_target) {
                (None, Some(more)) => format!("untested: needs {more} more run(s) a side"),
                (None, None) => "untested".to_owned(),
                (Some(mde), Some(more)) if more > 0 => format!(
                    "could see ≥ {}; needs {more} more run(s) a side to see {}",
                    pct(mde).trim_start_matches('+'),
                    pct(s.target).trim_start_matches('+')
                ),
                (Some(mde), _) => format!("could see ≥ {}", pct(mde).trim_start_matches('+')),
            };
            format!("- `{name}` ({}): {needs}", s.metric.as_str())
        })
        .collect();
    if shown.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\nSmallest rise each test could see (80% power at q ≤ {}), costliest first:\n\n{}",
        settings.significance,
        shown.join("\n")
    );
}
