"""WSGI: each request counted and costed, read around the whole request
(the application's call and the iteration of its body, until the server
closes it).

    app = flameshift.wsgi.Middleware(app, endpoint=lambda environ: template)

`endpoint(environ)` names the route template of a request (never the raw
path: ``/users/<int:uid>``, not ``/users/42``); it is asked when the
request starts and, if it had no answer then, when it ends (a framework
may have routed by then). Requests it has no template for go under
``(unmatched)``. Frameworks with an integration (flameshift.flask,
flameshift.django) name their routes themselves.
"""

from . import warn_once
from ._requests import Request

#: Where the request's accounting waits in the WSGI environ.
ENVIRON_KEY = "flameshift.request"


def _route_of(endpoint, environ):
    if endpoint is None:
        return None
    try:
        return endpoint(environ)
    except Exception as error:  # the caller's function: never into the app
        warn_once("wsgi-endpoint", "flameshift: the endpoint function failed: %r", error)
        return None


class Middleware:
    """Wraps a WSGI application."""

    __slots__ = ("app", "endpoint")

    def __init__(self, app, endpoint=None):
        self.app = app
        self.endpoint = endpoint

    def __call__(self, environ, start_response):
        try:
            request = Request(environ.get("REQUEST_METHOD"))
            environ[ENVIRON_KEY] = request
            if self.endpoint is not None:
                request.routed(_route_of(self.endpoint, environ))
            request.begin()
        except Exception as error:
            warn_once("wsgi", "flameshift: request not metered: %r", error)
            return self.app(environ, start_response)
        try:
            body = self.app(environ, start_response)
        except BaseException:
            _finish(request, self.endpoint, environ)
            raise
        return _Body(body, request, self.endpoint, environ)


def _finish(request, endpoint, environ):
    try:
        if request.route is None and endpoint is not None:
            request.routed(_route_of(endpoint, environ))
        request.finish()
    except Exception as error:
        warn_once("wsgi-finish", "flameshift: request not recorded: %r", error)


class _Body:
    """The application's body; the request ends when the server closes it."""

    __slots__ = ("body", "request", "endpoint", "environ")

    def __init__(self, body, request, endpoint, environ):
        self.body = body
        self.request = request
        self.endpoint = endpoint
        self.environ = environ

    def __iter__(self):
        return iter(self.body)

    def close(self):
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            _finish(self.request, self.endpoint, self.environ)
