//! One request's accounting, shared by every middleware (WSGI, Flask,
//! Django, ASGI): its endpoint, its own cost (the thread's counter read
//! around it, or around each step of it under ASGI) and the label set
//! samples taken while it runs carry (made current on the thread for
//! each step, the one before given back after it).
//!
//! It is the Python class `flameshift._native.Request` (in
//! `bindings`); its logic is here, in plain Rust, so that a request
//! pays a few calls into Rust rather than a few Python frames each
//! (with the Flask change of the same commit, 11 µs a Flask request went
//! to 7 µs; with the middleware in Rust, `middleware.rs`, to about 5:
//! BENCHMARKS.md, "What a request pays").

use flameshift_collector::labels::LabelSetId;

use crate::runtime;

/// The endpoint of requests no route matched.
pub const UNMATCHED: &str = "(unmatched)";

/// A request being served. Its endpoint is `"{METHOD} {route}"`, the
/// route being the framework's template (`/users/<int:uid>`), or
/// [`UNMATCHED`] while no route is known.
#[derive(Debug)]
pub struct Request {
    method: String,
    route: Option<String>,
    endpoint: String,
    /// The label set samples of it carry.
    label: LabelSetId,
    cost: u64,
    /// The counter when the running step began, and the label set
    /// current before it (given back when it ends).
    started: Option<(u64, LabelSetId)>,
    done: bool,
}

impl Request {
    /// A request of `method` (`GET` when the server gives none).
    pub fn new(method: Option<&str>) -> Request {
        Request {
            method: method.filter(|m| !m.is_empty()).unwrap_or("GET").to_owned(),
            route: None,
            endpoint: UNMATCHED.to_owned(),
            label: runtime::endpoint_label(UNMATCHED),
            cost: 0,
            started: None,
            done: false,
        }
    }

    /// The method.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The route template, once known.
    pub fn route(&self) -> Option<&str> {
        self.route.as_deref()
    }

    /// `"{METHOD} {route}"`, or [`UNMATCHED`].
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// What the request's steps cost so far.
    pub fn cost(&self) -> u64 {
        self.cost
    }

    /// The framework matched `route`: samples from now on carry it (an
    /// empty or unchanged route changes nothing).
    pub fn routed(&mut self, route: Option<&str>) {
        let Some(route) = route.filter(|r| !r.is_empty()) else {
            return;
        };
        if self.route.as_deref() == Some(route) {
            return;
        }
        self.endpoint = format!("{} {route}", self.method);
        self.route = Some(route.to_owned());
        self.label = runtime::endpoint_label(&self.endpoint);
        if self.started.is_some() {
            runtime::enter(&self.endpoint, self.label);
        }
    }

    /// A step starts on the calling thread.
    pub fn begin(&mut self) {
        let (outer, counter) = runtime::begin(&self.endpoint, self.label);
        self.started = Some((counter, outer));
    }

    /// The running step ends on the calling thread.
    pub fn end(&mut self) {
        if let Some((started, outer)) = self.started.take() {
            self.cost += runtime::end(&self.endpoint, outer, started, 0, false);
        }
    }

    /// The running step ends and the request is recorded, once (a
    /// second call only ends a step).
    pub fn finish(&mut self) {
        if self.done {
            self.end();
            return;
        }
        self.done = true;
        match self.started.take() {
            None => runtime::record(&self.endpoint, self.cost),
            Some((started, outer)) => {
                self.cost += runtime::end(&self.endpoint, outer, started, self.cost, true)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_is_the_method_and_the_route_once_one_is_known() {
        let mut request = Request::new(Some("POST"));
        assert_eq!(request.endpoint(), UNMATCHED);
        request.routed(None);
        request.routed(Some(""));
        assert_eq!(request.endpoint(), UNMATCHED);
        request.routed(Some("/orders/<int:id>"));
        assert_eq!(request.endpoint(), "POST /orders/<int:id>");
        assert_eq!(request.route(), Some("/orders/<int:id>"));
        assert_eq!(Request::new(None).method(), "GET");
        assert_eq!(Request::new(Some("")).method(), "GET");
    }

    #[test]
    fn steps_add_up_and_a_request_is_finished_once() {
        let mut request = Request::new(Some("GET"));
        request.begin();
        let mut x = 1u64;
        for i in 0..200_000u64 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(i));
        }
        request.end();
        let first = request.cost();
        assert!(first > 0, "a step that burned CPU cost nothing");
        request.end();
        assert_eq!(request.cost(), first, "an end without a begin adds nothing");
        request.begin();
        request.finish();
        let finished = request.cost();
        assert!(finished >= first);
        request.finish();
        assert_eq!(request.cost(), finished, "a second finish records nothing more");
    }
}
