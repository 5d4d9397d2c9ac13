//! The WSGI middleware and Flask's route hook, as Python classes written
//! in Rust (`flameshift._native.WsgiMiddleware`, `WsgiBody`,
//! `FlaskPreprocess`; `flameshift.wsgi` and `flameshift.flask` hand them
//! out). What a request pays to be metered was, under Flask, 7 µs of
//! which the two counter reads are 2.5: the rest was the Python frames
//! of the middleware, of the body it wraps and of the route hook, which
//! here are calls through the C API.
//!
//! Nothing here raises into the application: a failure of the metering
//! is logged once (`flameshift.warn_once`) and the request served as if
//! no middleware were there.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::bindings::PyRequest;
use crate::request::Request;

/// Where a request's accounting sits in its WSGI environ.
pub const ENVIRON_KEY: &str = "flameshift.request";

/// `flameshift.warn_once(key, message, error)`, itself never failing.
fn warn_once(py: Python<'_>, key: &str, message: &str, error: &PyErr) {
    let _ = py
        .import("flameshift")
        .and_then(|m| m.getattr("warn_once"))
        .and_then(|warn| warn.call1((key, message, error.value(py))));
}

/// The route template `endpoint(environ)` names, if any (its failure is
/// logged once, never raised).
fn route_of(py: Python<'_>, endpoint: &Py<PyAny>, environ: &Bound<'_, PyAny>) -> Option<String> {
    match endpoint.call1(py, (environ,)) {
        Ok(route) => route.extract::<Option<String>>(py).ok().flatten(),
        Err(error) => {
            warn_once(
                py,
                "wsgi-endpoint",
                "flameshift: the endpoint function failed: %r",
                &error,
            );
            None
        }
    }
}

/// The request ends: routed by `endpoint` if nothing routed it yet, and
/// recorded.
fn finish(py: Python<'_>, request: &Py<PyRequest>, endpoint: Option<&Py<PyAny>>, environ: &Bound<'_, PyAny>) {
    let unrouted = request.try_borrow(py).is_ok_and(|r| r.0.route().is_none());
    // The endpoint function is Python code: no borrow is held across it.
    let route = match endpoint {
        Some(endpoint) if unrouted => route_of(py, endpoint, environ),
        _ => None,
    };
    match request.try_borrow_mut(py) {
        Ok(mut request) => {
            request.0.routed(route.as_deref());
            request.0.finish();
        }
        // Only the application could hold it (through its environ).
        Err(error) => warn_once(
            py,
            "wsgi-finish",
            "flameshift: request not recorded: %r",
            &error.into(),
        ),
    }
}

/// `flameshift.wsgi.Middleware(app, endpoint=None)`: each request of
/// `app` counted and costed, read around the application's call and the
/// iteration of its body, until the server closes it.
#[pyclass(name = "WsgiMiddleware", module = "flameshift._native", frozen)]
pub struct WsgiMiddleware {
    /// The application.
    #[pyo3(get)]
    app: Py<PyAny>,
    /// Names a request's route template from its environ.
    #[pyo3(get)]
    endpoint: Option<Py<PyAny>>,
}

#[pymethods]
impl WsgiMiddleware {
    #[new]
    #[pyo3(signature = (app, endpoint=None))]
    fn new(app: Py<PyAny>, endpoint: Option<Py<PyAny>>) -> Self {
        WsgiMiddleware { app, endpoint }
    }

    fn __call__(
        &self,
        py: Python<'_>,
        environ: &Bound<'_, PyAny>,
        start_response: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let request = match self.begin(py, environ) {
            Ok(request) => request,
            Err(error) => {
                warn_once(py, "wsgi", "flameshift: request not metered: %r", &error);
                return self.app.call1(py, (environ, start_response));
            }
        };
        match self.app.call1(py, (environ, start_response)) {
            Ok(body) => {
                let body = WsgiBody {
                    body,
                    request,
                    endpoint: self.endpoint.as_ref().map(|e| e.clone_ref(py)),
                    environ: environ.clone().unbind(),
                };
                Ok(Py::new(py, body)?.into_any())
            }
            Err(error) => {
                finish(py, &request, self.endpoint.as_ref(), environ);
                Err(error)
            }
        }
    }
}

