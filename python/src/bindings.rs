//! The module's Python functions: thin calls into [`crate::runtime`].

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// Starts the agent; returns the unit requests are costed in and why
/// stacks are not sampled (`None` when they are).
#[pyfunction]
#[pyo3(signature = (service=None, deploy=None, analyzer=None, token=None, ca_cert=None, frequency=None, upload_interval=None, import_paths=Vec::new()))]
#[allow(
    clippy::too_many_arguments,
    reason = "the keyword arguments of flameshift.start"
)]
fn start(
    py: Python<'_>,
    service: Option<String>,
    deploy: Option<String>,
    analyzer: Option<String>,
    token: Option<String>,
    ca_cert: Option<String>,
    frequency: Option<u64>,
    upload_interval: Option<u64>,
    import_paths: Vec<String>,
) -> PyResult<(&'static str, Option<String>)> {
    let settings = crate::runtime::Settings {
        service,
        deploy,
        analyzer,
        token,
        ca_cert,
        frequency,
        upload_interval,
        import_paths,
    };
    py.detach(|| crate::runtime::start(settings))
        .map(|s| (s.request_unit, s.no_stacks))
        .map_err(PyRuntimeError::new_err)
}

/// Stops the agent, shipping what it holds.
#[pyfunction]
fn stop(py: Python<'_>) {
    py.detach(crate::runtime::stop);
}

/// Whether the agent runs.
#[pyfunction]
fn running() -> bool {
    crate::runtime::is_running()
}

/// What the agent has done: profiles, samples, uploads, failures,
/// dropped uploads and samples.
#[pyfunction]
fn stats() -> Option<(u64, u64, u64, u64, u64, u64)> {
    crate::runtime::stats().map(|s| {
        (
            s.profiles,
            s.samples,
            s.uploads,
            s.failures,
            s.dropped_uploads,
            s.dropped_samples,
        )
    })
}

/// Requests recorded since the last upload: (endpoint, count, cost).
#[pyfunction]
fn requests() -> Vec<(String, u64, u64)> {
    crate::runtime::requests()
}

/// A request's step starts: the thread serves `endpoint`; the counter.
#[pyfunction]
fn begin(endpoint: &str) -> u64 {
    crate::runtime::begin(endpoint)
}

/// A request's step that began at `started` ends: its cost; with
/// `record`, the request (`cost_before` plus this step) is recorded.
#[pyfunction]
fn end(endpoint: &str, started: u64, cost_before: u64, record: bool) -> u64 {
    crate::runtime::end(endpoint, started, cost_before, record)
}

/// The calling thread now serves `endpoint`.
#[pyfunction]
fn enter(endpoint: &str) {
    crate::runtime::enter(endpoint);
}

/// One finished request of `endpoint` that cost `cost`.
#[pyfunction]
fn record(endpoint: &str, cost: u64) {
    crate::runtime::record(endpoint, cost);
}

/// `os.register_at_fork(before=...)`.
#[pyfunction]
fn before_fork() {
    crate::runtime::before_fork();
}

/// `os.register_at_fork(after_in_parent=...)`.
#[pyfunction]
fn after_fork_in_parent() {
    crate::runtime::after_fork_in_parent();
}

/// `os.register_at_fork(after_in_child=...)`: the child's own agent;
/// `None`, or why it has none.
#[pyfunction]
fn after_fork_in_child() -> Option<String> {
    crate::runtime::after_fork_in_child().err()
}

/// The module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(start, m)?)?;
    m.add_function(wrap_pyfunction!(stop, m)?)?;
    m.add_function(wrap_pyfunction!(running, m)?)?;
    m.add_function(wrap_pyfunction!(stats, m)?)?;
    m.add_function(wrap_pyfunction!(requests, m)?)?;
    m.add_function(wrap_pyfunction!(begin, m)?)?;
    m.add_function(wrap_pyfunction!(end, m)?)?;
    m.add_function(wrap_pyfunction!(enter, m)?)?;
    m.add_function(wrap_pyfunction!(record, m)?)?;
    m.add_function(wrap_pyfunction!(before_fork, m)?)?;
    m.add_function(wrap_pyfunction!(after_fork_in_parent, m)?)?;
    m.add_function(wrap_pyfunction!(after_fork_in_child, m)?)?;
    Ok(())
}
