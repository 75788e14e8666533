"""Watch streams: replay from a resourceVersion, then live events, bookmarks, timeouts and 410s."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .errors import Gone
from .events import Event
from .resources import ResourceType
from .selectors import Selector
from .store import Store

__all__ = ["WatchRequest", "serve_error", "serve_watch", "translate"]

_BATCH = 256
Render = Callable[[dict[str, Any], bool], dict[str, Any]]


@dataclass(frozen=True, kw_only=True)
class WatchRequest:
    rtype: ResourceType
    selector: Selector
    resource_version: str = ""
    send_initial: bool = False
    bookmarks: bool = False
    timeout: float = 1800.0
    bookmark_interval: float = 1.0


def translate(event: Event, selector: Selector) -> str | None:
    """The event type this watcher sees: objects moving out of (into) the selection are DELETED
    (ADDED), as on a real server; ``None`` when the watcher does not see it at all."""
    if event.type == "MODIFIED":
        was, now = event.old is not None and selector.matches(event.old), selector.matches(event.obj)
        if was and now:
            return "MODIFIED"
        return "DELETED" if was else ("ADDED" if now else None)
    return event.type if selector.matches(event.obj) else None


class _Stream:
    """Writes newline-delimited watch events; ``render`` presents objects (API version, Table)."""

    def __init__(self, response: web.StreamResponse, render: Render) -> None:
        self.response = response
        self.render = render
        self.first = True

    def encode(self, kind: str, obj: dict[str, Any]) -> bytes:
        payload = obj if kind in ("ERROR", "BOOKMARK") else self.render(obj, self.first)
        if kind not in ("ERROR", "BOOKMARK"):
            self.first = False
        return json.dumps({"type": kind, "object": payload}).encode() + b"\n"

    async def send(self, kind: str, obj: dict[str, Any]) -> None:
        await self.response.write(self.encode(kind, obj))

    async def bookmark(self, rtype: ResourceType, rv: int, annotations: dict[str, str] | None = None) -> None:
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if annotations:
            meta["annotations"] = annotations
        await self.send("BOOKMARK", {"kind": rtype.kind, "apiVersion": rtype.api_version, "metadata": meta})


def _initial(store: Store, req: WatchRequest) -> tuple[Iterable[Event], bool]:
    """Events to send before live ones, and whether they are a synthetic snapshot."""
    rv = req.resource_version
    if rv in ("", "0") or req.send_initial:
        objects = store.items(req.rtype.key, req.selector)
        return [Event(0, "ADDED", req.rtype.key, obj) for obj in objects], True
    return store.log.since(int(rv), req.rtype.key), False


async def _open(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    return response


async def serve_error(request: web.Request, error: Gone) -> web.StreamResponse:
    """A watch stream that only says ``ERROR`` (410 Expired), as a real server answers a stale watch."""
    response = await _open(request)
    await response.write(json.dumps({"type": "ERROR", "object": error.body()}).encode() + b"\n")
    return response


async def serve_watch(
    request: web.Request, store: Store, req: WatchRequest, render: Render
) -> web.StreamResponse:
    response = await _open(request)
    stream = _Stream(response, render)
    # Subscribe before reading the log: no await separates the two, so no event falls in between.
    sub = store.subscribe(req.rtype.key)
    try:
        try:
            backlog, snapshot = _initial(store, req)
            backlog = list(backlog)
        except (Gone, ValueError) as exc:
            error = Gone(
                str(exc) if isinstance(exc, Gone) else f"invalid resourceVersion {req.resource_version!r}"
            )
            await stream.send("ERROR", error.body())
            return response
        for event in backlog:
            kind = event.type if snapshot else translate(event, req.selector)
            if kind:
                await stream.send(kind, event.obj)
        if snapshot and req.send_initial and req.bookmarks:
            await stream.bookmark(req.rtype, store.resource_version, {"k8s.io/initial-events-end": "true"})
        await _live(stream, store, sub, req)
    except ConnectionResetError:
        pass  # the client went away
    finally:
        sub.close()
    return response


async def _live(stream: _Stream, store: Store, sub: Any, req: WatchRequest) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + req.timeout
    while (remaining := deadline - loop.time()) > 0:
        try:
            event = await asyncio.wait_for(sub.next(), min(remaining, req.bookmark_interval))
        except TimeoutError:
            # The queue is drained, so every event up to the current version has been delivered.
            if req.bookmarks and sub.queue.empty():
                await stream.bookmark(req.rtype, store.resource_version)
            continue
        # Write whatever else is already queued in the same chunk: far fewer writes under load.
        batch = [event]
        while batch[-1] is not None and not sub.queue.empty() and len(batch) < _BATCH:
            batch.append(sub.queue.get_nowait())
        chunk = b"".join(
            stream.encode(kind, e.obj)
            for e in batch
            if e is not None and (kind := translate(e, req.selector))
        )
        if chunk:
            await stream.response.write(chunk)
        if batch[-1] is None:
            return  # dropped (fault injection or shutdown)
