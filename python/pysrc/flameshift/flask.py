"""Flask: ``flameshift.flask.instrument(app)``.

Every request is counted and costed (around the whole WSGI request); its
endpoint is ``"{METHOD} {rule}"`` with Flask's own rule
(``GET /users/<int:uid>``), known once Flask has matched the URL; a
request no rule matched is ``(unmatched)``.

The rule is read when Flask starts its `before_request` functions
(`app.preprocess_request`, wrapped), so that the samples of every hook
carry it. Not as a `before_request` function of its own: Flask asks each
of those whether it is a coroutine function, on every request, which
cost more than the rest of the metering together (BENCHMARKS.md, "What a
request pays").
"""

from . import warn_once
from .wsgi import ENVIRON_KEY, Middleware

try:  # Flask 2.2 and later: the request context's own variable
    from flask.globals import _cv_request

    def _current_request():
        context = _cv_request.get(None)
        return None if context is None else context.request
except ImportError:  # pragma: no cover - older Flask
    def _current_request():
        from flask import has_request_context, request

        return request._get_current_object() if has_request_context() else None


def instrument(app):
    """Meters every request of the Flask application `app`; returns it."""
    app.wsgi_app = Middleware(app.wsgi_app)
    preprocess = app.preprocess_request

    def preprocess_request():
        try:
            request = _current_request()
            if request is not None:
                rule = request.url_rule
                metered = request.environ.get(ENVIRON_KEY)
                if rule is not None and metered is not None:
                    metered.routed(rule.rule)
        except Exception as error:
            warn_once("flask", "flameshift: route not named: %r", error)
        return preprocess()

    app.preprocess_request = preprocess_request
    return app
