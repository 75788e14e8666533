"""Prometheus metrics of the API, on its own registry (one per app, so tests stay independent)."""

from __future__ import annotations

import time
from collections import Counter as Counter_
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from buildkit_controller.core.models import Pool

__all__ = ["ApiMetrics"]


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.allocations = Counter("buildkit_worker_allocations_total", "Allocation requests by outcome",
                                   ["pool", "result"], registry=registry)
        self.wait = Histogram("buildkit_allocation_wait_seconds", "Time from request to credentials",
                              ["pool"], registry=registry,
                              buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300))
        self.waiting = Gauge("buildkit_allocation_queue_depth", "Allocation requests in progress or queued",
                             ["pool"], registry=registry)
        self.auth_failures = Counter("buildkit_api_auth_failures_total", "Rejected credentials",
                                     ["method", "reason"], registry=registry)
        self.started = Histogram("buildkit_worker_ready_seconds", "Time for a worker created for a request to be ready",
                                 ["pool"], registry=registry, buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600))
        self.workers = Gauge("buildkit_workers", "Workers by pool and phase", ["pool", "phase"], registry=registry)

    def count_workers(self, bodies: Iterable[Mapping[str, Any]]) -> None:
        """Replace the ``buildkit_workers`` series with counts from these BuildKitWorker bodies."""
        counts = Counter_(
            (f"{b['metadata'].get('namespace')}/{(b.get('spec') or {}).get('poolRef', {}).get('name')}",
             ((b.get("status") or {}).get("phase") or "Pending").lower()) for b in bodies)
        self.workers.clear()
        for (pool, phase), count in counts.items():
            self.workers.labels(pool, phase).set(count)

    def worker_started(self, pool: Pool, seconds: float) -> None:
        self.started.labels(f"{pool.namespace}/{pool.name}").observe(seconds)

    @contextmanager
    def observe_allocation(self, pool: Pool) -> Iterator[list[str]]:
        """Count and time one allocation; the caller appends ``success`` when it got a worker."""
        name = f"{pool.namespace}/{pool.name}"
        outcome: list[str] = []
        started = time.monotonic()
        self.waiting.labels(name).inc()
        try:
            yield outcome
        finally:
            self.waiting.labels(name).dec()
            result = outcome[0] if outcome else "failure"
            self.allocations.labels(name, result).inc()
            if outcome:
                self.wait.labels(name).observe(time.monotonic() - started)
