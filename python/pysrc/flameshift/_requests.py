"""One request's accounting, shared by every middleware: its endpoint,
its own cost (the thread's counter read around it, or around each step
of it under ASGI), and the label the sampler reads while it runs.

`Request` is written in Rust (`python/src/request.rs`): a request pays a
few calls into it rather than a few Python frames each.

    request = Request("GET")      # endpoint "(unmatched)"
    request.routed("/users/<int:uid>")   # "GET /users/<int:uid>" from now on
    request.begin(); ...; request.end()  # one step (ASGI: each send/throw)
    request.finish()                     # the last step ends; recorded once
"""

from ._native import UNMATCHED, Request  # UNMATCHED: the endpoint of requests no route matched

__all__ = ["Request", "UNMATCHED"]
