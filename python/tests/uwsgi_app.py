"""A WSGI application that starts the agent at import, loaded once by
uWSGI's master (no --lazy-apps): its workers are forked from C, where
the interpreter's os.register_at_fork hooks do not run."""

import os

import flameshift

flameshift.start(service="uwsgi", deploy="v1", analyzer=os.environ["ANALYZER"], upload_interval=60)


def burn(units):
    x = 1
    for _ in range(units * 1000):
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
    return x


def app(environ, start_response):
    burn(20)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]


application = flameshift.wsgi.Middleware(app, endpoint=lambda environ: "GET /burn")
