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
from flameshift.wsgi import Middleware


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
    compare("WSGI", {"bare": app, "metered": Middleware(app, endpoint=lambda environ: "/x")},
            {"REQUEST_METHOD": "GET", "PATH_INFO": "/x"}, 200_000)
    bare = flask_app(False)
    compare("Flask", {"bare": bare, "instrumented": flask_app(True), "two counter reads": ReadsAround(bare)},
            EnvironBuilder(path="/users/7").get_environ(), 20_000)
    flameshift.stop()


if __name__ == "__main__":
    main()
