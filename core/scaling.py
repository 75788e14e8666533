"""The min-idle scaling rule, shared by the built-in scaling policies and open to third parties.

Given a pool's workers it decides, purely, what to create and what to remove:

* workers that failed, whose allocation expired, or whose allocation saw no connection for
  ``idleTimeout`` are removed (allocations are never handed to another tenant);
* the pool keeps ``min_idle`` idle workers (plus one per waiting request), counting workers that are
  still starting, and never holds more than ``max`` workers in all, whatever their phase;
* idle workers above the target are removed only after ``scaleDownDelay`` of idleness, longest idle
  first; idle workers above ``max`` (after ``max`` was lowered) are removed at once;
* a worker with a live allocation is never removed by scaling.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from buildkit_controller.core.models.hooks import ScalingDecision, WorkerRemoval
from buildkit_controller.core.models.pool import Pool
from buildkit_controller.core.models.units import format_duration
from buildkit_controller.core.models.worker import Worker, WorkerPhase

__all__ = ["lifecycle_removals", "plan_min_idle"]


def _allocation_removal(worker: Worker, pool: Pool, now: datetime) -> WorkerRemoval | None:
    allocation = worker.allocation
    if allocation is None:
        return None
    if allocation.expired(now):
        return WorkerRemoval(name=worker.name, reason="allocation expired")
    timeout = pool.spec.scaling.idle_timeout
    last = worker.status.last_activity_at or allocation.allocated_at
    if timeout and worker.status.active_connections == 0 and now - last >= timeout:
        return WorkerRemoval(name=worker.name, reason=f"no connection for {format_duration(timeout)}")
    return None


def lifecycle_removals(pool: Pool, workers: Sequence[Worker], now: datetime) -> list[WorkerRemoval]:
    """Workers that must go whatever the policy: failed, expired, or idle past ``idleTimeout``."""
    removals = []
    for worker in workers:
        if worker.deleting:
            continue
        if worker.phase is WorkerPhase.FAILED:
            removals.append(WorkerRemoval(name=worker.name, reason="worker failed"))
        elif (removal := _allocation_removal(worker, pool, now)) is not None:
            removals.append(removal)
    return removals


def _scale_down(idle: list[Worker], surplus: int, over_max: int, pool: Pool,
                now: datetime) -> list[WorkerRemoval]:
    delay = pool.spec.scaling.scale_down_delay
    longest_idle_first = sorted(idle, key=lambda w: w.idle_since())
    removals = [WorkerRemoval(name=w.name, reason=f"above max {pool.spec.scaling.max}")
                for w in longest_idle_first[:over_max]]
    for worker in longest_idle_first[over_max:]:
        if len(removals) >= max(surplus, over_max):
            break
        idle_for = now - worker.idle_since()
        if idle_for >= delay:
            removals.append(WorkerRemoval(
                name=worker.name, reason=f"idle {format_duration(idle_for)} ≥ scaleDownDelay "
                                         f"{format_duration(delay)}"))
    return removals


def plan_min_idle(pool: Pool, workers: Sequence[Worker], now: datetime, demand: int, *,
                  min_idle: int, why: str = "min") -> ScalingDecision:
    """Decide creations and removals to keep ``min_idle`` idle workers within ``max``."""
    scaling = pool.spec.scaling
    removals = lifecycle_removals(pool, workers, now)
    gone = {r.name for r in removals}
    present = [w for w in workers if w.name not in gone and not w.deleting]
    idle = [w for w in present if w.is_idle]
    starting = [w for w in present if w.phase.is_starting and w.allocation is None]
    allocated = len(present) - len(idle) - len(starting)
    target = min_idle + max(demand, 0)
    available = len(idle) + len(starting)
    # Every existing worker object holds (or will hold) a pod, so all of them count toward max.
    create = max(0, min(target - available, scaling.max - len(workers)))
    removals += _scale_down(idle, available - target, max(0, len(present) - scaling.max), pool, now)
    desired = min(scaling.max, allocated + target)
    reason = (f"{len(idle)} idle, {len(starting)} starting, {allocated} allocated; "
              f"target {target} idle ({why} {min_idle}, {max(demand, 0)} waiting), max {scaling.max}")
    return ScalingDecision(create=create, remove=tuple(removals), reason=reason, desired=desired)
