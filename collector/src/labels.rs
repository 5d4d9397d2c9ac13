//! Labels that follow async tasks: `labeled(labels, future)` makes a label
//! set current on the polling thread for the duration of every poll of the
//! future, and restores what was current before. A task that moves between
//! tokio worker threads keeps its labels, and nothing leaks into the next
//! task a worker polls (Pyroscope's per-thread tags do leak).
//!
//! Label sets are interned into small ids; the current id is a
//! thread-local `Cell<u32>` with constant initialisation, so a signal
//! handler can read it without allocating or locking.
//!
//! ```
//! use flameshift_collector::labels::{current, labeled, resolve};
//! let future = labeled([("endpoint", "GET /users/{id}")], async {
//!     let set = resolve(current());
//!     assert_eq!(set.get("endpoint"), Some("GET /users/{id}"));
//! });
//! # let waker = std::task::Waker::noop();
//! # let mut cx = std::task::Context::from_waker(waker);
//! # let mut future = std::pin::pin!(future);
//! # assert!(std::future::Future::poll(future.as_mut(), &mut cx).is_ready());
//! assert!(resolve(current()).is_empty(), "restored after the poll");
//! ```

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, RwLock};
use std::task::{Context, Poll};

/// An interned label set; 0 is the empty set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LabelSetId(pub u32);

/// Labels, sorted by key, each key once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct LabelSet(Box<[(Arc<str>, Arc<str>)]>);

impl LabelSet {
    /// Builds a set; a later pair wins over an earlier one with the same key.
    pub fn new<K: AsRef<str>, V: AsRef<str>>(pairs: impl IntoIterator<Item = (K, V)>) -> LabelSet {
        let mut map: std::collections::BTreeMap<Arc<str>, Arc<str>> = Default::default();
        for (k, v) in pairs {
            map.insert(Arc::from(k.as_ref()), Arc::from(v.as_ref()));
        }
        LabelSet(map.into_iter().collect())
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| &**k == key).map(|(_, v)| &**v)
    }

    /// All pairs, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }

    /// Whether the set has no labels.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `self` with `other`'s labels added, `other` winning on equal keys.
    fn merged(&self, other: &LabelSet) -> LabelSet {
        LabelSet::new(self.iter().chain(other.iter()))
    }
}

#[derive(Default)]
struct Registry {
    sets: Vec<Arc<LabelSet>>,
    ids: HashMap<Arc<LabelSet>, u32>,
    merges: HashMap<(u32, u32), u32>,
}

fn registry() -> &'static RwLock<Registry> {
    static REGISTRY: OnceLock<RwLock<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let empty = Arc::new(LabelSet::default());
        let mut registry = Registry::default();
        registry.ids.insert(empty.clone(), 0);
        registry.sets.push(empty);
        RwLock::new(registry)
    })
}

/// Interns a label set.
pub fn intern(set: LabelSet) -> LabelSetId {
    if let Some(&id) = registry().read().unwrap_or_else(|e| e.into_inner()).ids.get(&set) {
        return LabelSetId(id);
    }
    let mut registry = registry().write().unwrap_or_else(|e| e.into_inner());
    if let Some(&id) = registry.ids.get(&set) {
        return LabelSetId(id);
    }
    let id = u32::try_from(registry.sets.len()).unwrap_or(u32::MAX);
    let set = Arc::new(set);
    registry.sets.push(set.clone());
    registry.ids.insert(set, id);
    LabelSetId(id)
}

/// The labels of an id (the empty set for an unknown id).
pub fn resolve(id: LabelSetId) -> Arc<LabelSet> {
    let registry = registry().read().unwrap_or_else(|e| e.into_inner());
    registry
        .sets
        .get(id.0 as usize)
        .cloned()
        .unwrap_or_else(|| registry.sets[0].clone())
}

/// The set `outer` extended by `inner` (inner wins), interned and cached.
fn merge(outer: LabelSetId, inner: LabelSetId) -> LabelSetId {
    if outer.0 == 0 || outer == inner {
        return inner;
    }
    if inner.0 == 0 {
        return outer;
    }
    if let Some(&id) = registry()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .merges
        .get(&(outer.0, inner.0))
    {
        return LabelSetId(id);
    }
    let merged = resolve(outer).merged(&resolve(inner));
    let id = intern(merged);
    registry()
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .merges
        .insert((outer.0, inner.0), id.0);
    id
}

thread_local! {
    // Constant-initialised: reading it never allocates or registers a
    // destructor, so the sampler's signal handler may read it.
    static CURRENT: Cell<u32> = const { Cell::new(0) };
}

/// The label set current on this thread.
pub fn current() -> LabelSetId {
    LabelSetId(current_for_signal())
}

/// The raw id of the current label set, for the sampler's signal handler:
/// a plain read of a const-initialised thread-local (no lazy
/// initialisation, no destructor), 0 during thread teardown.
pub(crate) fn current_for_signal() -> u32 {
    CURRENT.try_with(Cell::get).unwrap_or(0)
}

/// Makes `id` current on this thread and returns what was (for callers
/// that restore it themselves, across calls a guard cannot span: the
/// Python agent's requests).
pub fn replace_current(id: LabelSetId) -> LabelSetId {
    LabelSetId(CURRENT.with(|c| c.replace(id.0)))
}

/// Makes `id` current until the guard is dropped, then restores the
/// previous set (also when unwinding from a panic).
pub fn enter(id: LabelSetId) -> Entered {
    let previous = CURRENT.with(|c| c.replace(id.0));
    Entered { previous }
}

/// Restores the previous label set on drop.
#[must_use = "the labels are current only while the guard lives"]
pub struct Entered {
    previous: u32,
}

impl Drop for Entered {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.previous));
    }
}

/// Runs `future` with `labels` current during each of its polls, on top of
/// whatever labels the poller had (these win on equal keys).
pub fn labeled<K: AsRef<str>, V: AsRef<str>, F: Future>(
    labels: impl IntoIterator<Item = (K, V)>,
    future: F,
) -> Labeled<F> {
    Labeled::new(intern(LabelSet::new(labels)), future)
}

pin_project_lite::pin_project! {
    /// A future that carries a label set into each of its polls.
    #[derive(Debug)]
    pub struct Labeled<F> {
        #[pin]
        future: F,
        own: LabelSetId,
        // The last (outer, merged) pair, so that a task polled under the
        // same outer labels merges without touching the registry.
        last: Cell<(u32, u32)>,
    }
}

impl<F> Labeled<F> {
    /// Wraps `future` with an interned label set.
    pub fn new(own: LabelSetId, future: F) -> Self {
        Labeled {
            future,
            own,
            last: Cell::new((0, own.0)),
        }
    }
}

impl<F: Future> Future for Labeled<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let outer = current();
        let (last_outer, last_merged) = this.last.get();
        let merged = if last_outer == outer.0 {
            LabelSetId(last_merged)
        } else {
            let merged = merge(outer, *this.own);
            this.last.set((outer.0, merged.0));
            merged
        };
        let _entered = enter(merged);
        this.future.poll(cx)
    }
}
