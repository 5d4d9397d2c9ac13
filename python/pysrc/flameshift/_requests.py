"""One request's accounting: its endpoint, its own CPU (the thread's
counter read around it, or around each step of it under ASGI), and the
label the sampler reads while it runs. Shared by every middleware."""

from . import _native

#: The endpoint of requests no route matched.
UNMATCHED = "(unmatched)"


class Request:
    """A request being served. `route` is the framework's template
    (``/users/<int:uid>``); the endpoint is ``"{METHOD} {route}"``."""

    __slots__ = ("method", "route", "cost", "_started", "_done")

    def __init__(self, method):
        self.method = method or "GET"
        self.route = None
        self.cost = 0
        self._started = None
        self._done = False

    @property
    def endpoint(self):
        if self.route is None:
            return UNMATCHED
        return f"{self.method} {self.route}"

    def routed(self, route):
        """The framework matched `route`: samples from now on carry it."""
        if route and route != self.route:
            self.route = route
            if self._started is not None:
                _native.enter(self.endpoint)

    def begin(self):
        """Starts metering on the calling thread."""
        self._started = _native.begin(self.endpoint)

    def end(self):
        """Stops metering on the calling thread."""
        if self._started is not None:
            self.cost += _native.end(self.endpoint, self._started, 0, False)
            self._started = None

    def finish(self):
        """Stops metering and records the request, once."""
        if self._done:
            self.end()
            return
        self._done = True
        if self._started is None:
            _native.record(self.endpoint, self.cost)
            return
        step = _native.end(self.endpoint, self._started, self.cost, True)
        self._started = None
        self.cost += step
