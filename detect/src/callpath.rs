//! Where a function's rise concentrates: the callers above it.
//!
//! A helper shared by many callers (`mix`, `memcpy`, a hash function)
//! gets more expensive when one caller starts calling it more often; its
//! self cost rises, but the code that changed is the caller. So each
//! self-cost rise is split by the chain of callers above the function
//! (nearest first, up to [`DEPTH`] frames): the nearest caller whose
//! share of the rise is the largest, when it holds at least half of it,
//! then that caller's own callers the same way, as long as one still
//! holds half. The report then says "`mix` self +5.2%, 97% of it under
//! `beta` ← `main`", with `beta`'s inclusive change beside it.
//!
//! Per caller edge rather than the deepest ancestor whose inclusive rise
//! explains the self rise: an ancestor's inclusive cost also moves with
//! everything else below it, so it can explain a rise it had no part in;
//! the self cost split by caller chains only counts the function's own
//! samples.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How many callers above a function are kept.
pub const DEPTH: usize = 3;

/// A function's cost by the chain of callers above it (nearest first, at
/// most [`DEPTH`]; empty for a root frame).
pub type ByCallers = BTreeMap<Vec<String>, f64>;

/// A path holds a rise when at least this share of it is under the path.
const CONCENTRATED: f64 = 0.5;

/// Where a rise of a function's self cost is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallPath {
    /// The callers, nearest first: `["beta", "main"]` is "under `beta`,
    /// called from `main`".
    pub callers: Vec<String>,
    /// The share of the function's rise under that path (can pass 1 when
    /// the cost under other callers fell).
    pub share: f64,
    /// The nearest caller's inclusive cost before (same unit and basis as
    /// the regression's), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_before: Option<f64>,
    /// Its inclusive cost after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller_after: Option<f64>,
}

impl CallPath {
    /// The nearest caller's relative inclusive change, when known.
    pub fn caller_change(&self) -> Option<f64> {
        match (self.caller_before, self.caller_after) {
            (Some(b), Some(a)) if b > 0.0 => Some(a / b - 1.0),
            _ => None,
        }
    }

    /// "97% of it under beta ← main (beta inclusive +25.0%)".
    pub fn describe(&self) -> String {
        self.describe_with(|name| name.to_owned())
    }

    /// [`CallPath::describe`] with the names as Markdown code.
    pub fn describe_markdown(&self) -> String {
        self.describe_with(|name| format!("`{}`", name.replace('`', "'")))
    }

    fn describe_with(&self, name: impl Fn(&str) -> String) -> String {
        let name = |full: &str| name(&short_name(full));
        let path: Vec<String> = self.callers.iter().map(|c| name(c)).collect();
        let share = self.share.min(1.0) * 100.0;
        let caller = self
            .caller_change()
            .map(|c| format!(" ({} inclusive {:+.1}%)", name(&self.callers[0]), c * 100.0))
            .unwrap_or_default();
        format!("{share:.0}% of it under {}{caller}", path.join(" ← "))
    }
}

