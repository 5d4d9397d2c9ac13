//! Facts about deploys, beside their rows: the commits a deploy brought
//! (from its deploy event) and where each function's code is in it
//! (from the line info of its profiles). Both stores keep them as rows
//! of `(deploy, kind, key, value)`; [`FactIndex`] keeps a store from
//! writing a fact it already holds (a function's span is written again
//! only when it widens), and [`DeployChanges`] reads them back.

use std::collections::HashMap;

use crate::detect::suspects::{Commit, SourceSpan};
use crate::model::{DeployFact, FactKind};

/// What a deploy brought, as detection reads it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeployChanges {
    /// Its commits, in the order they were posted.
    pub commits: Vec<Commit>,
    /// Each function's source span.
    pub sources: HashMap<String, SourceSpan>,
}

impl DeployChanges {
    /// The changes `facts` (of one deploy) record; a value that does not
    /// parse is skipped (and logged).
    pub fn of<'a>(facts: impl IntoIterator<Item = &'a DeployFact>) -> DeployChanges {
        let mut facts: Vec<&DeployFact> = facts.into_iter().collect();
        facts.sort_by_key(|f| f.time_ms);
        let mut changes = DeployChanges::default();
        for fact in facts {
            match fact.kind {
                FactKind::Commit => match serde_json::from_str::<Commit>(&fact.value) {
                    Ok(commit) if !changes.commits.iter().any(|c| c.sha == commit.sha) => {
                        changes.commits.push(commit)
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(deploy = %fact.deploy, key = %fact.key, error = %e, "a stored commit does not parse; skipped")
                    }
                },
                FactKind::Source => match serde_json::from_str::<SourceSpan>(&fact.value) {
                    Ok(span) => {
                        let merged = match changes.sources.get(&fact.key) {
                            Some(known) => known.union(&span).unwrap_or(span),
                            None => span,
                        };
                        changes.sources.insert(fact.key.clone(), merged);
                    }
                    Err(e) => {
                        tracing::warn!(deploy = %fact.deploy, key = %fact.key, error = %e, "a stored source span does not parse; skipped")
                    }
                },
            }
        }
        changes
    }
}

/// The facts a store holds, by deploy, kind and key: what is new. Spans
/// are kept parsed, so that the common case (an upload whose spans the
/// store holds already) costs one parse a function and no allocation.
#[derive(Debug, Default)]
pub struct FactIndex {
    known: HashMap<String, HashMap<FactKind, HashMap<String, Held>>>,
    count: usize,
}

/// What the store holds under one key.
#[derive(Debug, Clone)]
enum Held {
    /// A commit (never changes).
    Commit,
    /// A function's span so far.
    Span(SourceSpan),
}

impl FactIndex {
    /// How many facts it holds.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn held(&self, fact: &DeployFact) -> Option<&Held> {
        self.known.get(&fact.deploy)?.get(&fact.kind)?.get(&fact.key)
    }

    /// Records a fact the store holds (read back on start, or written).
    pub fn remember(&mut self, fact: &DeployFact) {
        let held = match fact.kind {
            FactKind::Commit => Held::Commit,
            FactKind::Source => match serde_json::from_str::<SourceSpan>(&fact.value) {
                Ok(span) => match self.held(fact) {
                    Some(Held::Span(known)) => {
                        Held::Span(known.union(&span).unwrap_or_else(|| known.clone()))
                    }
                    _ => Held::Span(span),
                },
                Err(_) => return,
            },
        };
        let previous = self
            .known
            .entry(fact.deploy.clone())
            .or_default()
            .entry(fact.kind)
            .or_default()
            .insert(fact.key.clone(), held);
        if previous.is_none() {
            self.count += 1;
        }
    }

    /// The fact to store for `fact`, if it says something new: a commit
    /// not yet held, or a span that reaches lines the held one does not
    /// (then the union of both). `None` when nothing is new.
    pub fn admit(&mut self, fact: DeployFact) -> Option<DeployFact> {
        let fresh = self.fresh(fact)?;
        self.remember(&fresh);
        Some(fresh)
    }

    /// What [`FactIndex::admit`] would store, without recording it (a
    /// store records it with [`FactIndex::remember`] once it is written).
    pub fn fresh(&self, fact: DeployFact) -> Option<DeployFact> {
        match (self.held(&fact), fact.kind) {
            (None, _) => Some(fact),
            (Some(_), FactKind::Commit) | (Some(Held::Commit), FactKind::Source) => None,
            (Some(Held::Span(known)), FactKind::Source) => {
                let span: SourceSpan = serde_json::from_str(&fact.value).ok()?;
                // Another file under the same name: the first one stays.
                let widened = known.union(&span)?;
                if &widened == known {
                    return None;
                }
                let value = serde_json::to_string(&widened).ok()?;
                Some(DeployFact { value, ..fact })
            }
        }
    }
}

