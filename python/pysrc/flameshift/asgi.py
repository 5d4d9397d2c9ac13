"""ASGI (Starlette, FastAPI): ``app.add_middleware(flameshift.asgi.Middleware)``,
or ``flameshift.asgi.Middleware(app, endpoint=lambda scope: template)``.

Every HTTP request is counted and costed per step: the middleware drives
the request's coroutine itself and reads the thread's counter around
each ``send``/``throw``, so that requests interleaved on one event loop
are neither mixed nor charged for each other (what the Rust agent's
layer does per poll). The endpoint is ``"{METHOD} {route}"``, the route
found the way Starlette's router will find it (``GET /users/{uid}``), or
what `endpoint(scope)` says; a request no route matches is
``(unmatched)``.

Not measured: work the request hands to other tasks (a task group, a
``BaseHTTPMiddleware``'s inner task) or to a thread pool (Starlette runs
plain ``def`` endpoints in one); their stacks are still sampled.
"""

from . import warn_once
from ._requests import Request


def _starlette_route(routes, scope, prefix=""):
    """The template of the route Starlette's router would pick, if any."""
    for route in routes:
        try:
            match, child = route.matches(scope)
        except Exception:
            continue
        if getattr(match, "name", "") != "FULL":
            continue
        inner = getattr(route, "routes", None)
        if inner:
            sub = dict(scope)
            sub.update(child)
            found = _starlette_route(inner, sub, prefix + getattr(route, "path", ""))
            if found:
                return found
            continue
        path = getattr(route, "path", None)
        if path is not None:
            return prefix + path
    return None


def _route_of(endpoint, scope):
    try:
        if endpoint is not None:
            return endpoint(scope)
        app = scope.get("app")
        router = getattr(app, "router", None)
        routes = getattr(router, "routes", None)
        if routes:
            return _starlette_route(routes, scope)
    except Exception as error:
        warn_once("asgi-endpoint", "flameshift: route not named: %r", error)
    return None


class Middleware:
    """Wraps an ASGI application."""

    def __init__(self, app, endpoint=None):
        self.app = app
        self.endpoint = endpoint

    async def __call__(self, scope, receive, send):
        if scope.get("type") != "http":
            return await self.app(scope, receive, send)
        try:
            request = Request(scope.get("method"))
            request.routed(_route_of(self.endpoint, scope))
        except Exception as error:
            warn_once("asgi", "flameshift: request not metered: %r", error)
            return await self.app(scope, receive, send)
        try:
            return await _Steps(self.app(scope, receive, send), request)
        finally:
            try:
                request.finish()
            except Exception as error:
                warn_once("asgi-finish", "flameshift: request not recorded: %r", error)


class _Steps:
    """Awaits a coroutine step by step, metering each step."""

    __slots__ = ("coroutine", "request")

    def __init__(self, coroutine, request):
        self.coroutine = coroutine
        self.request = request

    def __await__(self):
        coroutine, request = self.coroutine, self.request
        value, error = None, None
        while True:
            request.begin()
            try:
                if error is None:
                    yielded = coroutine.send(value)
                else:
                    yielded = coroutine.throw(error)
            except StopIteration as done:
                request.end()
                return done.value
            except BaseException:
                request.end()
                raise
            request.end()
            try:
                value, error = (yield yielded), None
            except BaseException as thrown:  # noqa: BLE001 - handed to the coroutine
                value, error = None, thrown
