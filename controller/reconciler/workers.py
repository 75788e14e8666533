"""One reconcile of one worker: admit it, create its pod, and mirror the pod's state in its status.

Admission is the hard limit on a pool's size. Under a per-pool lock the operator counts the workers
that already hold a pod slot (``status.podName`` set, not failed) and admits a new one only below
``scaling.max``; the slot is recorded in the worker's status before the lock is released. Workers
created from anywhere — the scaling loop, the allocation API, a user with kubectl — pass through
here, so at most ``max`` buildkitd pods ever exist per pool. A worker refused at capacity fails with
that reason, and the pool's scaling removes it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from buildkit_controller.controller.manifests import worker_pod
from buildkit_controller.controller.manifests.names import (
    API_VERSION,
    IDLE_LABEL,
    POOL_LABEL,
    PURPOSE_LABEL,
    secret_names,
)
from buildkit_controller.controller.reconciler.context import Context
from buildkit_controller.controller.reconciler.events import record_event
from buildkit_controller.controller.reconciler.lifecycle import Observation, observe
from buildkit_controller.controller.reconciler.pools import list_workers
from buildkit_controller.controller.reconciler.status import conditions
from buildkit_controller.core.allocation import claimable
from buildkit_controller.core.models import Pool, Worker, WorkerPhase
from buildkit_controller.core.sizing import resolve_size

__all__ = ["reconcile_worker"]

log = logging.getLogger(__name__)


async def _admit(ctx: Context, pool: Pool, worker: Worker, body: Mapping[str, Any]) -> bool:
    async with ctx.lock("pool", pool.namespace, pool.name):
        # A slot is held by a worker that was admitted, and by any pod still there (a failed or
        # deleted worker's pod may still be draining): the limit is on pods, so count both.
        pods = {p["metadata"]["name"] for p in await ctx.kube.list("v1", "Pod", pool.namespace,
                                                                   {POOL_LABEL: pool.name, PURPOSE_LABEL: "worker"})}
        admitted = {w.name for w in await list_workers(ctx, pool)
                    if w.status.pod_name and w.phase is not WorkerPhase.FAILED}
        holding = (pods | admitted) - {worker.name}
        if len(holding) >= pool.spec.scaling.max:
            return False
        stamp = ctx.clock().strftime("%Y-%m-%dT%H:%M:%SZ")
        await ctx.kube.patch(API_VERSION, "BuildKitWorker", worker.name, worker.namespace,
                             {"status": {"podName": worker.name, "createdAt": stamp}}, status=True)
        await record_event(ctx.kube, body, "Admitted", f"{len(holding) + 1}/{pool.spec.scaling.max} slots")
        return True


async def _create_pod(ctx: Context, pool: Pool, worker: Worker, body: Mapping[str, Any]) -> None:
    contributions = [ctx.host.call("cache", b.type, "bkc_cache_worker_pod", backend=b, pool=pool)
                     for b in pool.spec.cache.backends]
    size = resolve_size(pool.spec, ctx.profiles, worker.size)
    manifest = worker_pod(name=worker.name, namespace=worker.namespace, requested=worker.size,
                          worker_uid=(body.get("metadata") or {}).get("uid", ""), pool=pool, size=size,
                          contributions=[c for c in contributions if c is not None],
                          images=ctx.settings.worker_images)
    await ctx.kube.ensure(manifest)
    await record_event(ctx.kube, body, "PodCreated", f"pod {worker.name} with secret "
                                                      f"{secret_names(pool.name)['worker-tls']}")


def _status_patch(worker: Worker, seen: Observation, previous: Mapping[str, Any],
                  ctx: Context) -> dict[str, Any]:
    now = ctx.clock()
    patch: dict[str, Any] = {"phase": seen.phase.value, "message": seen.message}
    if seen.pod_ip:
        patch |= {"podIP": seen.pod_ip, "endpoint": seen.endpoint}
    if seen.ready and worker.status.ready_at is None:
        patch["readyAt"] = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    if seen.conditions:
        patch["conditions"] = conditions(previous.get("conditions") or [], seen.conditions, None, now)
    return {k: v for k, v in patch.items() if previous.get(k) != v}


async def _pool_of(ctx: Context, worker: Worker) -> Pool | None:
    namespace = worker.pool_ref.namespace or worker.namespace
    body = await ctx.kube.get(API_VERSION, "BuildKitPool", worker.pool_ref.name, namespace)
    return Pool.from_body(body) if body else None


async def reconcile_worker(ctx: Context, namespace: str, name: str) -> WorkerPhase | None:
    """Reconcile worker ``namespace/name``; returns its phase (``None`` when it is gone)."""
    async with ctx.lock("worker", namespace, name):
        body = await ctx.kube.get(API_VERSION, "BuildKitWorker", name, namespace)
        if body is None:
            return None
        worker, previous = Worker.from_body(body), body.get("status") or {}
        pool = await _pool_of(ctx, worker)
        if pool is None:  # only a real 404 gets here: transient errors raise and are retried
            seen = Observation(phase=WorkerPhase.FAILED, message=f"pool {worker.pool_ref.name} not found")
        else:
            pod = await ctx.kube.get("v1", "Pod", name, namespace)
            seen = observe(worker, pod, ctx.clock(),
                           unschedulable_timeout=pool.spec.worker.unschedulable_timeout)
            if seen.create_pod:
                seen = await _start(ctx, pool, worker, body)
        patch = _status_patch(worker, seen, previous, ctx)
        if patch:
            body = await ctx.kube.patch(API_VERSION, "BuildKitWorker", name, namespace, {"status": patch},
                                        status=True)
        await _label_idle(ctx, body)
        return seen.phase


async def _label_idle(ctx: Context, body: Mapping[str, Any]) -> None:
    """Keep the ``idle`` hint label in line with the status just written (see ``IDLE_LABEL``)."""
    meta = body.get("metadata") or {}
    wanted = "true" if claimable(Worker.from_body(body)) else None
    if (meta.get("labels") or {}).get(IDLE_LABEL) == wanted:
        return
    try:  # guarded: a claim that happened since must not get the label back
        await ctx.kube.patch(API_VERSION, "BuildKitWorker", meta["name"], meta.get("namespace"),
                             {"metadata": {"resourceVersion": meta.get("resourceVersion"),
                                           "labels": {IDLE_LABEL: wanted}}})
    except ApiException as exc:
        if exc.status not in (404, 409):  # changed or gone meanwhile: its next event reconciles it
            raise


async def _start(ctx: Context, pool: Pool, worker: Worker, body: Mapping[str, Any]) -> Observation:
    if not await _admit(ctx, pool, worker, body):
        message = f"pool {pool.name} is at its maximum of {pool.spec.scaling.max} workers"
        await record_event(ctx.kube, body, "NotAdmitted", message, "Warning")
        return Observation(phase=WorkerPhase.FAILED, message=message)
    await _create_pod(ctx, pool, worker, body)
    return Observation(phase=WorkerPhase.PROVISIONING, message="pod created; waiting for buildkitd")
