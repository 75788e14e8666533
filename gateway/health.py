"""``/healthz``, ``/readyz`` and ``/metrics`` as a plain ASGI app (hypercorn serves it on 9090).

No framework: three fixed routes do not need one, and raw ASGI costs half of Quart per request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["health_app"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]
_TEXT = b"text/plain; charset=utf-8"
_METRICS = b"text/plain; version=0.0.4; charset=utf-8"


def health_app(ready: Callable[[], str | None], metrics: Callable[[], bytes]) -> App:
    """``ready()`` returns None when ready, else why not (shown on ``/readyz`` with a 503)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/healthz":
            await _respond(send, 200, b"ok\n")
        elif path == "/readyz":
            why = ready()
            await _respond(send, 200 if why is None else 503, b"ok\n" if why is None else why.encode() + b"\n")
        elif path == "/metrics":
            await _respond(send, 200, metrics(), _METRICS)
        else:
            await _respond(send, 404, b"not found\n")

    return app


async def _respond(send: Send, status: int, body: bytes, content_type: bytes = _TEXT) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