/// The facts of a profile's spans for `deploy`.
pub fn source_facts(spans: HashMap<String, SourceSpan>, deploy: &str, time_ms: i64) -> Vec<DeployFact> {
    let mut facts: Vec<DeployFact> = spans
        .into_iter()
        .filter_map(|(function, span)| {
            Some(DeployFact {
                deploy: deploy.to_owned(),
                kind: FactKind::Source,
                key: function,
                value: serde_json::to_string(&span).ok()?,
                time_ms,
            })
        })
        .collect();
    facts.sort_by(|a, b| a.key.cmp(&b.key));
    facts
}

/// The facts of a deploy event's commits.
pub fn commit_facts(commits: &[Commit], deploy: &str, time_ms: i64) -> Vec<DeployFact> {
    commits
        .iter()
        .enumerate()
        .filter_map(|(i, commit)| {
            Some(DeployFact {
                deploy: deploy.to_owned(),
                kind: FactKind::Commit,
                key: commit.sha.clone(),
                value: serde_json::to_string(commit).ok()?,
                // Posted order kept: one millisecond apart.
                time_ms: time_ms + i as i64,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(first: u32, last: u32) -> SourceSpan {
        SourceSpan {
            file: "src/parse.c".into(),
            first,
            last,
        }
    }

    #[test]
    fn a_span_is_stored_again_only_when_it_widens() {
        let mut index = FactIndex::default();
        let facts = |s: SourceSpan| source_facts(HashMap::from([("parse".to_owned(), s)]), "v2", 1);
        let first = index.admit(facts(span(10, 20)).remove(0)).unwrap();
        assert_eq!(DeployChanges::of([&first]).sources["parse"], span(10, 20));
        assert!(index.admit(facts(span(12, 18)).remove(0)).is_none(), "inside");
        let wider = index.admit(facts(span(15, 25)).remove(0)).unwrap();
        assert_eq!(DeployChanges::of([&wider]).sources["parse"], span(10, 25));
        assert!(index.admit(facts(span(10, 25)).remove(0)).is_none());
        // Another deploy is another fact.
        let mut other = facts(span(1, 2)).remove(0);
        other.deploy = "v3".into();
        assert!(index.admit(other).is_some());
    }

    #[test]
    fn commits_are_stored_once_and_read_in_posted_order() {
        let commit = |sha: &str| Commit {
            sha: sha.into(),
            short: sha[..2].into(),
            title: format!("change {sha}"),
            author: "Ada <ada@example.com>".into(),
            files: vec![],
        };
        let mut index = FactIndex::default();
        let facts = commit_facts(&[commit("bbbb"), commit("aaaa")], "v2", 100);
        let stored: Vec<DeployFact> = facts.into_iter().filter_map(|f| index.admit(f)).collect();
        assert_eq!(stored.len(), 2);
        assert!(commit_facts(&[commit("aaaa")], "v2", 200)
            .into_iter()
            .all(|f| index.admit(f).is_none()));
        let read = DeployChanges::of(stored.iter().rev());
        let shas: Vec<&str> = read.commits.iter().map(|c| c.sha.as_str()).collect();
        assert_eq!(shas, ["bbbb", "aaaa"]);
    }
}
