//! The tower [`Layer`](tower_layer::Layer) for services (axum, hyper):
//! names each request's endpoint, counts requests per endpoint exactly,
//! labels everything the request does with `endpoint` (across every poll,
//! on whatever worker thread), and measures the request's own CPU cost by
//! reading the thread's counter around each poll.
//!
//! ```
//! use std::sync::Arc;
//! use flameshift_collector::layer::CpuLayer;
//! use flameshift_collector::requests::RequestStats;
//! let stats = Arc::new(RequestStats::default());
//! let layer = CpuLayer::new(stats.clone(), |req: &http::Request<()>| format!("{} {}", req.method(), req.uri().path()));
//! # let _ = layer;
//! ```

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::counters::ThreadCounter;
use crate::labels::{intern, LabelSet, LabelSetId, Labeled};
use crate::requests::RequestStats;

thread_local! {
    // One counter per worker thread, opened on first use.
    static COUNTER: RefCell<Option<ThreadCounter>> = const { RefCell::new(None) };
    // Counts the measurements started on this thread (see `Started`).
    static MEASUREMENTS: Cell<u64> = const { Cell::new(0) };
}

/// Where a measurement started: the counter's value, on which thread
/// (the address of its `MEASUREMENTS`), and that thread's measurement
/// count then.
#[derive(Debug, Clone, Copy)]
struct Started {
    value: u64,
    thread: usize,
    count: u64,
}

impl Started {
    /// Reads the counter and marks a new measurement on this thread.
    fn now() -> Started {
        let (thread, count) = MEASUREMENTS.with(|m| {
            m.set(m.get() + 1);
            (m as *const Cell<u64> as usize, m.get())
        });
        Started {
            value: read_counter(),
            thread,
            count,
        }
    }

    /// Whether no other measurement started on this thread since, and
    /// this is the same thread: the counter still runs for this request.
    fn still_running_here(&self) -> bool {
        MEASUREMENTS.with(|m| m as *const Cell<u64> as usize == self.thread && m.get() == self.count)
    }
}

fn read_counter() -> u64 {
    COUNTER.with(|c| {
        let mut c = c.borrow_mut();
        c.get_or_insert_with(ThreadCounter::open).read()
    })
}

/// Names the endpoint of a request.
pub trait EndpointName<B>: Clone {
    /// The endpoint, e.g. `GET /users/{id}` (a template, not the path:
    /// endpoints must be few).
    fn name(&self, request: &http::Request<B>) -> String;
}

impl<B, F: Fn(&http::Request<B>) -> String + Clone> EndpointName<B> for F {
    fn name(&self, request: &http::Request<B>) -> String {
        self(request)
    }
}

/// axum's matched route template, `METHOD /route/{param}`; requests that
/// matched no route are `METHOD (unmatched)`.
#[cfg(feature = "axum")]
#[derive(Debug, Clone, Copy, Default)]
pub struct AxumRoute;

#[cfg(feature = "axum")]
impl<B> EndpointName<B> for AxumRoute {
    fn name(&self, request: &http::Request<B>) -> String {
        match request.extensions().get::<axum::extract::MatchedPath>() {
            Some(path) => format!("{} {}", request.method(), path.as_str()),
            None => format!("{} (unmatched)", request.method()),
        }
    }
}

/// The layer.
#[derive(Debug, Clone)]
pub struct CpuLayer<N> {
    stats: Arc<RequestStats>,
    name: N,
}

impl<N> CpuLayer<N> {
    /// A layer recording into `stats`, naming endpoints with `name`.
    pub fn new(stats: Arc<RequestStats>, name: N) -> Self {
        CpuLayer { stats, name }
    }
}

impl<S, N: Clone> tower_layer::Layer<S> for CpuLayer<N> {
    type Service = CpuService<S, N>;

    fn layer(&self, inner: S) -> Self::Service {
        CpuService {
            inner,
            stats: self.stats.clone(),
            name: self.name.clone(),
        }
    }
}

/// The service the layer wraps around yours.
#[derive(Debug, Clone)]
pub struct CpuService<S, N> {
    inner: S,
    stats: Arc<RequestStats>,
    name: N,
}

impl<S, N, B> tower_service::Service<http::Request<B>> for CpuService<S, N>
where
    S: tower_service::Service<http::Request<B>>,
    N: EndpointName<B>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = RequestFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let endpoint = self.name.name(&request);
        let labels: LabelSetId = intern(LabelSet::new([("endpoint", endpoint.as_str())]));
        // Creating the inner future may already do work: it is counted
        // from here to the end of the first poll, which hyper runs right
        // after on the same thread (one read fewer than measuring each).
        let started = Started::now();
        let future = self.inner.call(request);
        RequestFuture {
            inner: Labeled::new(labels, future),
            endpoint: Some(endpoint),
            stats: self.stats.clone(),
            cost: 0,
            called: Some(started),
        }
    }
}

pin_project_lite::pin_project! {
    /// A request in flight: labelled, and metered at every poll.
    pub struct RequestFuture<F> {
        #[pin]
        inner: Labeled<F>,
        endpoint: Option<String>,
        stats: Arc<RequestStats>,
        cost: u64,
        called: Option<Started>,
    }
}

impl<F: Future> Future for RequestFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let before = match this.called.take() {
            // Polled right after `call` on the same thread: one span.
            Some(called) if called.still_running_here() => called,
            // Elsewhere or later: `call`'s own work is not counted (hyper
            // and axum always poll right away; another server might not).
            _ => Started::now(),
        };
        let result = this.inner.poll(cx);
        *this.cost = this
            .cost
            .saturating_add(read_counter().saturating_sub(before.value));
        if result.is_ready() {
            if let Some(endpoint) = this.endpoint.take() {
                this.stats.record(&endpoint, *this.cost);
            }
        }
        result
    }
}
