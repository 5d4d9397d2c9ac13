//! Where a function's rise concentrates: the callers above it.
//!
//! A helper shared by many callers (`mix`, `memcpy`, a hash function)
//! gets more expensive when one caller starts calling it more often; its
//! self cost rises, but the code that changed is the caller. So each
//! self-cost rise is split by the chain of callers above the function
//! (nearest first; the gate keeps whole stacks, the analyzer [`DEPTH`]
//! frames): walking up from the function, the first frame under which
//! at least 80% of the rise is, however the rise splits below it, is
//! where it is named, then that frame's own callers as long as one still
//! holds 80%. The report then says "`mix` self +5.2%, 97% of it under
//! `beta` ← `main`", with `beta`'s inclusive change beside it; when the
//! rise splits below that frame (a new caller reaching `memcmp` through
//! two paths), the paths are named too: "100% of it under `index` (via
//! `compare_keys` 55%, `compare_values` 45%)".
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

/// A frame holds a rise when at least this share of it is under it.
const HOLDS: f64 = 0.8;

/// A frame whose cost before was under this share of its cost after is
/// walked through like code the baseline never ran: it is what the change
/// started calling (a sort the program called once at start-up before,
/// and on every request after), not where the change is.
pub const NEW_BELOW: f64 = 0.05;

/// Whether a frame with these costs (inclusive, before and after, in one
/// basis) ran before in a way that counts: see [`NEW_BELOW`].
pub fn ran_before(before: f64, after: f64) -> bool {
    before > 0.0 && before >= NEW_BELOW * after
}

/// How many callers a stack keeps in the gate, which has whole stacks.
pub const GATE_DEPTH: usize = 64;

