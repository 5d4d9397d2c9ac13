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
) -> PyResult<(&'static str, Option<String>, Option<&'static str>)> {
    let settings = crate::runtime::Settings {
        service,
        deploy,
        analyzer,
        token,
        ca_cert,
        frequency,
        upload_interval,
        import_paths,
        interpreter: None,
        this_thread_state: None,
    };
    let own = own_stack_reader(py);
    let this_thread_state = match &own {
        Ok(interpreter) => own_thread_reader(py, interpreter),
        Err(_) => Err(NotOwn::NotWanted(String::new())),
    };
    let settings = crate::runtime::Settings {
        interpreter: own.as_ref().ok().copied(),
        this_thread_state: this_thread_state.as_ref().ok().copied(),
        ..settings
    };
    let started = py.detach(|| crate::runtime::start(settings));
    // Said once logging is set up (by `start`): a layout that failed its
    // check is worth a warning, py-spy asked for or a version without a
    // layout is not.
    match (&started, &own) {
        (Ok(started), Err(NotOwn::CheckFailed(why))) if started.stack_reader.is_some() => {
            tracing::warn!("Python stacks read through py-spy: the agent's own reader {why}");
        }
        (Ok(started), Err(NotOwn::NotWanted(why))) if started.stack_reader.is_some() => {
            tracing::info!("Python stacks read through py-spy: {why}");
        }
        _ => {}
    }
    if let (Ok(started), Err(NotOwn::CheckFailed(why))) = (&started, &this_thread_state) {
        if started.stack_reader.is_some() {
            tracing::warn!("Python stacks read by a sampling thread: the signal handler's reader {why}");
        }
    }
    started
        .map(|s| (s.request_unit, s.no_stacks, s.stack_reader))
        .map_err(PyRuntimeError::new_err)
}

/// Why the agent's own stack reader is not used.
enum NotOwn {
    /// Asked for py-spy, or no layout of this version.
    NotWanted(String),
    /// The layout did not read the calling thread's stack as the
    /// interpreter lists it.
    CheckFailed(String),
}

#[allow(unsafe_code)]
mod cpython {
    //! What the agent's own stack reader takes from CPython's C API.
    unsafe extern "C" {
        pub fn PyInterpreterState_Get() -> usize;
        pub fn PyInterpreterState_ThreadHead(interp: usize) -> usize;
        pub fn PyGILState_GetThisThreadState() -> usize;
        pub static PyCode_Type: u8;
        pub static PyUnicode_Type: u8;
    }

    /// The running interpreter, as the reader needs it.
    pub fn interpreter(version: (u8, u8)) -> flameshift_collector::cpython::Interpreter {
        flameshift_collector::cpython::Interpreter {
            version,
            // SAFETY: called with the GIL held (from a #[pyfunction]).
            state: unsafe { PyInterpreterState_Get() },
            thread_head: flameshift_collector::cpython::ThreadHead::Function(PyInterpreterState_ThreadHead),
            code_type: std::ptr::addr_of!(PyCode_Type) as usize,
            string_type: std::ptr::addr_of!(PyUnicode_Type) as usize,
        }
    }
}

/// The running interpreter, if the agent's own reader knows its layout
/// and reads the calling thread's stack (which holds still: this thread
/// holds the GIL) as the interpreter itself lists it, and
/// `FLAMESHIFT_STACK_READER=py-spy` does not ask for py-spy; else why not.
fn own_stack_reader(py: Python<'_>) -> Result<flameshift_collector::cpython::Interpreter, NotOwn> {
    if std::env::var("FLAMESHIFT_STACK_READER").is_ok_and(|v| v == "py-spy") {
        return Err(NotOwn::NotWanted("FLAMESHIFT_STACK_READER=py-spy".to_owned()));
    }
    let version = py.version_info();
    let version = (version.major, version.minor);
    let interpreter = cpython::interpreter(version);
    if flameshift_collector::cpython::layout::Layout::of(version.0, version.1).is_none() {
        return Err(NotOwn::NotWanted(format!(
            "the agent has no layout of CPython {}.{}",
            version.0, version.1
        )));
    }
    let mut walker = flameshift_collector::cpython::Walker::new(
        interpreter,
        flameshift_collector::cpython::Memory::this_process(),
    )
    .ok_or_else(|| {
        // The one other reason (3.9, 3.10 name threads by `pthread_t`).
        NotOwn::CheckFailed(
            "could not find where this C library's thread descriptors keep a thread's kernel id".to_owned(),
        )
    })?;
    let expected = python_stack(py)
        .map_err(|e| NotOwn::CheckFailed(format!("could not list the interpreter's own stack: {e}")))?;
    walker
        .check(crate::cpu::current_tid(), &expected)
        .map_err(|e| NotOwn::CheckFailed(format!("failed its check: {e}")))?;
    Ok(interpreter)
}

