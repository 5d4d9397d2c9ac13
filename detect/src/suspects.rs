//! From a regression to the commits that may have caused it.
//!
//! Each regressed function has source lines in the candidate's profiles
//! (the lines its samples fell on, from debug info, and up to 20 lines
//! above the first of them: its declaration and set-up). Each commit of the
//! range has the lines it left in the candidate's source (what `git
//! blame` attributes to it) and the files it touched. A commit is a
//! suspect of a regressed function when it changed, in order of
//! strength:
//!
//! 1. lines inside the function's span ([`Tier::InFunction`]);
//! 2. lines inside the span of a function on its call path (a caller
//!    that started calling it more: [`Tier::OnCallPath`]);
//! 3. anything else in the function's file ([`Tier::SameFile`]).
//!
//! Suspects are ranked by their strongest tier, then by how many
//! regressed functions they are suspects of at that tier, then by how
//! near their change is to the function's sampled lines (inside them
//! first, then the closest above), then by how many of those functions'
//! lines they changed, then newest first.
//!
//! ```
//! use flameshift_detect::suspects::{rank, Commit, FileChange, Regressed, SourceSpan};
//! use std::collections::HashMap;
//! let spans = HashMap::from([("parse".to_owned(), SourceSpan { file: "/src/app/parse.c".into(), first: 10, last: 20 })]);
//! let commits = vec![
//!     Commit { sha: "a1".into(), short: "a1".into(), title: "docs".into(), author: "A".into(),
//!              files: vec![FileChange { path: "README".into(), lines: vec![(1, 3)] }] },
//!     Commit { sha: "b2".into(), short: "b2".into(), title: "parse twice".into(), author: "B".into(),
//!              files: vec![FileChange { path: "parse.c".into(), lines: vec![(12, 12)] }] },
//! ];
//! let regressed = [Regressed { function: "parse".into(), callers: vec![] }];
//! let suspects = rank(&regressed, &spans, &commits);
//! assert_eq!(suspects[0].short, "b2");
//! assert_eq!(suspects.len(), 1);
//! ```

use std::collections::HashMap;

use flameshift_profile::Profile;
use serde::{Deserialize, Serialize};

pub use flameshift_profile::wire::{Commit, FileChange};

/// Where a function's code is, from the candidate's debug info.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSpan {
    /// The file as the profile names it (often an absolute build path).
    pub file: String,
    /// Its first and last line with samples.
    pub first: u32,
    /// Last line.
    pub last: u32,
}

/// A regressed function and its call path (nearest caller first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regressed {
    /// The function.
    pub function: String,
    /// The callers its rise concentrates under.
    pub callers: Vec<String>,
}

/// How strongly a commit is tied to a regressed function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// It changed lines inside the function.
    InFunction,
    /// It changed lines inside a function on its call path.
    OnCallPath,
    /// It changed the function's file elsewhere.
    SameFile,
}

/// Why a commit is a suspect of one regressed function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// The regressed function.
    pub function: String,
    /// How.
    pub tier: Tier,
    /// The function whose lines it changed (the regressed one, or its
    /// caller for [`Tier::OnCallPath`]); the file for [`Tier::SameFile`].
    pub changed: String,
    /// The changed lines (`file:first–last`), or the file.
    pub at: String,
    /// How many of the function's lines it changed.
    pub lines: u32,
    /// How far above the function's first sampled line the change is (0:
    /// among its sampled lines): a change closer to where the time goes
    /// is the likelier cause.
    pub distance: u32,
}

/// A suspect commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspect {
    /// Full SHA.
    pub sha: String,
    /// Short SHA.
    pub short: String,
    /// Title.
    pub title: String,
    /// Author.
    pub author: String,
    /// Its strongest tie.
    pub tier: Tier,
    /// Each regressed function it may explain.
    pub reasons: Vec<Reason>,
}