/// A branch of a rise that splits below the frame holding it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Via {
    /// The frames between the function and the holding frame, nearest
    /// first.
    pub callers: Vec<String>,
    /// Its share of the function's rise.
    pub share: f64,
}

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
    /// When the nearest caller holding the rise is not the function's
    /// direct caller: the branches below it that the rise splits into
    /// (largest first, at most three).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub via: Vec<Via>,
    /// When the frame holding the rise has no source lines (a library
    /// built without debug info) and code that has them called it: the
    /// nearest such frame that still holds the rise, where the program
    /// asked for the work (`print_number`, above libc's float printing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
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
        // A long branch shows its ends: the frame below the holder and the
        // function's caller.
        let branch = |callers: &[String]| -> String {
            let names: Vec<String> = callers.iter().map(|c| name(c)).collect();
            if names.len() <= 4 {
                names.join(" ← ")
            } else {
                format!("{} ← {} ← … ← {}", names[0], names[1], names[names.len() - 1])
            }
        };
        let path: Vec<String> = self.callers.iter().map(|c| name(c)).collect();
        let share = self.share.min(1.0) * 100.0;
        let caller = self
            .caller_change()
            .map(|c| format!(" ({} inclusive {:+.1}%)", name(&self.callers[0]), c * 100.0))
            .unwrap_or_default();
        let via = if self.via.is_empty() {
            String::new()
        } else {
            let branches: Vec<String> = self
                .via
                .iter()
                .fold(Vec::<(String, f64)>::new(), |mut shown, v| {
                    // Branches that read the same once shortened add up.
                    let text = branch(&v.callers);
                    match shown.iter_mut().find(|(t, _)| *t == text) {
                        Some((_, share)) => *share += v.share,
                        None => shown.push((text, v.share)),
                    }
                    shown
                })
                .into_iter()
                .map(|(text, share)| format!("{text} {:.0}%", share.min(1.0) * 100.0))
                .collect();
            format!(" (via {})", branches.join(", "))
        };
        let code = self
            .code
            .as_ref()
            .map(|c| format!(", called from {}", name(c)))
            .unwrap_or_default();
        format!("{share:.0}% of it under {}{via}{caller}{code}", path.join(" ← "))
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
/// chain, in the same basis) is held, or `None` when it did not rise or
/// no frame above the function holds [`HOLDS`] of the rise. `existed`
/// says whether a frame ran in the baseline at all: a holder that did not
/// (code the change added, or a path only it takes) gives way to its
/// caller while that caller still holds the rise, so that the frame
/// named is the existing one that started calling the new code (the
/// JSON encoder that now sorts, not the sort). `code`, when given, says
/// which frames have source lines: a holder without them names, in
/// [`CallPath::code`], the nearest caller with them that holds the rise.
pub fn concentrate(
    before: &ByCallers,
    after: &ByCallers,
    existed: &dyn Fn(&str) -> bool,
    code: Option<&dyn Fn(&str) -> bool>,
) -> Option<CallPath> {
    let rise = after.values().sum::<f64>() - before.values().sum::<f64>();
    if rise <= 0.0 {
        return None;
    }
    // Each stack's own rise (after less before).
    let mut deltas: BTreeMap<&[String], f64> = BTreeMap::new();
    for (side, sign) in [(before, -1.0), (after, 1.0)] {
        for (chain, cost) in side {
            *deltas.entry(chain.as_slice()).or_default() += sign * cost;
        }
    }
    // The rise under each frame anywhere above the function, and the
    // nearest it is to the function in a stack whose cost rose.
    let mut under: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
    for (&chain, &delta) in &deltas {
        for (at, frame) in chain.iter().enumerate() {
            if chain[..at].contains(frame) {
                continue; // recursion: counted once per stack
            }
            let entry = under.entry(frame.as_str()).or_insert((0.0, usize::MAX));
            entry.0 += delta;
            if delta > 0.0 {
                entry.1 = entry.1.min(at);
            }
        }
    }
    let (mut holder, (mut held, _)) = under
        .iter()
        .map(|(&name, &value)| (name, value))
        .filter(|&(_, (held, _))| held >= HOLDS * rise)
        .min_by(|a, b| {
            a.1 .1
                .cmp(&b.1 .1)
                .then(b.1 .0.total_cmp(&a.1 .0))
                .then(a.0.cmp(b.0))
        })?;
    // Through frames the baseline never ran, up to the first that it did,
    // as long as the rise stays held.
    // Each frame once: in a recursion the baseline never ran (`a` calls
    // `b` calls `a`), a caller already passed ends the walk.
    let mut passed: Vec<&str> = vec![holder];
    while !existed(holder) {
        match dominant_caller(&deltas, holder) {
            Some((caller, r)) if r >= HOLDS * rise && !passed.contains(&caller) => {
                holder = caller;
                held = under.get(caller).map_or(r, |u| u.0);
                passed.push(caller);
            }
            _ => break,
        }
    }
    // From a holder without source lines, up to the first caller with
    // them while the rise stays held.
    let code = code.filter(|has| !has(holder)).and_then(|has| {
        let mut at = holder;
        let mut passed: Vec<&str> = vec![holder];
        loop {
            let caller = dominant_caller(&deltas, at)?;
            if caller.1 < HOLDS * rise || passed.contains(&caller.0) {
                return None;
            }
            if has(caller.0) {
                return Some(caller.0.to_owned());
            }
            passed.push(caller.0);
            at = caller.0;
        }
    });
    // The branches below the holder, by the frames between it and the
    // function (empty when it is the direct caller).
    let mut below: BTreeMap<&[String], f64> = BTreeMap::new();
    for (&chain, &delta) in &deltas {
        if let Some(at) = chain.iter().position(|f| f == holder) {
            *below.entry(&chain[..at]).or_default() += delta;
        }
    }
    let mut branches: Vec<(&[String], f64)> = below.into_iter().collect();
    branches.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let via = match branches.first() {
        Some((first, _)) if !first.is_empty() => branches
            .iter()
            .filter(|(_, r)| *r > 0.0)
            .take(3)
            .map(|(callers, r)| Via {
                callers: callers.to_vec(),
                share: r / rise,
            })
            .collect(),
        _ => Vec::new(),
    };
    // The holder, then its callers as long as one still holds the rise.
    let mut path = vec![holder.to_owned()];
    while path.len() < DEPTH {
        let mut next: BTreeMap<&str, f64> = BTreeMap::new();
        for (&chain, &delta) in &deltas {
            let Some(at) = chain.iter().position(|f| f == holder) else {
                continue;
            };
            let above = &chain[at..];
            if above.len() > path.len() && above[..path.len()] == path[..] {
                *next.entry(above[path.len()].as_str()).or_default() += delta;
            }
        }
        match next
            .into_iter()
            .max_by(|a, b| a.1.total_cmp(&b.1).then_with(|| b.0.cmp(a.0)))
        {
            Some((caller, r)) if r >= HOLDS * rise => path.push(caller.to_owned()),
            _ => break,
        }
    }
    // Said once: a frame already on the path is not repeated.
    let code = code.filter(|c| !path.contains(c));
    Some(CallPath {
        callers: path,
        share: held / rise,
        caller_before: None,
        caller_after: None,
        via,
        code,
    })
}

