"""Per-worker connection activity, written to each BuildKitWorker's status, throttled.

``status.activeConnections`` is this replica's count; ``status.lastActivityAt`` is when a
connection opened or closed, or (while connections stay open) a refresh at least every
``refresh`` seconds, so the operator's idle timeout never fires under live traffic, whichever
replica carries it. Changes are coalesced: at most one patch per worker per ``interval``. The time
only moves forward: a newer value written by another replica is never overwritten.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["ActivityReporter", "rfc3339"]

log = logging.getLogger(__name__)

Patch = Callable[[str, Mapping[str, Any]], Awaitable[bool]]
LastActivity = Callable[[str], datetime | None]


def rfc3339(moment: datetime) -> str:
    """Kubernetes' timestamp form: UTC, seconds, ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class _Worker:
    active: int = 0
    dirty: bool = True
    patched_at: float = float("-inf")  # monotonic time of the last successful patch
    reported: int = -1  # activeConnections as last written


class ActivityReporter:
    """Collects opens and closes per worker; :meth:`run` writes them out."""

    def __init__(self, patch: Patch, last_activity: LastActivity, *, interval: float = 2.0,
                 refresh: float = 30.0) -> None:
        self._patch, self._last_activity = patch, last_activity
        self._interval, self._refresh = interval, refresh
        self._workers: dict[str, _Worker] = {}

    def opened(self, worker: str) -> None:
        state = self._workers.setdefault(worker, _Worker())
        state.active += 1
        state.dirty = True

    def closed(self, worker: str) -> None:
        state = self._workers.setdefault(worker, _Worker())
        state.active = max(0, state.active - 1)
        state.dirty = True

    async def run(self) -> None:
        """Flush due workers every fraction of the interval until cancelled."""
        while True:
            await asyncio.sleep(min(self._interval, self._refresh) / 4)
            await self.flush()

    async def flush(self, *, force: bool = False) -> None:
        """Patch every worker that is due (all dirty ones with ``force``, as at shutdown)."""
        now = time.monotonic()
        for name, state in list(self._workers.items()):
            if (force and state.dirty) or self._due(state, now):
                await self._write(name, state, now)

    def _due(self, state: _Worker, now: float) -> bool:
        since = now - state.patched_at
        if state.dirty:
            return since >= self._interval
        return state.active > 0 and since >= self._refresh

    async def _write(self, name: str, state: _Worker, now: float) -> None:
        status: dict[str, Any] = {"activeConnections": state.active}
        moment = datetime.now(UTC).replace(microsecond=0)
        known = self._last_activity(name)
        if known is None or moment > known:
            status["lastActivityAt"] = rfc3339(moment)
        state.dirty, state.patched_at = False, now
        try:
            found = await self._patch(name, status)
        except Exception as exc:
            log.warning("activity patch for worker %s failed: %s", name, exc)
            state.dirty = True
            return
        state.reported = state.active
        if not found or (state.active == 0 and not state.dirty):
            self._workers.pop(name, None)  # gone, or nothing left to report
