//! Which endpoint each thread is serving: set by the middleware when a
//! request (or, under ASGI, one step of it) starts on a thread, cleared
//! when it ends, and read by the sampler to label what it samples.

use std::sync::{Arc, Mutex};

use rustc_hash::FxHashMap;

/// Thread id → the endpoint it is serving now.
#[derive(Debug, Default)]
pub struct Endpoints {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    serving: FxHashMap<i32, Arc<str>>,
    /// Each endpoint's name, allocated once.
    names: FxHashMap<Box<str>, Arc<str>>,
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
        inner.serving.insert(tid, name);
    }

    /// Thread `tid` serves nothing now.
    pub fn leave(&self, tid: i32) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .serving
            .remove(&tid);
    }

    /// The endpoint thread `tid` is serving, if any.
    pub fn of(&self, tid: i32) -> Option<Arc<str>> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .serving
            .get(&tid)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_serves_its_latest_endpoint_until_it_leaves() {
        let endpoints = Endpoints::default();
        assert_eq!(endpoints.of(7), None);
        endpoints.enter(7, "GET /feed");
        endpoints.enter(8, "POST /orders");
        endpoints.enter(7, "GET /users/<int:uid>");
        assert_eq!(endpoints.of(7).as_deref(), Some("GET /users/<int:uid>"));
        endpoints.leave(7);
        assert_eq!(endpoints.of(7), None);
        assert_eq!(endpoints.of(8).as_deref(), Some("POST /orders"));
    }
}
