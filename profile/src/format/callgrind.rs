//! Reads valgrind's callgrind output (`callgrind.out.PID`): exact
//! instruction counts (the first event, `Ir`) per function and the call
//! graph between them.
//!
//! Callgrind records a graph, not stacks. The flame graph is rebuilt by
//! walking the graph from its roots and splitting each function's cost
//! among the paths that reach it in proportion to the cost each call site
//! brought (the usual callgrind-to-flame-graph reconstruction): every
//! function's self cost total is exact, and so is the inclusive cost of
//! functions reached by one path. A call back into a function already on
//! the path (recursion, or valgrind's `(below main)` alias) is not
//! followed: its cost is inside the outer activation already. Self cost
//! that cycles keep from being placed goes on a one-frame stack of its
//! own, so every function's self total is exact. The profile carries the comment [`EXACT_COUNTS`], so the CI gate
//! compares values rather than distributions.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::model::{LabelSetId, Profile, SampleType};

/// The comment marking a profile of exact, deterministic counts.
pub const EXACT_COUNTS: &str = "flameshift: exact counts (callgrind)";

/// Whether `text` looks like callgrind output.
pub fn looks_like_callgrind(text: &[u8]) -> bool {
    text.starts_with(b"# callgrind format")
        || (text.windows(8).any(|w| w == b"\nevents:") && text.windows(4).any(|w| w == b"\nfn="))
}

#[derive(Default)]
struct Graph {
    names: Vec<String>,
    by_name: HashMap<String, usize>,
    compressed: HashMap<String, usize>,
    self_cost: Vec<f64>,
    calls: Vec<Vec<(usize, f64)>>,
    called: Vec<bool>,
}

impl Graph {
    fn function(&mut self, spec: &str) -> std::result::Result<usize, String> {
        let spec = spec.trim();
        let (id, name) = match spec.strip_prefix('(') {
            Some(rest) => {
                let end = rest.find(')').ok_or("unclosed `(` in a compressed name")?;
                let name = rest[end + 1..].trim();
                (Some(rest[..end].to_owned()), (!name.is_empty()).then_some(name))
            }
            None => (None, Some(spec)),
        };
        let name = match (id.as_ref(), name) {
            (_, Some(name)) => name.to_owned(),
            (Some(id), None) => {
                return self
                    .compressed
                    .get(id)
                    .copied()
                    .ok_or_else(|| format!("function ({id}) used before it was named"))
            }
            (None, None) => return Err("empty function name".into()),
        };
        let index = match self.by_name.get(&name) {
            Some(&i) => i,
            None => {
                let i = self.names.len();
                self.names.push(name.clone());
                self.by_name.insert(name, i);
                self.self_cost.push(0.0);
                self.calls.push(Vec::new());
                self.called.push(false);
                i
            }
        };
        if let Some(id) = id {
            self.compressed.insert(id, index);
        }
        Ok(index)
    }
}

/// Parses callgrind output into a profile of one sample type,
/// `instructions/count` (the first event).
pub fn read(bytes: &[u8]) -> Result<Profile> {
    let text = String::from_utf8_lossy(bytes);
    let mut g = Graph::default();
    let (mut positions, mut current, mut callee, mut pending_call) = (1usize, None, None, false);
    let mut event = None;
    for (n, line) in text.lines().enumerate() {
        let bad = |problem: String| Error::Parse {
            format: "callgrind",
            line: n + 1,
            problem,
        };
        let line = line.trim_end();
        if let Some(rest) = line.strip_prefix("positions:") {
            positions = rest.split_whitespace().count().max(1);
        } else if let Some(rest) = line.strip_prefix("events:") {
            event = rest.split_whitespace().next().map(str::to_owned);
        } else if let Some(rest) = line.strip_prefix("fn=") {
            current = Some(g.function(rest).map_err(bad)?);
        } else if let Some(rest) = line.strip_prefix("cfn=").or_else(|| line.strip_prefix("cfunc=")) {
            callee = Some(g.function(rest).map_err(bad)?);
        } else if line.starts_with("calls=") {
            pending_call = true;
        } else if line.starts_with(|c: char| c.is_ascii_digit() || c == '+' || c == '-' || c == '*') {
            let mut fields = line.split_whitespace().skip(positions);
            let value: f64 = match fields.next() {
                Some(v) => {
                    v.parse::<u64>()
                        .map_err(|_| bad(format!("cost {v:?} is not a count")))? as f64
                }
                None => 0.0,
            };
            let Some(f) = current else {
                return Err(bad("a cost line before any fn=".into()));
            };
            if pending_call {
                let to = callee.ok_or_else(|| bad("calls= without cfn=".into()))?;
                match g.calls[f].iter_mut().find(|(c, _)| *c == to) {
                    Some(edge) => edge.1 += value,
                    None => g.calls[f].push((to, value)),
                }
                if to != f {
                    g.called[to] = true;
                }
                pending_call = false;
            } else {
                g.self_cost[f] += value;
            }
        }
    }
    if event.is_none() || g.names.is_empty() {
        return Err(Error::UnknownFormat(
            "callgrind output without `events:` or functions".into(),
        ));
    }
    Ok(rebuild(&g))
}

