"""Finding, renewing and releasing an allocation by its token or id (label lookup, constant-time check)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from buildkit_controller.controller.api.allocations import ALLOCATION_LABEL
from buildkit_controller.controller.manifests.names import API_VERSION
from buildkit_controller.controller.reconciler.kube import Kube
from buildkit_controller.core import tokens
from buildkit_controller.core.allocation import allocation_id_of, renewed
from buildkit_controller.core.errors import NotFoundError
from buildkit_controller.core.models import Identity, Pool, Worker

__all__ = ["Lease", "find_by_id", "find_by_token", "release", "renew"]

Lease = tuple[dict[str, Any], Worker]
UNKNOWN = "no such allocation"  # one message for missing, released and wrong: no oracle


async def find_by_id(kube: Kube, allocation_id: str) -> Lease:
    if not tokens.is_valid_allocation_id(allocation_id):
        raise NotFoundError(UNKNOWN)
    found = await kube.list(API_VERSION, "BuildKitWorker", None, {ALLOCATION_LABEL: allocation_id})
    live = [b for b in found if not b["metadata"].get("deletionTimestamp")]
    if len(live) != 1:
        raise NotFoundError(UNKNOWN)
    worker = Worker.from_body(live[0])
    if worker.allocation is None or worker.allocation.id != allocation_id:
        raise NotFoundError(UNKNOWN)
    return live[0], worker


async def find_by_token(kube: Kube, token: str) -> Lease:
    allocation_id = allocation_id_of(token)
    if allocation_id is None:
        raise NotFoundError(UNKNOWN)
    body, worker = await find_by_id(kube, allocation_id)
    if worker.allocation is None or not tokens.verify_token(token, worker.allocation.token_hash):
        raise NotFoundError(UNKNOWN)
    return body, worker


def owned_by(worker: Worker, identity: Identity) -> bool:
    return worker.allocation is not None and worker.allocation.subject == identity.subject


async def release(kube: Kube, worker: Worker) -> None:
    """Delete the worker: it is never handed to anyone else (its cache may hold this tenant's data)."""
    if not await kube.delete(API_VERSION, "BuildKitWorker", worker.name, worker.namespace):
        raise NotFoundError(UNKNOWN)


async def renew(kube: Kube, body: Mapping[str, Any], worker: Worker, pool: Pool, *, now: datetime,
                ttl: timedelta | None) -> datetime:
    """Extend the lease within ``maxTokenTTL``; guarded by the worker's resourceVersion."""
    assert worker.allocation is not None  # find_* only returns allocated workers
    record = renewed(worker.allocation, pool.spec.gateway, now=now, ttl=ttl)
    patch = {"metadata": {"resourceVersion": body["metadata"]["resourceVersion"]},
             "spec": {"allocation": {"expiresAt": record.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")}}}
    await kube.patch(API_VERSION, "BuildKitWorker", worker.name, worker.namespace, patch)
    return record.expires_at
