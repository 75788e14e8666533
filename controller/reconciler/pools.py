"""One reconcile of one pool: certificates, config, gateway, workers by the scaling plugin, status.

Called by the pool's reconcile loop (``handlers.py``); everything here is idempotent, writes only
what differs, and leaves a Kubernetes Event for every create, delete or scale decision.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from buildkit_controller.controller.manifests import (
    buildkitd_config,
    gateway_deployment,
    gateway_rbac,
    gateway_service,
    pool_config_map,
)
from buildkit_controller.controller.manifests.names import (
    API_VERSION,
    POOL_LABEL,
    gateway_name,
    owner_reference,
    secret_names,
)
from buildkit_controller.controller.manifests.secrets import pool_secret, secret_text
from buildkit_controller.controller.reconciler.context import Context
from buildkit_controller.controller.reconciler.events import record_event
from buildkit_controller.controller.reconciler.status import PoolView, invalid_status, pool_status
from buildkit_controller.core.errors import ConfigError, PermanentError, SpecError
from buildkit_controller.core.models import Pool, ScalingDecision, SizeProfile, Worker
from buildkit_controller.core.pool_certs import CertPlan, plan_pool_certificates
from buildkit_controller.core.sizing import ResolvedSize, requestable, resolve_size

__all__ = ["list_workers", "reconcile_pool"]

log = logging.getLogger(__name__)


def _check_plugins(ctx: Context, pool: Pool) -> tuple[ResolvedSize, list[SizeProfile]]:
    """Resolve what the spec names through the plugins (the pool's size, and the sizes requests
    may get); ConfigError/SpecError if it cannot be."""
    ctx.host.plugin("scaling", pool.spec.scaling.policy_name)
    for backend in pool.spec.cache.backends:
        ctx.host.plugin("cache", backend.type)
        ctx.host.call("cache", backend.type, "bkc_cache_validate", backend=backend, pool=pool)
    return resolve_size(pool.spec, ctx.profiles), requestable(pool.spec, ctx.profiles)


async def _certificates(ctx: Context, pool: Pool, body: Mapping[str, Any]) -> CertPlan:
    names = secret_names(pool.name)
    existing = {logical: secret_text(await ctx.kube.get("v1", "Secret", name, pool.namespace))
                for logical, name in names.items()}
    plan = plan_pool_certificates(pool, existing, ctx.clock(), ca_lifetime=ctx.settings.ca_lifetime)
    for logical, reason in plan.changes.items():
        await ctx.kube.ensure(pool_secret(pool, logical, plan.data[logical]))
        await record_event(ctx.kube, body, "Certificates", f"{names[logical]}: {reason}")
    return plan


async def _config(ctx: Context, pool: Pool, sizes: tuple[ResolvedSize, list[SizeProfile]], plan: CertPlan) -> None:
    fragments = [ctx.host.call("cache", b.type, "bkc_cache_buildkitd_config", backend=b, pool=pool) or {}
                 for b in pool.spec.cache.backends]
    size, offered = sizes
    sized = {p.name: buildkitd_config(pool, resolve_size(pool.spec, ctx.profiles, p.name), fragments)
             for p in offered}
    await ctx.kube.ensure(pool_config_map(pool, buildkitd_config(pool, size, fragments), sized,
                                          worker_ca=plan.data["worker-ca"]["bundle.crt"]))


async def _gateway(ctx: Context, pool: Pool, plan: CertPlan, body: Mapping[str, Any]) -> dict[str, Any]:
    for obj in gateway_rbac(pool):
        await ctx.kube.ensure(obj)
    deployment, changed = await ctx.kube.ensure(gateway_deployment(
        pool, image=pool.spec.gateway_image or ctx.settings.gateway_image, certs_hash=plan.gateway_hash))
    if changed:
        await record_event(ctx.kube, body, "GatewayUpdated", f"deployment {gateway_name(pool.name)} applied")
    await ctx.kube.ensure(gateway_service(pool))
    return dict(deployment.get("status") or {})


async def list_workers(ctx: Context, pool: Pool) -> list[Worker]:
    bodies = await ctx.kube.list(API_VERSION, "BuildKitWorker", pool.namespace, {POOL_LABEL: pool.name})
    return [Worker.from_body(body) for body in bodies]


def _new_worker(pool: Pool) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION, "kind": "BuildKitWorker",
        "metadata": {"generateName": f"{pool.name}-worker-", "namespace": pool.namespace,
                     "labels": {POOL_LABEL: pool.name},
                     "ownerReferences": [owner_reference("BuildKitPool", pool.name, pool.uid or "")]},
        "spec": {"poolRef": {"name": pool.name, "namespace": pool.namespace}},
    }


async def _apply(ctx: Context, pool: Pool, decision: ScalingDecision, body: Mapping[str, Any]) -> None:
    for _ in range(decision.create):
        created = await ctx.kube.create(_new_worker(pool))
        await record_event(ctx.kube, body, "WorkerCreated",
                           f"created {created['metadata']['name']}: {decision.reason}")
    for removal in decision.remove:
        if await ctx.kube.delete(API_VERSION, "BuildKitWorker", removal.name, pool.namespace):
            await record_event(ctx.kube, body, "WorkerDeleted", f"deleted {removal.name}: {removal.reason}")


def _certificates_ready(previous: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "CertificatesReady" and c.get("status") == "True"
               for c in previous.get("conditions") or [])


async def _gateway_status(ctx: Context, pool: Pool) -> dict[str, Any]:
    deployment = await ctx.kube.get("apps/v1", "Deployment", gateway_name(pool.name), pool.namespace)
    return dict((deployment or {}).get("status") or {})


async def reconcile_pool(ctx: Context, body: Mapping[str, Any], *, full: bool = True) -> dict[str, Any]:
    """Bring the pool's objects in line with its spec; return the status to write.

    ``full=False`` is the light pass for worker and pod events: it re-reads the gateway's status and
    re-runs scaling, but leaves certificates, config and gateway objects to the full passes (spec
    changes and every resync), which keeps the work per event small in big installations.
    """
    meta, previous, now = body.get("metadata") or {}, body.get("status") or {}, ctx.clock()
    try:
        pool = Pool.from_body(body)
        sizes = _check_plugins(ctx, pool)
    except (SpecError, ConfigError) as exc:
        return invalid_status(str(exc), previous, meta.get("generation"), now)
    certificates_error, gateway = None, {}
    if not full and _certificates_ready(previous):
        gateway = await _gateway_status(ctx, pool)
    else:
        try:
            plan = await _certificates(ctx, pool, body)
        except PermanentError as exc:
            certificates_error = str(exc)
        else:
            await _config(ctx, pool, sizes, plan)
            gateway = await _gateway(ctx, pool, plan, body)
    workers = await list_workers(ctx, pool)
    decision = ctx.host.call("scaling", pool.spec.scaling.policy_name, "bkc_scaling_decide",
                             pool=pool, workers=workers, now=now, demand=0)
    if certificates_error is None:
        await _apply(ctx, pool, decision, body)
    view = PoolView(generation=meta.get("generation"), endpoint=pool.endpoint, gateway=gateway,
                    gateway_replicas=pool.spec.gateway.replicas, workers=workers, desired=decision.desired,
                    certificates_error=certificates_error)
    return pool_status(view, previous, now)
