"""Django: ``"flameshift.django.Middleware"`` in ``MIDDLEWARE`` (first, so
that the other middleware's work is the request's too).

Every request is counted and costed, read around the whole request; its
endpoint is ``"{METHOD} /{route}"`` with the pattern Django resolved
(``GET /users/<int:uid>/``), known once Django has resolved the URL; a
request that resolved to nothing is ``(unmatched)``. A streaming
response's body is produced after the middleware returns and is not part
of the request's cost.
"""

from . import warn_once
from ._requests import Request


def _route(request):
    match = getattr(request, "resolver_match", None)
    route = getattr(match, "route", None)
    if not route:
        return None
    return route if route.startswith("/") else "/" + route


class Middleware:
    """Django middleware (new style)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            metered = Request(request.method)
            request._flameshift = metered
            metered.begin()
        except Exception as error:
            warn_once("django", "flameshift: request not metered: %r", error)
            return self.get_response(request)
        try:
            return self.get_response(request)
        finally:
            try:
                metered.routed(_route(request))
                metered.finish()
            except Exception as error:
                warn_once("django-finish", "flameshift: request not recorded: %r", error)

    def process_view(self, request, view_func, view_args, view_kwargs):
        """Django resolved the URL: samples from now on carry the route."""
        try:
            metered = getattr(request, "_flameshift", None)
            if metered is not None:
                metered.routed(_route(request))
        except Exception as error:
            warn_once("django-route", "flameshift: route not named: %r", error)
        return None