impl Suspect {
    /// "changed lines of `parse` (parse.c:12)" and the like, joined.
    pub fn describe(&self) -> String {
        self.reasons
            .iter()
            .map(|r| match r.tier {
                Tier::InFunction => format!("changed `{}` ({})", r.function, r.at),
                Tier::OnCallPath => {
                    format!("changed `{}`, which calls `{}` ({})", r.changed, r.function, r.at)
                }
                Tier::SameFile => format!("changed `{}`'s file elsewhere ({})", r.function, r.at),
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Whether a file as a profile names it (`/build/src/parse.c`) is the
/// repository's `path` (`src/parse.c`).
pub fn same_file(profile_file: &str, path: &str) -> bool {
    !path.is_empty()
        && (profile_file == path
            || profile_file
                .strip_suffix(path)
                .is_some_and(|head| head.ends_with('/')))
}

/// Each function's source span in one profile, from its frames (each
/// distinct location once, not weighted by samples): the file most of
/// its frames name, and their first and last line. What the analyzer
/// keeps of each upload. Functions without line info are absent.
pub fn frame_spans(profile: &Profile) -> HashMap<String, SourceSpan> {
    let mut seen = FramesSeen::new();
    for id in 0..profile.frames.len() {
        count_frame(&mut seen, profile, flameshift_profile::FrameId(id as u32));
    }
    dominant_files(seen)
}

/// Function → file → (frames, first line, last line).
type FramesSeen = HashMap<String, HashMap<String, (u64, u32, u32)>>;

/// Counts one frame with a file and a line into `seen`; others are
/// skipped.
fn count_frame(seen: &mut FramesSeen, profile: &Profile, frame_id: flameshift_profile::FrameId) {
    let frame = profile.frame(frame_id);
    let file = profile.str(frame.file);
    if frame.line == 0 || file.is_empty() {
        return;
    }
    let entry = seen
        .entry(profile.frame_name(frame_id).into_owned())
        .or_default()
        .entry(file.to_owned())
        .or_insert((0, u32::MAX, 0));
    entry.0 += 1;
    entry.1 = entry.1.min(frame.line);
    entry.2 = entry.2.max(frame.line);
}

/// Each function's span in its most named file (ties: the first path).
fn dominant_files(seen: FramesSeen) -> HashMap<String, SourceSpan> {
    seen.into_iter()
        .filter_map(|(function, files)| {
            let (file, (_, first, last)) = files
                .into_iter()
                .max_by(|a, b| a.1 .0.cmp(&b.1 .0).then_with(|| b.0.cmp(&a.0)))?;
            Some((function, SourceSpan { file, first, last }))
        })
        .collect()
}

impl SourceSpan {
    /// This span and `other` as one, if they are of the same file.
    pub fn union(&self, other: &SourceSpan) -> Option<SourceSpan> {
        (self.file == other.file).then(|| SourceSpan {
            file: self.file.clone(),
            first: self.first.min(other.first),
            last: self.last.max(other.last),
        })
    }
}

/// Each function's source span in `profiles`: the file most of its
/// frames name, and the first and last line of those frames. Functions
/// without line info are absent.
pub fn spans<'a>(profiles: impl IntoIterator<Item = &'a Profile>) -> HashMap<String, SourceSpan> {
    let mut seen = FramesSeen::new();
    for profile in profiles {
        for sample in profile.samples() {
            for &frame_id in profile.stack(sample.stack) {
                count_frame(&mut seen, profile, frame_id);
            }
        }
    }
    dominant_files(seen)
}

/// How many lines of `ranges` fall in `first..=last`, and the first and
/// last of them.
pub fn overlap(ranges: &[(u32, u32)], first: u32, last: u32) -> Option<(u32, u32, u32)> {
    let mut count = 0;
    let mut span = (u32::MAX, 0);
    for &(a, b) in ranges {
        let (lo, hi) = (a.max(first), b.min(last));
        if lo <= hi {
            count += hi - lo + 1;
            span = (span.0.min(lo), span.1.max(hi));
        }
    }
    (count > 0).then_some((count, span.0, span.1))
}

/// The base name of a path, for `at`.
fn base(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// How far above its first sampled line a function's span reaches (its
/// declaration and the set-up code that ran too briefly to be sampled),
/// never into the function before it.
const REACH_UP: u32 = 20;

/// Each span reaching up to [`REACH_UP`] lines above its first sampled
/// line, stopping after the last line of the nearest function above it
/// in the same file.
fn reach_up(spans: &HashMap<String, SourceSpan>) -> HashMap<String, SourceSpan> {
    spans
        .iter()
        .map(|(name, span)| {
            let above = spans
                .values()
                .filter(|other| other.file == span.file && other.last < span.first)
                .map(|other| other.last)
                .max()
                .unwrap_or(0);
            let first = span.first.saturating_sub(REACH_UP).max(above + 1).max(1);
            (
                name.clone(),
                SourceSpan {
                    first,
                    ..span.clone()
                },
            )
        })
        .collect()
}

/// The suspects of `regressed` among `commits` (oldest first, as `git
/// log --reverse` lists them), ranked.
pub fn rank(
    regressed: &[Regressed],
    sampled: &HashMap<String, SourceSpan>,
    commits: &[Commit],
) -> Vec<Suspect> {
    let spans = &reach_up(sampled);
    let mut suspects: Vec<(usize, Suspect)> = Vec::new();
    for (order, commit) in commits.iter().enumerate() {
        let mut reasons: Vec<Reason> = Vec::new();
        for r in regressed {
            // Without line info of its own, a function can still be
            // explained by a change in a caller on its call path.
            let span = spans.get(&r.function);
            // The lines changed in a span: how many, where, how far above
            // the first sampled line.
            let in_span = |span: &SourceSpan, first_sampled: u32| -> Option<(u32, String, u32)> {
                commit.files.iter().find_map(|f| {
                    if !same_file(&span.file, &f.path) {
                        return None;
                    }
                    let (count, lo, hi) = overlap(&f.lines, span.first, span.last)?;
                    let at = if lo == hi {
                        format!("{}:{lo}", base(&f.path))
                    } else {
                        format!("{}:{lo}–{hi}", base(&f.path))
                    };
                    Some((count, at, first_sampled.saturating_sub(hi)))
                })
            };
            let first_sampled = |name: &str| sampled.get(name).map_or(0, |s| s.first);
            let reason = if let Some((lines, at, distance)) =
                span.and_then(|span| in_span(span, first_sampled(&r.function)))
            {
                Some(Reason {
                    function: r.function.clone(),
                    tier: Tier::InFunction,
                    changed: r.function.clone(),
                    at,
                    lines,
                    distance,
                })
            } else if let Some((caller, (lines, at, distance))) = r.callers.iter().find_map(|caller| {
                let span = spans.get(caller)?;
                Some((caller, in_span(span, first_sampled(caller))?))
            }) {
                Some(Reason {
                    function: r.function.clone(),
                    tier: Tier::OnCallPath,
                    changed: caller.clone(),
                    at,
                    lines,
                    distance,
                })
            } else {
                span.and_then(|span| commit.files.iter().find(|f| same_file(&span.file, &f.path)))
                    .map(|f| Reason {
                        function: r.function.clone(),
                        tier: Tier::SameFile,
                        changed: f.path.clone(),
                        at: base(&f.path).to_owned(),
                        lines: 0,
                        distance: u32::MAX,
                    })
            };
            reasons.extend(reason);
        }
        if let Some(tier) = reasons.iter().map(|r| r.tier).min() {
            reasons.sort_by_key(|r| r.tier);
            suspects.push((
                order,
                Suspect {
                    sha: commit.sha.clone(),
                    short: commit.short.clone(),
                    title: commit.title.clone(),
                    author: commit.author.clone(),
                    tier,
                    reasons,
                },
            ));
        }
    }
    // More functions explained, then nearer to where the time goes, then
    // more of their lines changed.
    let strength = |s: &Suspect| {
        let at_tier: Vec<&Reason> = s.reasons.iter().filter(|r| r.tier == s.tier).collect();
        let nearest = at_tier.iter().map(|r| r.distance).min().unwrap_or(u32::MAX);
        (
            at_tier.len(),
            std::cmp::Reverse(nearest),
            at_tier.iter().map(|r| r.lines).sum::<u32>(),
        )
    };
    suspects.sort_by(|(order_a, a), (order_b, b)| {
        a.tier
            .cmp(&b.tier)
            .then_with(|| strength(b).cmp(&strength(a)))
            .then_with(|| order_b.cmp(order_a))
    });
    suspects.into_iter().map(|(_, s)| s).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(short: &str, files: &[(&str, &[(u32, u32)])]) -> Commit {
        Commit {
            sha: format!("{short}000"),
            short: short.to_owned(),
            title: format!("commit {short}"),
            author: "A <a@example.com>".to_owned(),
            files: files
                .iter()
                .map(|(path, lines)| FileChange {
                    path: (*path).to_owned(),
                    lines: lines.to_vec(),
                })
                .collect(),
        }
    }

    fn spans() -> HashMap<String, SourceSpan> {
        let span = |file: &str, first, last| SourceSpan {
            file: file.to_owned(),
            first,
            last,
        };
        HashMap::from([
            ("sort_items".to_owned(), span("/build/src/sort.c", 10, 30)),
            ("render".to_owned(), span("/build/src/render.c", 5, 25)),
            ("main".to_owned(), span("/build/src/main.c", 3, 40)),
        ])
    }

    #[test]
    fn a_change_inside_the_function_beats_its_caller_and_its_file() {
        let commits = vec![
            commit("c1", &[("src/sort.c", &[(40, 45)])]),
            commit("c2", &[("src/sort.c", &[(12, 14)])]),
            commit("c3", &[("src/main.c", &[(20, 20)])]),
            commit("c4", &[("README.md", &[(1, 2)])]),
        ];
        let regressed = [Regressed {
            function: "sort_items".into(),
            callers: vec!["main".into()],
        }];
        let suspects = rank(&regressed, &spans(), &commits);
        let order: Vec<(&str, Tier)> = suspects.iter().map(|s| (s.short.as_str(), s.tier)).collect();
        assert_eq!(
            order,
            [
                ("c2", Tier::InFunction),
                ("c3", Tier::OnCallPath),
                ("c1", Tier::SameFile)
            ]
        );
        assert_eq!(suspects[0].reasons[0].at, "sort.c:12–14");
        assert_eq!(suspects[0].describe(), "changed `sort_items` (sort.c:12–14)");
        assert!(suspects[1]
            .describe()
            .contains("`main`, which calls `sort_items`"));
    }

    #[test]
    fn ties_go_to_more_functions_then_more_lines_then_the_newest() {
        let regressed = [
            Regressed {
                function: "sort_items".into(),
                callers: vec![],
            },
            Regressed {
                function: "render".into(),
                callers: vec![],
            },
        ];
        let commits = vec![
            commit("old", &[("src/sort.c", &[(11, 11)])]),
            commit(
                "both",
                &[("src/sort.c", &[(11, 11)]), ("src/render.c", &[(6, 6)])],
            ),
            commit("many", &[("src/sort.c", &[(11, 20)])]),
            commit("new", &[("src/sort.c", &[(11, 11)])]),
        ];
        let order: Vec<String> = rank(&regressed, &spans(), &commits)
            .into_iter()
            .map(|s| s.short)
            .collect();
        assert_eq!(order, ["both", "many", "new", "old"]);
    }

    #[test]
    fn a_span_reaches_up_to_its_declaration_not_into_the_function_above() {
        let spans = HashMap::from([
            (
                "a".to_owned(),
                SourceSpan {
                    file: "x.c".into(),
                    first: 3,
                    last: 8,
                },
            ),
            (
                "b".to_owned(),
                SourceSpan {
                    file: "x.c".into(),
                    first: 14,
                    last: 15,
                },
            ),
            (
                "c".to_owned(),
                SourceSpan {
                    file: "x.c".into(),
                    first: 60,
                    last: 61,
                },
            ),
        ]);
        let reached = reach_up(&spans);
        assert_eq!(
            (reached["a"].first, reached["b"].first, reached["c"].first),
            (1, 9, 40)
        );
        // A change on b's unsampled set-up line names b, not a.
        let regressed = [Regressed {
            function: "b".into(),
            callers: vec![],
        }];
        let suspects = rank(&regressed, &spans, &[commit("k", &[("x.c", &[(11, 11)])])]);
        assert_eq!(suspects[0].tier, Tier::InFunction);
    }

    #[test]
    fn files_match_by_their_path_in_the_repository() {
        assert!(same_file("/build/src/sort.c", "src/sort.c"));
        assert!(same_file("src/sort.c", "src/sort.c"));
        assert!(!same_file("/build/src/resort.c", "sort.c"));
        assert!(!same_file("/build/src/sort.c", ""));
        // A function without line info has no suspects of its own, but a
        // change in a caller on its call path still names one.
        let regressed = [Regressed {
            function: "unknown".into(),
            callers: vec![],
        }];
        assert!(rank(
            &regressed,
            &spans(),
            &[commit("c1", &[("src/sort.c", &[(1, 99)])])]
        )
        .is_empty());
        let regressed = [Regressed {
            function: "unknown".into(),
            callers: vec!["main".into()],
        }];
        let suspects = rank(
            &regressed,
            &spans(),
            &[commit("c1", &[("src/main.c", &[(5, 5)])])],
        );
        assert_eq!(suspects[0].tier, Tier::OnCallPath);
    }
}