impl WsgiMiddleware {
    /// A request starts: its accounting, in its environ, routed if the
    /// endpoint function knows its route already.
    fn begin(&self, py: Python<'_>, environ: &Bound<'_, PyAny>) -> PyResult<Py<PyRequest>> {
        let method = environ.call_method1(intern!(py, "get"), (intern!(py, "REQUEST_METHOD"),))?;
        let method: Option<String> = method.extract().ok().flatten();
        let route = self.endpoint.as_ref().and_then(|e| route_of(py, e, environ));
        let mut request = Request::new(method.as_deref());
        request.routed(route.as_deref());
        let request = Py::new(py, PyRequest(request))?;
        environ.set_item(intern!(py, ENVIRON_KEY), &request)?;
        request.try_borrow_mut(py)?.0.begin();
        Ok(request)
    }
}

/// The application's body; the request ends when the server closes it.
#[pyclass(name = "WsgiBody", module = "flameshift._native", frozen)]
pub struct WsgiBody {
    body: Py<PyAny>,
    request: Py<PyRequest>,
    endpoint: Option<Py<PyAny>>,
    environ: Py<PyAny>,
}

#[pymethods]
impl WsgiBody {
    fn __iter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self.body.bind(py).try_iter()?.into_any().unbind())
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let body = self.body.bind(py);
        // A list or a tuple (the common body) has no `close`: not asked
        // (on the stable ABI before 3.13 a missing attribute is an
        // exception made and dropped, ~0.3 µs).
        let plain = body.is_exact_instance_of::<PyList>() || body.is_exact_instance_of::<PyTuple>();
        let closed = if plain {
            Ok(())
        } else {
            match body.getattr_opt(intern!(py, "close")) {
                Ok(Some(close)) if !close.is_none() => close.call0().map(drop),
                Ok(_) => Ok(()),
                Err(error) => Err(error),
            }
        };
        finish(py, &self.request, self.endpoint.as_ref(), self.environ.bind(py));
        closed
    }
}

/// Flask's `app.preprocess_request`, wrapped: the request's rule named
/// (`GET /users/<int:uid>`) where Flask starts its `before_request`
/// functions, so that the samples of every hook carry it.
#[pyclass(name = "FlaskPreprocess", module = "flameshift._native", frozen)]
pub struct FlaskPreprocess {
    preprocess: Py<PyAny>,
    /// Flask's `_cv_request`: the current request context.
    current: Py<PyAny>,
}

#[pymethods]
impl FlaskPreprocess {
    #[new]
    fn new(preprocess: Py<PyAny>, current: Py<PyAny>) -> Self {
        FlaskPreprocess { preprocess, current }
    }

    fn __call__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if let Err(error) = self.route(py) {
            warn_once(py, "flask", "flameshift: route not named: %r", &error);
        }
        self.preprocess.call0(py)
    }
}

impl FlaskPreprocess {
    fn route(&self, py: Python<'_>) -> PyResult<()> {
        let context = self
            .current
            .bind(py)
            .call_method1(intern!(py, "get"), (py.None(),))?;
        if context.is_none() {
            return Ok(());
        }
        let request = context.getattr(intern!(py, "request"))?;
        let rule = request.getattr(intern!(py, "url_rule"))?;
        if rule.is_none() {
            return Ok(());
        }
        let metered = request
            .getattr(intern!(py, "environ"))?
            .call_method1(intern!(py, "get"), (intern!(py, ENVIRON_KEY),))?;
        let Ok(metered) = metered.cast::<PyRequest>() else {
            return Ok(());
        };
        let rule: String = rule.getattr(intern!(py, "rule"))?.extract()?;
        metered.try_borrow_mut()?.0.routed(Some(&rule));
        Ok(())
    }
}