/// `name` without its generic arguments, for reading:
/// `poll<Box<dyn Future<…>>>` → `poll`, `Vec<T>::push` → `Vec::push`
/// (a name that starts with `<`, a trait method's, keeps its first
/// group).
pub fn short_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut depth = 0usize;
    for (i, c) in name.char_indices() {
        match c {
            '<' if i > 0 || depth > 0 => depth += 1,
            '>' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Where the rise from `before` to `after` (a function's cost by caller
/// chain, in the same basis) concentrates, or `None` when it did not rise
/// or no caller holds half of the rise.
pub fn concentrate(before: &ByCallers, after: &ByCallers) -> Option<CallPath> {
    let rise = after.values().sum::<f64>() - before.values().sum::<f64>();
    if rise <= 0.0 {
        return None;
    }
    let mut path: Vec<String> = Vec::new();
    let mut share = 0.0;
    for depth in 1..=DEPTH {
        // The rise under each chain that extends `path` by one caller.
        let mut by_prefix: BTreeMap<&[String], f64> = BTreeMap::new();
        for (side, sign) in [(before, -1.0), (after, 1.0)] {
            for (chain, cost) in side {
                if chain.len() >= depth && chain[..depth - 1] == path[..] {
                    *by_prefix.entry(&chain[..depth]).or_default() += sign * cost;
                }
            }
        }
        let Some((prefix, prefix_rise)) = by_prefix
            .into_iter()
            .max_by(|a, b| a.1.total_cmp(&b.1).then_with(|| b.0.cmp(a.0)))
        else {
            break;
        };
        if prefix_rise < CONCENTRATED * rise {
            break;
        }
        path = prefix.to_vec();
        share = prefix_rise / rise;
    }
    (!path.is_empty()).then_some(CallPath {
        callers: path,
        share,
        caller_before: None,
        caller_after: None,
    })
}

/// Adds `value` of a stack (`frames` root first) to `into`, under its
/// leaf and the chain of callers above it.
pub fn add_stack<S: AsRef<str>>(into: &mut BTreeMap<String, ByCallers>, frames: &[S], value: f64) {
    let Some((leaf, above)) = frames.split_last() else {
        return;
    };
    let chain: Vec<String> = above
        .iter()
        .rev()
        .take(DEPTH)
        .map(|f| f.as_ref().to_owned())
        .collect();
    *into
        .entry(leaf.as_ref().to_owned())
        .or_default()
        .entry(chain)
        .or_default() += value;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn costs(stacks: &[(&str, f64)]) -> ByCallers {
        let mut all = BTreeMap::new();
        for (stack, value) in stacks {
            let frames: Vec<&str> = stack.split(';').collect();
            add_stack(&mut all, &frames, *value);
        }
        all.remove("mix").unwrap_or_default()
    }

    #[test]
    fn a_rise_under_one_caller_names_it_and_its_callers() {
        let before = costs(&[("main;run;alpha;mix", 50.0), ("main;run;beta;mix", 20.0)]);
        let after = costs(&[("main;run;alpha;mix", 50.0), ("main;run;beta;mix", 25.0)]);
        let path = concentrate(&before, &after).unwrap();
        assert_eq!(path.callers, ["beta", "run", "main"]);
        assert!((path.share - 1.0).abs() < 1e-9);
        assert_eq!(path.describe(), "100% of it under beta ← run ← main");
        assert_eq!(
            path.describe_markdown(),
            "100% of it under `beta` ← `run` ← `main`"
        );
    }

    #[test]
    fn names_are_read_without_their_generic_arguments() {
        assert_eq!(short_name("poll<Box<dyn Future<Output=()>>>"), "poll");
        assert_eq!(short_name("alloc::vec::Vec<T>::push"), "alloc::vec::Vec::push");
        assert_eq!(short_name("mix"), "mix");
        let path = CallPath {
            callers: vec!["{async_block#0}<fn(State<Arc<Costs>>)>".into(), "poll<F>".into()],
            share: 1.0,
            caller_before: None,
            caller_after: None,
        };
        assert_eq!(path.describe(), "100% of it under {async_block#0} ← poll");
    }

    #[test]
    fn the_path_stops_where_the_rise_spreads() {
        // beta is called from three places and all call it more.
        let before = costs(&[
            ("a;beta;mix", 10.0),
            ("b;beta;mix", 10.0),
            ("c;beta;mix", 10.0),
            ("alpha;mix", 50.0),
        ]);
        let after = costs(&[
            ("a;beta;mix", 13.0),
            ("b;beta;mix", 13.0),
            ("c;beta;mix", 13.0),
            ("alpha;mix", 50.0),
        ]);
        assert_eq!(concentrate(&before, &after).unwrap().callers, ["beta"]);
    }

    #[test]
    fn no_path_for_a_fall_or_a_rise_spread_over_callers() {
        let before = costs(&[("alpha;mix", 10.0), ("beta;mix", 10.0), ("gamma;mix", 10.0)]);
        let spread = costs(&[("alpha;mix", 11.0), ("beta;mix", 11.0), ("gamma;mix", 11.0)]);
        assert_eq!(concentrate(&before, &spread), None);
        assert_eq!(concentrate(&spread, &before), None);
        let root = costs(&[("mix", 5.0)]);
        let more = costs(&[("mix", 9.0)]);
        assert_eq!(concentrate(&root, &more), None, "a root frame has no caller");
    }
}
