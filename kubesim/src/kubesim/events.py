"""The change log every write appends to, and the subscriptions watches and controllers read from."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .errors import Gone

__all__ = ["Event", "EventLog", "Subscription"]


@dataclass(frozen=True, slots=True)
class Event:
    """One committed change. ``old`` is the previous version, so watches with selectors can turn a
    MODIFIED that leaves (or enters) the selection into DELETED (or ADDED) as a real server does."""

    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    key: str  # resource storage key, group/plural
    obj: dict[str, Any]
    old: dict[str, Any] | None = None


class Subscription:
    """A queue of events for one storage key (or all keys); closed by the server or a fault."""

    _CLOSED = None

    def __init__(self, log: EventLog, key: str | None) -> None:
        self._log = log
        self.key = key
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self.closed = False

    def offer(self, event: Event) -> None:
        if not self.closed and (self.key is None or self.key == event.key):
            self.queue.put_nowait(event)

    def close(self) -> None:
        """End the stream: the reader sees ``None`` next, like a dropped connection."""
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(self._CLOSED)
            self._log.unsubscribe(self)

    async def next(self) -> Event | None:
        return await self.queue.get()


class EventLog:
    """Bounded history of events. Watching from a version older than what is retained is 410 Gone."""

    def __init__(self, history: int) -> None:
        self.history = history
        self._events: deque[Event] = deque()
        self.floor = 0  # the newest resourceVersion no longer replayable
        self._subscribers: set[Subscription] = set()

    def append(self, event: Event) -> None:
        self._events.append(event)
        if len(self._events) > self.history:
            self.floor = self._events.popleft().rv
        for sub in list(self._subscribers):
            sub.offer(event)

    def compact(self, rv: int) -> None:
        """Forget all history up to ``rv`` (a fault tests use to force 410 on re-watch)."""
        while self._events and self._events[0].rv <= rv:
            self._events.popleft()
        self.floor = max(self.floor, rv)

    def check(self, rv: int) -> None:
        if rv < self.floor:
            raise Gone(f"too old resource version: {rv} ({self.floor + 1})")

    def since(self, rv: int, key: str | None) -> Iterator[Event]:
        """Retained events newer than ``rv`` for ``key``, oldest first."""
        self.check(rv)
        newer: list[Event] = []
        for event in reversed(self._events):
            if event.rv <= rv:
                break
            if key is None or event.key == key:
                newer.append(event)
        return reversed(newer)

    def subscribe(self, key: str | None) -> Subscription:
        sub = Subscription(self, key)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)

    def subscriptions(self) -> list[Subscription]:
        return list(self._subscribers)
