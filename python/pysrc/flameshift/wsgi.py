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

The middleware and the body it wraps are written in Rust
(`python/src/middleware.rs`): a request pays calls through the C API
rather than Python frames. A failure of the metering is logged once and
the request served as if no middleware were there.
"""

from ._native import ENVIRON_KEY  # where a request's accounting sits in its environ
from ._native import WsgiMiddleware as Middleware

__all__ = ["Middleware", "ENVIRON_KEY"]
