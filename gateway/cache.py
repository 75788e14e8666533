"""The pool's BuildKitWorkers as the gateway needs them: allocation id → a live route to a worker.

Fed by the watch in :mod:`.kube`; read on every connection, so a lookup is two dict reads and a few
comparisons, never an API call. Every answer other than a live route is a :class:`Refused` whose
``reason`` becomes a metric label and whose message is safe to log (names and ids, no secrets).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from buildkit_controller.core.errors import BuildKitControllerError
from buildkit_controller.core.models.worker import Worker, WorkerPhase

__all__ = ["Refused", "Route", "WorkerCache"]

log = logging.getLogger(__name__)


class Refused(Exception):
    """The connection must be closed; ``reason`` is a short metric label."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Route:
    """Where an allocation's bytes go, and what must stay true for them to keep going."""

    worker: str
    allocation_id: str
    cert_serial: str
    expires_at: datetime
    host: str
    port: int

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class _Entry:
    worker: Worker
    ready: bool
    route: Route | None  # where its allocation's bytes go, if it has an allocation and an address


class WorkerCache:
    """Workers by name and by allocation id; ``synced`` is False until the first full list."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._by_allocation: dict[str, list[str]] = {}
        self.synced = False
        self._listeners: list[Callable[[], None]] = []

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every change (revocation re-checks live connections)."""
        self._listeners.append(listener)

    def replace(self, bodies: Iterable[Mapping[str, Any]]) -> None:
        """A fresh list: forget everything else, then mark the cache in sync."""
        self._entries = {}
        for body in bodies:
            self._store(body)
        self.synced = True
        self._changed()

    def apply(self, event_type: str, body: Mapping[str, Any]) -> None:
        """One watch event (ADDED, MODIFIED, DELETED)."""
        name = (body.get("metadata") or {}).get("name", "")
        if event_type == "DELETED":
            self._entries.pop(name, None)
        else:
            self._store(body)
        self._changed()

    def last_activity(self, worker: str) -> datetime | None:
        entry = self._entries.get(worker)
        return entry.worker.status.last_activity_at if entry else None

    def lookup(self, allocation_id: str, cert_serial: str, now: datetime) -> Route:
        """The live route for this allocation and certificate serial, or :class:`Refused`."""
        if not self.synced:
            raise Refused("not-synced", "the worker cache is not in sync with the API server")
        names = self._by_allocation.get(allocation_id)
        if not names:
            raise Refused("unknown-allocation", f"allocation {allocation_id} is not live on any worker")
        if len(names) > 1:  # two workers claiming one allocation: refuse rather than guess
            raise Refused("ambiguous-allocation", f"allocation {allocation_id} is on {sorted(names)}")
        return _route(self._entries[names[0]], allocation_id, cert_serial, now)

    def _store(self, body: Mapping[str, Any]) -> None:
        name = (body.get("metadata") or {}).get("name", "")
        try:
            worker = Worker.from_body(body)
        except (BuildKitControllerError, ValidationError) as exc:  # one bad object must not blind the whole pool
            log.warning("ignoring worker %s: %s", name, str(exc).splitlines()[0])
            self._entries.pop(name, None)
            return
        status = body.get("status") or {}
        self._entries[name] = _Entry(worker=worker, ready=_ready(status.get("conditions")),
                                     route=_route_of(worker))

    def _changed(self) -> None:
        index: dict[str, list[str]] = {}
        for name, entry in self._entries.items():
            if entry.worker.allocation is not None:
                index.setdefault(entry.worker.allocation.id, []).append(name)
        self._by_allocation = index
        for listener in self._listeners:
            listener()


def _route_of(worker: Worker) -> Route | None:
    """Built once per watch event, not per connection."""
    address, allocation = _address(worker.status.endpoint), worker.allocation
    if address is None or allocation is None:
        return None
    return Route(worker=worker.name, allocation_id=allocation.id, cert_serial=allocation.cert_serial or "",
                 expires_at=allocation.expires_at, host=address[0], port=address[1])


def _route(entry: _Entry, allocation_id: str, cert_serial: str, now: datetime) -> Route:
    worker, allocation = entry.worker, entry.worker.allocation
    assert allocation is not None  # indexed by allocation, so it has one
    if allocation.expired(now):
        raise Refused("expired", f"allocation {allocation_id} expired at {allocation.expires_at:%FT%TZ}")
    if allocation.cert_serial != cert_serial:
        raise Refused("serial-mismatch", f"certificate serial is not the one allocation "
                                         f"{allocation_id} recorded")
    if worker.phase is not WorkerPhase.ALLOCATED or not entry.ready:
        raise Refused("worker-not-ready", f"worker {worker.name} is {worker.phase.value}"
                                          f"{'' if entry.ready else ', not Ready'}")
    if entry.route is None:
        raise Refused("no-endpoint", f"worker {worker.name} has no usable endpoint")
    return entry.route


def _ready(conditions: object) -> bool:
    if not isinstance(conditions, list):
        return False
    return any(isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True"
               for c in conditions)


def _address(endpoint: str | None) -> tuple[str, int] | None:
    """``tcp://IP:PORT`` → (IP, PORT). Only IP literals: a name could be steered by DNS. Link-local
    addresses (cloud metadata services) are never an upstream, whatever the CR says (GW-03)."""
    if not endpoint:
        return None
    try:
        parts = urlsplit(endpoint)
        ip = ipaddress.ip_address(parts.hostname or "")
        port = parts.port
    except ValueError:
        return None
    if parts.scheme != "tcp" or port is None or ip.is_link_local or ip.is_multicast or ip.is_unspecified:
        return None
    return str(ip), port
