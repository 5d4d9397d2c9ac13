//! Which endpoint each thread is serving: set by the middleware when a
//! request (or, under ASGI, one step of it) starts on a thread, cleared
//! when it ends, and read by the sampler to label what it samples.
//!
//! Every change of a thread's endpoint gets a new sequence number, so
//! that the sampler can tell whether a thread moved to another request
//! (or out of one) while its stack was read: such a sample cannot be
//! labelled and is not taken.

use std::sync::{Arc, Mutex};

use rustc_hash::FxHashMap;

/// What a thread serves, and the change that set it.
pub type Serving = (u64, Option<Arc<str>>);

/// Thread id → the endpoint it is serving now.
#[derive(Debug, Default)]
pub struct Endpoints {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    serving: FxHashMap<i32, Serving>,
    /// Each endpoint's name, allocated once.
    names: FxHashMap<Box<str>, Arc<str>>,
    changes: u64,
}

impl Endpoints {
    /// Thread `tid` now serves `endpoint`.
    pub fn enter(&self, tid: i32, endpoint: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let name = match inner.names.get(endpoint) {
            Some(name) => name.clone(),
            None => {
                let name: Arc<str> = Arc::from(endpoint);
                inner.names.insert(endpoint.into(), name.clone());
                name
            }
        };
        inner.changes += 1;
        let change = inner.changes;
        inner.serving.insert(tid, (change, Some(name)));
    }

    /// Thread `tid` serves nothing now.
    pub fn leave(&self, tid: i32) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.changes += 1;
        let change = inner.changes;
        inner.serving.insert(tid, (change, None));
    }

    /// What thread `tid` is serving, and the change that set it.
    pub fn of(&self, tid: i32) -> Serving {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .serving
            .get(&tid)
            .cloned()
            .unwrap_or((0, None))
    }

    /// Forgets the threads `alive` says have exited.
    pub fn retain(&self, alive: impl Fn(i32) -> bool) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .serving
            .retain(|tid, _| alive(*tid));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_serves_its_latest_endpoint_until_it_leaves_and_each_change_is_new() {
        let endpoints = Endpoints::default();
        assert_eq!(endpoints.of(7), (0, None));
        endpoints.enter(7, "GET /feed");
        let first = endpoints.of(7);
        endpoints.enter(8, "POST /orders");
        endpoints.enter(7, "GET /feed");
        let second = endpoints.of(7);
        assert_eq!(second.1.as_deref(), Some("GET /feed"));
        assert_ne!(
            first.0, second.0,
            "a new request of the same endpoint is a change"
        );
        endpoints.leave(7);
        assert_eq!(endpoints.of(7).1, None);
        assert_eq!(endpoints.of(8).1.as_deref(), Some("POST /orders"));
        endpoints.retain(|tid| tid != 8);
        assert_eq!(endpoints.of(8), (0, None));
    }
}