/// CPython's function that gives a thread its own state, once the
/// signal handler's reader ([`flameshift_collector::cpython::current`])
/// reads the calling thread's stack as the interpreter lists it, and
/// `FLAMESHIFT_STACK_READER=thread` does not ask for a sampling thread;
/// else why not.
fn own_thread_reader(
    py: Python<'_>,
    interpreter: &flameshift_collector::cpython::Interpreter,
) -> Result<flameshift_collector::cpython::current::ThisThreadState, NotOwn> {
    use flameshift_collector::cpython::current::{CurrentStack, CurrentThreadReader};
    if std::env::var("FLAMESHIFT_STACK_READER").is_ok_and(|v| v == "thread") {
        return Err(NotOwn::NotWanted("FLAMESHIFT_STACK_READER=thread".to_owned()));
    }
    let this_thread_state =
        cpython::PyGILState_GetThisThreadState as flameshift_collector::cpython::current::ThisThreadState;
    let reader = CurrentThreadReader::new(interpreter.version, this_thread_state)
        .ok_or_else(|| NotOwn::NotWanted("no layout".to_owned()))?;
    let mut walker = flameshift_collector::cpython::Walker::new(
        *interpreter,
        flameshift_collector::cpython::Memory::this_process(),
    )
    .ok_or_else(|| NotOwn::NotWanted("no layout".to_owned()))?;
    let expected = python_stack(py)
        .map_err(|e| NotOwn::CheckFailed(format!("could not list the interpreter's own stack: {e}")))?;
    let mut codes = [0u64; 128];
    let CurrentStack::Frames(n) = reader.read(&mut codes) else {
        return Err(NotOwn::CheckFailed(
            "could not read the calling thread's stack".to_owned(),
        ));
    };
    let mut names: Vec<(String, String)> = Vec::new();
    let mut ids = Vec::new();
    walker
        .name_codes(
            &codes[..n],
            &mut |frame| {
                names.push((frame.qualname.to_owned(), frame.filename.to_owned()));
                names.len() as u32 - 1
            },
            &mut ids,
        )
        .map_err(|_| NotOwn::CheckFailed("could not name the calling thread's frames".to_owned()))?;
    let read: Vec<&(String, String)> = ids.iter().map(|&id| &names[id as usize]).collect();
    let expected: Vec<&(String, String)> = expected.iter().take(codes.len()).collect();
    if read == expected {
        Ok(this_thread_state)
    } else {
        Err(NotOwn::CheckFailed(format!(
            "read {read:?} where the interpreter has {expected:?}"
        )))
    }
}

/// The calling thread's stack as the interpreter lists it, innermost
/// frame first: each frame's qualified name (3.9, 3.10: its name) and
/// file.
fn python_stack(py: Python<'_>) -> PyResult<Vec<(String, String)>> {
    let mut frame = py.import("sys")?.call_method1("_getframe", (0,))?;
    let mut stack = Vec::new();
    while !frame.is_none() {
        let code = frame.getattr("f_code")?;
        let name = match code.getattr("co_qualname") {
            Ok(qualname) => qualname,
            Err(_) => code.getattr("co_name")?,
        };
        stack.push((name.extract()?, code.getattr("co_filename")?.extract()?));
        frame = frame.getattr("f_back")?;
    }
    Ok(stack)
}

/// What became of the stack reads: counts by name, or `None` when no
/// stacks are sampled.
#[pyfunction]
fn stack_reads() -> Option<Vec<(&'static str, u64)>> {
    crate::runtime::read_stats()
        .map(|counts| crate::stacks::ReadStats::NAMES.into_iter().zip(counts).collect())
}

/// What reads the stacks: `flameshift` (the agent's own reader),
/// `py-spy`, or `None` when none are sampled.
#[pyfunction]
fn stack_reader() -> Option<&'static str> {
    crate::runtime::stack_reader()
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

/// One request's accounting ([`crate::request::Request`]), as the
/// middleware sees it.
#[pyclass(name = "Request", module = "flameshift._native")]
pub struct PyRequest(pub crate::request::Request);

#[pymethods]
impl PyRequest {
    #[new]
    #[pyo3(signature = (method=None))]
    fn new(method: Option<&str>) -> Self {
        PyRequest(crate::request::Request::new(method))
    }

    /// The method (`GET` when the server gave none).
    #[getter]
    fn method(&self) -> &str {
        self.0.method()
    }

    /// The route template, once known.
    #[getter]
    fn route(&self) -> Option<&str> {
        self.0.route()
    }

    /// `"{METHOD} {route}"`, or `(unmatched)`.
    #[getter]
    fn endpoint(&self) -> &str {
        self.0.endpoint()
    }

    /// What its steps cost so far.
    #[getter]
    fn cost(&self) -> u64 {
        self.0.cost()
    }

    /// The framework matched `route`: samples from now on carry it.
    #[pyo3(signature = (route))]
    fn routed(&mut self, route: Option<&str>) {
        self.0.routed(route);
    }

    /// A step starts on the calling thread.
    fn begin(&mut self) {
        self.0.begin();
    }

    /// The running step ends.
    fn end(&mut self) {
        self.0.end();
    }

    /// The running step ends and the request is recorded, once.
    fn finish(&mut self) {
        self.0.finish();
    }
}

/// `os.register_at_fork(after_in_child=...)`: the child's own agent;
/// `None`, or why it has none. (The lock is held across the fork by
/// `pthread_atfork` handlers, [`crate::runtime`].)
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
    m.add_function(wrap_pyfunction!(stack_reader, m)?)?;
    m.add_function(wrap_pyfunction!(stack_reads, m)?)?;
    m.add_function(wrap_pyfunction!(requests, m)?)?;
    m.add_class::<PyRequest>()?;
    m.add_class::<crate::middleware::WsgiMiddleware>()?;
    m.add_class::<crate::middleware::WsgiBody>()?;
    m.add_class::<crate::middleware::FlaskPreprocess>()?;
    m.add("ENVIRON_KEY", crate::middleware::ENVIRON_KEY)?;
    m.add("UNMATCHED", crate::request::UNMATCHED)?;
    m.add_function(wrap_pyfunction!(after_fork_in_child, m)?)?;
    Ok(())
}
