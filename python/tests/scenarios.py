"""What the agent's tests run in a process of their own (the agent is one
per process): each scenario prints one JSON line of what it saw.

    python3 scenarios.py NAME ANALYZER_URL [ARG]
"""

import json
import os
import sys
import time

import flameshift
from flameshift.wsgi import Middleware

UNIT = 2000


def a(seed):
    x = seed
    for _ in range(2 * UNIT):
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
    return x


def b(seed):
    x = seed
    for _ in range(UNIT):
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
    return x


def app(environ, start_response):
    """A WSGI application: /a costs two units of work, /b one."""
    work = a if environ["PATH_INFO"] == "/a" else b
    work(7)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def routed(environ):
    return environ["PATH_INFO"]


def call(wsgi, path):
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path}
    body = wsgi(environ, lambda status, headers: None)
    list(body)
    body.close()


def attribution(url, seconds):
    """a and b at 2:1 in two threads (twice the samples), at 999 Hz."""
    import threading

    flameshift.start(service="ratio", deploy="v1", analyzer=url, frequency=999, upload_interval=1)
    until = time.time() + float(seconds)

    def loop():
        while time.time() < until:
            b(a(1))

    threads = [threading.Thread(target=loop) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = flameshift.stats()
    flameshift.stop()
    return {"stats": stats}


def fork(url, requests):
    """The agent started before fork runs anew in the child, whose
    requests and stacks are shipped when it stops."""
    flameshift.start(service="forked", deploy="v1", analyzer=url, frequency=999, upload_interval=1)
    parent = os.getpid()
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(reader)
        wsgi = Middleware(app, endpoint=routed)
        for _ in range(int(requests)):
            call(wsgi, "/a")
        seen = {"pid": os.getpid(), "running": flameshift.running(), "requests": flameshift.requests()}
        flameshift.stop()
        os.write(writer, json.dumps(seen).encode())
        os._exit(0)
    os.close(writer)
    _, status = os.waitpid(child, 0)
    seen = json.loads(os.read(reader, 1 << 16) or b"{}")
    flameshift.stop()
    return {"parent": parent, "child": seen, "status": status}


def unreachable(url, seconds):
    """A dead analyzer: requests are served as fast as without one."""
    flameshift.start(service="dead", deploy="v1", analyzer=url, frequency=99, upload_interval=1)
    wsgi = Middleware(app, endpoint=routed)
    slowest, served = 0.0, 0
    until = time.time() + float(seconds)
    while time.time() < until:
        started = time.perf_counter()
        call(wsgi, "/b")
        slowest = max(slowest, time.perf_counter() - started)
        served += 1
    stats = flameshift.stats()
    started = time.perf_counter()
    flameshift.stop()
    return {"slowest": slowest, "served": served, "stats": stats, "stop_seconds": time.perf_counter() - started}


def refused(url, seconds):
    """A token the analyzer refuses: one warning, the app runs on."""
    flameshift.start(service="refused", deploy="v1", analyzer=url, token="wrong", frequency=99, upload_interval=1)
    wsgi = Middleware(app, endpoint=routed)
    until = time.time() + float(seconds)
    served = 0
    while time.time() < until:
        call(wsgi, "/b")
        served += 1
    stats = flameshift.stats()
    flameshift.stop()
    return {"served": served, "stats": stats}


def produced():
    """A generator: its frame lives in its object, not on the thread's
    frame stack."""
    for seed in range(3):
        yield a(seed)


async def awaited():
    """A coroutine's frame, likewise."""
    return sum(produced())


def drive(coroutine):
    """Runs a coroutine that never suspends, as an event loop's step would."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("the coroutine suspended")


def smoke(url, _):
    """Every version: requests counted, stacks with qualified names,
    through generators and coroutines."""
    class Work:
        def heavy(self):
            return a(3)

    started = flameshift.start(service=f"smoke{sys.version_info[0]}{sys.version_info[1]}", deploy="v1",
                               analyzer=url, frequency=999, upload_interval=60)
    # Nothing is uploaded before `stop`, so that `requests()` still holds
    # every request when it is read (an upload takes them).
    wsgi = Middleware(app, endpoint=routed)
    until = time.time() + 2
    work = Work()
    while time.time() < until:
        call(wsgi, "/a")
        work.heavy()
        drive(awaited())
    requests = flameshift.requests()
    stats = flameshift.stats()
    flameshift.stop()
    return {"started": started, "requests": requests, "stats": stats,
            "version": list(sys.version_info[:2])}


if __name__ == "__main__":
    name, url = sys.argv[1], sys.argv[2]
    arg = sys.argv[3] if len(sys.argv) > 3 else "0"
    print(json.dumps(globals()[name](url, arg)), flush=True)
