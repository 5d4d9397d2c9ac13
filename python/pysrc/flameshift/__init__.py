"""flameshift's agent for Python services.

Counts and costs every request per endpoint (instructions where a
hardware counter opens, else the thread's CPU time), samples the
interpreter's stacks (each thread reads its own in a signal handler
written in Rust, CPython 3.9 to 3.13), and ships both to
``flameshift serve``, which compares each endpoint's and function's cost
per request across deploys.

    import flameshift
    flameshift.start(service="shop", deploy="v42", analyzer="http://127.0.0.1:7411")

    # Flask:   flameshift.flask.instrument(app)
    # Django:  MIDDLEWARE = ["flameshift.django.Middleware", ...]
    # ASGI:    app.add_middleware(flameshift.asgi.Middleware)
    # WSGI:    app = flameshift.wsgi.Middleware(app, endpoint=lambda environ: ...)

Every argument of ``start`` falls back to its ``FLAMESHIFT_*`` variable.
Nothing here raises into the application: a failure is logged once
(logger ``flameshift``) and the application runs on.
"""

import atexit
import logging
import os
import sys

from . import _native
from ._requests import UNMATCHED

__all__ = ["start", "stop", "running", "stats", "requests", "UNMATCHED"]

log = logging.getLogger("flameshift")

_hooks_installed = False
_warned = set()


def warn_once(key, message, *args):
    """Logs `message` the first time `key` is seen, never again."""
    if key not in _warned:
        _warned.add(key)
        log.warning(message, *args)


def _whole(value, name):
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        warn_once(name, "flameshift: %s must be a whole number, not %r; using the default", name, value)
        return None


def _import_paths():
    """sys.path, absolute (its "" is the working directory)."""
    return [os.path.abspath(p or os.curdir) for p in sys.path if isinstance(p, str)]


def start(service=None, deploy=None, analyzer=None, token=None, ca_cert=None,
          frequency=None, upload_interval=None):
    """Starts the agent of this process; True when it runs.

    `service`, `deploy`, `analyzer` (URL), `token`, `ca_cert` (a PEM file
    of certificate authorities for an https analyzer), `frequency` (samples
    a second, default 99; 0 counts and costs requests only) and
    `upload_interval` (seconds, default 10) fall back to
    FLAMESHIFT_SERVICE, FLAMESHIFT_DEPLOY, FLAMESHIFT_ANALYZER,
    FLAMESHIFT_TOKEN, FLAMESHIFT_CA_CERT, FLAMESHIFT_FREQUENCY and
    FLAMESHIFT_UPLOAD_INTERVAL. A process that forks (gunicorn, uWSGI
    without --lazy-apps) gets an agent of its own in each child; what a
    process holds at exit is shipped.
    """
    global _hooks_installed
    try:
        unit, no_stacks, reader = _native.start(
            service, deploy, analyzer, token,
            None if ca_cert is None else os.fspath(ca_cert),
            _whole(frequency, "frequency"), _whole(upload_interval, "upload_interval"),
            _import_paths(),
        )
    except Exception as error:  # never into the application
        warn_once("start", "flameshift agent not started: %s", error)
        return False
    if no_stacks:
        warn_once("stacks", "flameshift: no Python stacks (%s); requests are still counted and costed", no_stacks)
    if not _hooks_installed:
        _hooks_installed = True
        atexit.register(stop)
        # The agent's lock is held across every fork by its own
        # pthread_atfork handlers; a child of os.fork starts its agent
        # here, one of a fork the interpreter did not see (uWSGI's
        # workers) at its first request.
        os.register_at_fork(after_in_child=_after_fork_in_child)
    log.info("flameshift agent started (requests costed in %s, stacks read by %s)", unit, reader or "nothing")
    return True


def _after_fork_in_child():
    why = _native.after_fork_in_child()
    if why:
        warn_once("fork", "flameshift agent not restarted after fork: %s", why)


def stop():
    """Stops the agent, shipping what it holds (bounded by the upload timeout)."""
    try:
        _native.stop()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as error:  # a Rust panic is a BaseException
        warn_once("stop", "flameshift agent did not stop cleanly: %s", error)


def running():
    """Whether the agent runs in this process."""
    return _native.running()


def requests():
    """Requests recorded since the last upload: {endpoint: (count, cost)},
    cost in the counter's unit (instructions, else CPU ns)."""
    return {endpoint: (count, cost) for endpoint, count, cost in _native.requests()}


def stats():
    """What the agent has done so far (a dict), or None when it does not run."""
    numbers = _native.stats()
    if numbers is None:
        return None
    names = ("profiles", "samples", "uploads", "failures", "dropped_uploads", "dropped_samples")
    stats = dict(zip(names, numbers))
    # What reads the Python stacks: "flameshift" (each thread its own, in
    # its SIGPROF handler: CPython 3.9 to 3.13), "flameshift-thread" or
    # "py-spy" (a sampling thread), or None when none are sampled.
    stats["stack_reader"] = _native.stack_reader()
    # What became of the reads: ticks, failed, interrupted (the sampling
    # thread was preempted), running (the samples), idle (no Python
    # stack there), torn and straddled (a thread found mid-change: its
    # share left out).
    reads = _native.stack_reads()
    stats["stack_reads"] = None if reads is None else dict(reads)
    return stats


_INTEGRATIONS = ("asgi", "django", "flask", "wsgi")


def __getattr__(name):
    # `flameshift.flask.instrument(app)` after a bare `import flameshift`:
    # each integration is imported on first use (none imports its
    # framework before).
    if name in _INTEGRATIONS:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'flameshift' has no attribute {name!r}")
