#!/usr/bin/env python3
"""What metering a request costs the thread that serves it, CPU time of
the calling thread per call, the median of 7 alternating runs:

- a trivial WSGI application called directly (200,000 calls a run),
  bare and through `flameshift.wsgi.Middleware` (the thread's counter
  read at the start and end, the endpoint entered and left, the request
  recorded);
- a Flask application with one route (`/users/<int:uid>`, 20,000 calls
  of a prepared request a run), bare and through
  `flameshift.flask.instrument` (the same, and the rule named);
- the peer: the same middleware and Flask hook written in Python, as
  they were before 0fef2c1 (Rust since), in the same runs;
- the pair of counter reads alone (`time.thread_time_ns()` twice, the
  same system call the agent makes where no PMU counter opens), around
  the bare Flask call.

    python3 scripts/bench-python-metering.py

Needs the flameshift package (`pip install ./python`) and Flask; the
agent runs without stacks (frequency 0) and uploads to a closed port.
"""

import statistics
import time

import flameshift
import flameshift.flask
from flameshift._requests import Request
from flameshift.wsgi import ENVIRON_KEY, Middleware


def app(environ, start_response):
    start_response("200 OK", [])
    return [b"ok"]


def per_call_ns(wsgi, environ, calls):
    started = time.thread_time_ns()
    for _ in range(calls):
        body = wsgi(dict(environ), lambda status, headers: None)
        list(body)
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return (time.thread_time_ns() - started) / calls


def flask_app(instrumented):
    from flask import Flask

    application = Flask("bench")

    @application.route("/users/<int:uid>")
    def user(uid):
        return "ok"

    return flameshift.flask.instrument(application) if instrumented else application


class PythonMiddleware:
    """The peer: the same WSGI middleware written in Python, as
    flameshift.wsgi had it before 0fef2c1 (Rust since)."""

    __slots__ = ("app", "endpoint")

    def __init__(self, app, endpoint=None):
        self.app = app
        self.endpoint = endpoint

    def __call__(self, environ, start_response):
        request = Request(environ.get("REQUEST_METHOD"))
        environ[ENVIRON_KEY] = request
        if self.endpoint is not None:
            request.routed(self.endpoint(environ))
        request.begin()
        try:
            body = self.app(environ, start_response)
        except BaseException:
            request.finish()
            raise
        return _PythonBody(body, request, self.endpoint, environ)


class _PythonBody:
    __slots__ = ("body", "request", "endpoint", "environ")

    def __init__(self, body, request, endpoint, environ):
        self.body, self.request, self.endpoint, self.environ = body, request, endpoint, environ

    def __iter__(self):
        return iter(self.body)

    def close(self):
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            if self.request.route is None and self.endpoint is not None:
                self.request.routed(self.endpoint(self.environ))
            self.request.finish()


def python_instrumented_flask_app():
    """The peer for Flask: flameshift.flask.instrument as it was in Python."""
    from flask.globals import _cv_request

    application = flask_app(False)
    application.wsgi_app = PythonMiddleware(application.wsgi_app)
    preprocess = application.preprocess_request

    def preprocess_request():
        context = _cv_request.get(None)
        request = None if context is None else context.request
        if request is not None:
            rule = request.url_rule
            metered = request.environ.get(ENVIRON_KEY)
            if rule is not None and metered is not None:
                metered.routed(rule.rule)
        return preprocess()

    application.preprocess_request = preprocess_request
    return application


class ReadsAround:
    """Only the two counter reads around a WSGI application."""

    def __init__(self, wsgi):
        self.wsgi = wsgi

    def __call__(self, environ, start_response):
        time.thread_time_ns()
        body = self.wsgi(environ, start_response)
        time.thread_time_ns()
        return body


def compare(name, configurations, environ, calls):
    runs = {label: [] for label in configurations}
    for _ in range(7):
        for label, wsgi in configurations.items():
            runs[label].append(per_call_ns(wsgi, environ, calls))
    medians = {label: statistics.median(values) / 1e3 for label, values in runs.items()}
    bare = medians.pop("bare")
    print(f"{name}: bare {bare:.2f} µs; " + ", ".join(
        f"{label} {value:.2f} µs (+{value - bare:.2f})" for label, value in medians.items()))


def main():
    from werkzeug.test import EnvironBuilder

    flameshift.start(service="bench", deploy="v1", analyzer="http://127.0.0.1:9", frequency=0)
    compare("WSGI", {"bare": app, "metered": Middleware(app, endpoint=lambda environ: "/x"),
                     "metered in Python": PythonMiddleware(app, endpoint=lambda environ: "/x")},
            {"REQUEST_METHOD": "GET", "PATH_INFO": "/x"}, 200_000)
    bare = flask_app(False)
    compare("Flask", {"bare": bare, "instrumented": flask_app(True),
                      "instrumented in Python": python_instrumented_flask_app(),
                      "two counter reads": ReadsAround(bare)},
            EnvironBuilder(path="/users/7").get_environ(), 20_000)
    flameshift.stop()


if __name__ == "__main__":
    main()
