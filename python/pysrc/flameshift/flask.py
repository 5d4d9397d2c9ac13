"""Flask: ``flameshift.flask.instrument(app)``.

Every request is counted and costed (around the whole WSGI request); its
endpoint is ``"{METHOD} {rule}"`` with Flask's own rule
(``GET /users/<int:uid>``), known once Flask has matched the URL; a
request no rule matched is ``(unmatched)``.
"""

from . import warn_once
from .wsgi import ENVIRON_KEY, Middleware


def instrument(app):
    """Meters every request of the Flask application `app`; returns it."""
    app.wsgi_app = Middleware(app.wsgi_app)

    def name_the_route():
        try:
            from flask import request

            rule = request.url_rule
            metered = request.environ.get(ENVIRON_KEY)
            if rule is not None and metered is not None:
                metered.routed(rule.rule)
        except Exception as error:
            warn_once("flask", "flameshift: route not named: %r", error)

    # First, so that samples of the other hooks carry the route too.
    app.before_request_funcs.setdefault(None, []).insert(0, name_the_route)
    return app