/// Walks the graph from its roots into stacks (see the module docs).
fn rebuild(g: &Graph) -> Profile {
    let inclusive: Vec<f64> = (0..g.names.len())
        .map(|f| {
            g.self_cost[f]
                + g.calls[f]
                    .iter()
                    .filter(|(c, _)| *c != f)
                    .map(|(_, v)| v)
                    .sum::<f64>()
        })
        .collect();
    let total: f64 = g.self_cost.iter().sum();
    let mut roots: Vec<usize> = (0..g.names.len())
        .filter(|&f| !g.called[f] && inclusive[f] > 0.0)
        .collect();
    if roots.is_empty() {
        roots.extend((0..g.names.len()).max_by(|&a, &b| inclusive[a].total_cmp(&inclusive[b])));
    }
    let mut stacks: HashMap<Vec<usize>, f64> = HashMap::new();
    let floor = total * 1e-9;
    let mut path = Vec::new();
    for root in roots {
        walk(g, root, None, floor, &mut path, &mut stacks);
    }
    // Cycles through aliases and flows too small to follow leave some self
    // cost unplaced; it goes on a stack of its own, so that every
    // function's self total stays exact.
    let mut placed = vec![0.0; g.names.len()];
    for (stack, value) in &stacks {
        if let Some(&leaf) = stack.last() {
            placed[leaf] += value;
        }
    }
    for (f, &own) in g.self_cost.iter().enumerate() {
        let missing = own - placed[f];
        if missing >= 0.5 {
            *stacks.entry(vec![f]).or_default() += missing;
        }
    }
    let mut profile = Profile::new(vec![SampleType::new("instructions", "count")]);
    profile.comments.push(EXACT_COUNTS.to_owned());
    let mut rows: Vec<(Vec<usize>, f64)> = stacks.into_iter().collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    for (stack, value) in rows {
        let value = value.round() as i64;
        if value > 0 {
            let id = profile.stack_from_names(stack.iter().map(|&f| g.names[f].as_str()));
            profile.push_sample(id, LabelSetId::EMPTY, &[value]);
        }
    }
    profile
}

/// Distributes `flow` (all of `f`'s cost at a root) over `f`'s self cost
/// and its calls, in proportion. Calls back into a function already on
/// the path are dropped: callgrind's cost for them is already inside the
/// outer activation (counting it again would double it).
fn walk(
    g: &Graph,
    f: usize,
    flow: Option<f64>,
    floor: f64,
    path: &mut Vec<usize>,
    stacks: &mut HashMap<Vec<usize>, f64>,
) {
    path.push(f);
    let forward: Vec<bool> = g.calls[f]
        .iter()
        .map(|&(c, _)| c != f && !path.contains(&c))
        .collect();
    let denominator = g.self_cost[f]
        + g.calls[f]
            .iter()
            .zip(&forward)
            .filter(|(_, &ahead)| ahead)
            .map(|((_, v), _)| v)
            .sum::<f64>();
    let share = match flow {
        None => 1.0,
        Some(_) if denominator <= 0.0 => 0.0,
        Some(flow) => (flow / denominator).min(1.0),
    };
    let own = g.self_cost[f] * share;
    for (&(callee, cost), &ahead) in g.calls[f].iter().zip(&forward) {
        if !ahead {
            continue;
        }
        let reached = cost * share;
        // Too deep or too small to split further: left to the remainder.
        if path.len() < 256 && reached >= floor {
            walk(g, callee, Some(reached), floor, path, stacks);
        }
    }
    if own > 0.0 {
        *stacks.entry(path.clone()).or_default() += own;
    }
    path.pop();
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &str = "# callgrind format
version: 1
positions: line
events: Ir
summary: 1100

fn=(1) main
1 100
cfn=(2) step
calls=1 5
5 1000

fn=(2)
5 50
cfn=(3) work
calls=10 3
* 600
cfn=(4) other
calls=10 4
* 300

fn=(3)
3 600

fn=(4)
+1 300
";

    #[test]
    fn reads_self_costs_and_rebuilds_the_stacks() {
        let p = read(OUT.as_bytes()).unwrap();
        assert!(p.comments.iter().any(|c| c == EXACT_COUNTS));
        assert_eq!(p.total(0), 1_050);
        let top = p.top_functions(0, crate::TopBy::SelfCost);
        let get = |n: &str| {
            top.iter()
                .find(|f| f.name == n)
                .map(|f| (f.self_value, f.inclusive_value))
        };
        assert_eq!(get("main"), Some((100, 1_050)));
        assert_eq!(get("step"), Some((50, 950)));
        assert_eq!(get("work"), Some((600, 600)));
        assert_eq!(get("other"), Some((300, 300)));
        assert!(looks_like_callgrind(OUT.as_bytes()));
    }

    #[test]
    fn bad_input_names_the_line() {
        let err = read(b"# callgrind format\nevents: Ir\nfn=(9)\n1 5\n").unwrap_err();
        assert!(
            err.to_string().contains("line 3") && err.to_string().contains("(9)"),
            "{err}"
        );
        let err = read(b"# callgrind format\nevents: Ir\nfn=main\n1 x\n").unwrap_err();
        assert!(err.to_string().contains("line 4"), "{err}");
    }
}
