"""Kopf handlers, registered on an explicit registry: thin, they only route to the reconcilers.

Each pool gets one reconcile loop (a Kopf daemon), so a pool is never reconciled twice at once. The
loop runs every ``resync_seconds`` and whenever something it cares about changes: its spec, one of
its workers, a worker pod or its gateway Deployment. Workers are reconciled on their own and their
pods' events, serialised per worker. Deleting a worker deletes its pod and waits for it to be gone
(its preStop drains builds) before the finalizer is released.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import kopf
from kubernetes_asyncio.client.exceptions import ApiException

from buildkit_controller.controller.crds import GROUP, VERSION
from buildkit_controller.controller.manifests.names import (
    API_VERSION,
    POOL_LABEL,
    PURPOSE_LABEL,
    WORKER_LABEL,
)
from buildkit_controller.controller.reconciler.context import Context
from buildkit_controller.controller.reconciler.pools import reconcile_pool
from buildkit_controller.controller.reconciler.workers import reconcile_worker

__all__ = ["build_registry"]

log = logging.getLogger(__name__)
POOLS, WORKERS = (GROUP, VERSION, "buildkitpools"), (GROUP, VERSION, "buildkitworkers")


def _ctx(memo: Any) -> Context:
    context: Context = memo.context
    return context


async def _pool_once(ctx: Context, body: Mapping[str, Any], *, full: bool) -> None:
    meta = body["metadata"]
    status = await reconcile_pool(ctx, body, full=full)
    previous = body.get("status") or {}
    changed = {k: v for k, v in status.items() if previous.get(k) != v}
    if changed:
        await ctx.kube.patch(API_VERSION, "BuildKitPool", meta["name"], meta["namespace"],
                             {"status": changed}, status=True)


async def pool_loop(body: kopf.Body, memo: kopf.Memo, stopped: kopf.DaemonStopped, **_: Any) -> None:
    """Reconcile one pool until it is deleted; errors are logged and retried on the next round."""
    ctx = _ctx(memo)
    kick = ctx.kick(body.metadata.namespace or "", body.metadata.name or "")
    loop = asyncio.get_running_loop()
    last_full: tuple[Any, float] | None = None  # (generation, when) of the last full pass
    while not stopped:
        kick.clear()
        try:
            fresh = await ctx.kube.get(API_VERSION, "BuildKitPool", body.metadata.name or "",
                                       body.metadata.namespace)
            if fresh is None or fresh["metadata"].get("deletionTimestamp"):
                return
            generation = fresh["metadata"].get("generation")
            full = (last_full is None or last_full[0] != generation
                    or loop.time() - last_full[1] >= ctx.settings.resync_seconds)
            await _pool_once(ctx, fresh, full=full)
            if full:
                last_full = (generation, loop.time())
        except (ApiException, OSError) as exc:
            log.warning("pool %s/%s: reconcile failed, retrying: %s", body.metadata.namespace,
                        body.metadata.name, exc)
        await _sleep_or_kick(kick, stopped, ctx.settings.resync_seconds)


async def _sleep_or_kick(kick: asyncio.Event, stopped: kopf.DaemonStopped, seconds: float) -> None:
    waits = {asyncio.ensure_future(kick.wait()), asyncio.ensure_future(stopped.wait(seconds))}
    _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()


def _kick_pool(memo: kopf.Memo, namespace: str | None, pool: str | None) -> None:
    if namespace and pool:
        _ctx(memo).kick(namespace, pool).set()


async def pool_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _kick_pool(memo, body.metadata.namespace, body.metadata.name)


async def worker_event(body: kopf.Body, memo: kopf.Memo, type: str | None, **_: Any) -> None:
    namespace, name = body.metadata.namespace or "", body.metadata.name or ""
    if type != "DELETED":
        await reconcile_worker(_ctx(memo), namespace, name)
    _kick_pool(memo, namespace, (body.get("spec") or {}).get("poolRef", {}).get("name"))


async def pod_event(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    namespace, worker = body.metadata.namespace or "", body.metadata.labels.get(WORKER_LABEL)
    if worker:
        await reconcile_worker(_ctx(memo), namespace, worker)


async def gateway_event(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    _kick_pool(memo, body.metadata.namespace, body.metadata.labels.get(POOL_LABEL))


async def worker_deleted(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Delete the worker's pod and hold the finalizer until the pod (and its drain) is gone."""
    ctx, namespace, name = _ctx(memo), body.metadata.namespace, body.metadata.name or ""
    await ctx.kube.delete("v1", "Pod", name, namespace)
    if await ctx.kube.get("v1", "Pod", name, namespace) is not None:
        raise kopf.TemporaryError(f"waiting for pod {name} to finish its builds and stop", delay=2)


def build_registry() -> kopf.OperatorRegistry:
    """A fresh registry with every handler of the operator (tests get a new one each time)."""
    registry = kopf.OperatorRegistry()
    kopf.daemon(*POOLS, registry=registry, id="reconcile", cancellation_timeout=10)(pool_loop)
    kopf.on.update(*POOLS, registry=registry, field="spec")(pool_changed)
    kopf.on.event(*WORKERS, registry=registry)(worker_event)
    kopf.on.delete(*WORKERS, registry=registry)(worker_deleted)
    kopf.on.event("v1", "pods", registry=registry, labels={PURPOSE_LABEL: "worker"})(pod_event)
    kopf.on.event("apps", "v1", "deployments", registry=registry,
                  labels={PURPOSE_LABEL: "gateway"})(gateway_event)
    return registry