/// The caller of `frame` under which most of the rise in `deltas` is,
/// and how much.
fn dominant_caller<'a>(deltas: &BTreeMap<&'a [String], f64>, frame: &str) -> Option<(&'a str, f64)> {
    let mut callers: BTreeMap<&str, f64> = BTreeMap::new();
    for (&chain, &delta) in deltas {
        if let Some(at) = chain.iter().position(|f| f == frame) {
            if let Some(caller) = chain.get(at + 1) {
                *callers.entry(caller.as_str()).or_default() += delta;
            }
        }
    }
    callers
        .into_iter()
        .max_by(|a, b| a.1.total_cmp(&b.1).then_with(|| b.0.cmp(a.0)))
}

/// Adds `value` of a stack (`frames` root first) to `into`, under its
/// leaf and the chain of at most `depth` callers above it.
pub fn add_stack<S: AsRef<str>>(
    into: &mut BTreeMap<String, ByCallers>,
    frames: &[S],
    value: f64,
    depth: usize,
) {
    let Some((leaf, above)) = frames.split_last() else {
        return;
    };
    let chain: Vec<String> = above
        .iter()
        .rev()
        .take(depth)
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
            add_stack(&mut all, &frames, *value, GATE_DEPTH);
        }
        all.remove("mix").unwrap_or_default()
    }

    #[test]
    fn a_rise_under_one_caller_names_it_and_its_callers() {
        let before = costs(&[("main;run;alpha;mix", 50.0), ("main;run;beta;mix", 20.0)]);
        let after = costs(&[("main;run;alpha;mix", 50.0), ("main;run;beta;mix", 25.0)]);
        let path = concentrate(&before, &after, &|_| true, None).unwrap();
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
            via: Vec::new(),
            code: None,
        };
        assert_eq!(path.describe(), "100% of it under {async_block#0} ← poll");
    }

    #[test]
    fn a_holder_without_source_lines_names_the_code_that_called_it() {
        // A library without debug info (printf's internals; `mix` is the leaf) under the
        // program's own `print_number`, which now calls it more.
        let deep = "main;print;print_number;sprintf;vsprintf;vfprintf;printf_fp;mix";
        let before = costs(&[(deep, 10.0)]);
        let after = costs(&[(deep, 30.0), ("main;parse;strtod;mix", 1.0)]);
        let source = |f: &str| matches!(f, "main" | "print" | "print_number" | "parse");
        let path = concentrate(&before, &after, &|_| true, Some(&source)).unwrap();
        assert_eq!(path.callers, ["printf_fp", "vfprintf", "vsprintf"]);
        assert_eq!(path.code.as_deref(), Some("print_number"));
        assert!(
            path.describe().ends_with(", called from print_number"),
            "{}",
            path.describe()
        );
        // Without line info anywhere, or with the holder's own lines: none.
        assert_eq!(concentrate(&before, &after, &|_| true, None).unwrap().code, None);
        let all = |_: &str| true;
        assert_eq!(
            concentrate(&before, &after, &|_| true, Some(&all)).unwrap().code,
            None
        );
        // A rise split between two callers with source: neither holds it.
        let split = costs(&[
            (
                "main;print;print_number;sprintf;vsprintf;vfprintf;printf_fp;mix",
                20.0,
            ),
            (
                "main;print;print_string;sprintf;vsprintf;vfprintf;printf_fp;mix",
                20.0,
            ),
        ]);
        let source = |f: &str| matches!(f, "main" | "print" | "print_number" | "print_string");
        assert_eq!(
            concentrate(&before, &split, &|_| true, Some(&source))
                .unwrap()
                .code,
            None
        );
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
        assert_eq!(
            concentrate(&before, &after, &|_| true, None).unwrap().callers,
            ["beta"]
        );
    }

    #[test]
    fn a_rise_split_below_a_new_caller_is_named_at_the_caller() {
        // `index` is new and reaches `mix` through two paths; the old
        // callers' cost did not move.
        let before = costs(&[("main;serve;old;mix", 40.0)]);
        let after = costs(&[
            ("main;serve;old;mix", 40.0),
            ("main;serve;index;compare_keys;mix", 11.0),
            ("main;serve;index;compare_values;mix", 9.0),
        ]);
        let path = concentrate(&before, &after, &|_| true, None).unwrap();
        assert_eq!(path.callers, ["index", "serve", "main"]);
        assert_eq!(path.via.len(), 2);
        assert_eq!(path.via[0].callers, ["compare_keys"]);
        assert!((path.via[0].share - 0.55).abs() < 1e-9);
        assert_eq!(
            path.describe(),
            "100% of it under index ← serve ← main (via compare_keys 55%, compare_values 45%)"
        );
        // Deeper than the analyzer's window of three callers, the gate's
        // whole stacks still find it.
        let before = costs(&[("main;old;mix", 40.0)]);
        let after = costs(&[
            ("main;old;mix", 40.0),
            ("main;index;a;b;c;mix", 10.0),
            ("main;index;d;e;f;mix", 10.0),
        ]);
        assert_eq!(
            concentrate(&before, &after, &|_| true, None).unwrap().callers,
            ["index", "main"]
        );
        // `index` is code the change added: the frame named is the one
        // that started calling it, the branches below it the paths.
        let added = |f: &str| !matches!(f, "index" | "a" | "b" | "c" | "d" | "e" | "f");
        let path = concentrate(&before, &after, &added, None).unwrap();
        assert_eq!(path.callers, ["main"]);
        assert_eq!(path.via[0].callers, ["c", "b", "a", "index"]);
        assert_eq!(
            path.describe(),
            "100% of it under main (via c ← b ← a ← index 50%, f ← e ← d ← index 50%)"
        );
    }

    #[test]
    fn a_recursion_of_new_frames_ends_the_walk() {
        // `list` and `obj` call each other (a JSON encoder's recursion),
        // and the baseline never ran either: the walk stops, not loops.
        let before = costs(&[("main;old;mix", 40.0)]);
        let after = costs(&[("main;old;mix", 40.0), ("main;obj;list;obj;list;obj;mix", 20.0)]);
        let path = concentrate(&before, &after, &|f| !matches!(f, "obj" | "list"), None).unwrap();
        assert!(
            ["obj", "list", "main"].contains(&path.callers[0].as_str()),
            "{path:?}"
        );
    }

    #[test]
    fn no_path_for_a_fall_or_a_rise_spread_over_callers() {
        let before = costs(&[("alpha;mix", 10.0), ("beta;mix", 10.0), ("gamma;mix", 10.0)]);
        let spread = costs(&[("alpha;mix", 11.0), ("beta;mix", 11.0), ("gamma;mix", 11.0)]);
        assert_eq!(concentrate(&before, &spread, &|_| true, None), None);
        assert_eq!(concentrate(&spread, &before, &|_| true, None), None);
        let root = costs(&[("mix", 5.0)]);
        let more = costs(&[("mix", 9.0)]);
        assert_eq!(
            concentrate(&root, &more, &|_| true, None),
            None,
            "a root frame has no caller"
        );
    }
}
