#!/usr/bin/env python3
"""What metering a request costs the thread that serves it: a trivial WSGI
application called directly, bare and through `flameshift.wsgi.Middleware`
(the thread's counter read at the start and end, the endpoint entered and
left, the request recorded), CPU time of the calling thread per call,
the median of 7 alternating runs of 200,000 calls each.

    python3 scripts/bench-python-metering.py

Needs the flameshift package (`pip install ./python`); the agent runs
without stacks (frequency 0) and uploads to a closed port.
"""

import statistics
import time

import flameshift
from flameshift.wsgi import Middleware


def app(environ, start_response):
    start_response("200 OK", [])
    return [b"ok"]


def per_call_ns(wsgi, calls=200_000):
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/x"}
    started = time.thread_time_ns()
    for _ in range(calls):
        body = wsgi(environ, lambda status, headers: None)
        list(body)
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return (time.thread_time_ns() - started) / calls


def main():
    flameshift.start(service="bench", deploy="v1", analyzer="http://127.0.0.1:9", frequency=0)
    metered_app = Middleware(app, endpoint=lambda environ: "/x")
    bare, metered = [], []
    for _ in range(7):
        bare.append(per_call_ns(app))
        metered.append(per_call_ns(metered_app))
    flameshift.stop()
    b, m = statistics.median(bare), statistics.median(metered)
    print(f"bare {b / 1e3:.2f} µs, metered {m / 1e3:.2f} µs: metering costs {(m - b) / 1e3:.2f} µs of CPU a request")


if __name__ == "__main__":
    main()
