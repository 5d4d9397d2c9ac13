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
from ._native import FlaskPreprocess
from .wsgi import ENVIRON_KEY, Middleware

try:  # Flask 2.2 and later: the request context's own variable
    from flask.globals import _cv_request
except ImportError:  # pragma: no cover - older Flask
    _cv_request = None


def _preprocess_with_route(preprocess):
    """Flask before 2.2: `preprocess` after the rule is named, in Python."""
    from flask import has_request_context, request as current

    def preprocess_request():
        try:
            if has_request_context():
                request = current._get_current_object()
                rule = request.url_rule
                metered = request.environ.get(ENVIRON_KEY)
                if rule is not None and metered is not None:
                    metered.routed(rule.rule)
        except Exception as error:
            warn_once("flask", "flameshift: route not named: %r", error)
        return preprocess()

    return preprocess_request


def instrument(app):
    """Meters every request of the Flask application `app`; returns it."""
    app.wsgi_app = Middleware(app.wsgi_app)
    if _cv_request is not None:
        # In Rust (python/src/middleware.rs): the same, through the C API.
        app.preprocess_request = FlaskPreprocess(app.preprocess_request, _cv_request)
    else:  # pragma: no cover - older Flask
        app.preprocess_request = _preprocess_with_route(app.preprocess_request)
    return app
