"""A pool's status from what the reconcile saw: pure, so each rule is a unit test.

Phases: ``Failed`` (the spec cannot be used), ``Pending`` (no ready gateway yet), ``ScaledToZero``
(ready, no workers), ``Degraded`` (ready but with failed workers or missing gateway replicas),
``Running``. Conditions follow the Kubernetes API conventions; a condition's
``lastTransitionTime`` only moves when its status does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from buildkit_controller.core.models import Worker, WorkerPhase

__all__ = ["PoolView", "conditions", "invalid_status", "pool_status", "worker_counts"]

ConditionTuple = tuple[str, str, str]  # status, reason, message


@dataclass(frozen=True, kw_only=True)
class PoolView:
    """What one reconcile learned about a pool."""

    generation: int | None
    endpoint: str
    gateway: Mapping[str, Any]  # the gateway Deployment's status
    gateway_replicas: int
    workers: Sequence[Worker]
    desired: int
    certificates_error: str | None = None
    plugins_error: str | None = None


def worker_counts(workers: Sequence[Worker], desired: int) -> dict[str, int]:
    phases = [w.phase for w in workers]
    ready = sum(p in (WorkerPhase.IDLE, WorkerPhase.ALLOCATED, WorkerPhase.RUNNING) for p in phases)
    return {
        "total": len(workers), "ready": ready, "idle": phases.count(WorkerPhase.IDLE),
        "allocated": sum(w.allocation is not None for w in workers),
        "provisioning": sum(p.is_starting for p in phases), "failed": phases.count(WorkerPhase.FAILED),
        "desired": desired,
    }


def conditions(previous: Sequence[Mapping[str, Any]], current: Mapping[str, ConditionTuple],
               generation: int | None, now: datetime) -> list[dict[str, Any]]:
    """Conditions in ``current`` order, keeping ``lastTransitionTime`` when a status is unchanged."""
    before = {c.get("type"): c for c in previous}
    result = []
    for kind, (status, reason, message) in current.items():
        old = before.get(kind, {})
        moved = old.get("status") != status or "lastTransitionTime" not in old
        result.append({"type": kind, "status": status, "reason": reason, "message": message,
                       "observedGeneration": generation,
                       "lastTransitionTime": _rfc3339(now) if moved else old["lastTransitionTime"]})
    return result


def _rfc3339(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _gateway(view: PoolView) -> tuple[dict[str, Any], ConditionTuple]:
    ready_replicas = int(view.gateway.get("readyReplicas") or 0)
    gateway = {"ready": ready_replicas > 0, "replicas": int(view.gateway.get("replicas") or 0),
               "readyReplicas": ready_replicas}
    if ready_replicas == 0:
        return gateway, ("False", "GatewayNotReady", "no gateway replica is ready yet")
    return gateway, ("True", "GatewayReady", f"{ready_replicas}/{view.gateway_replicas} replicas ready")


def _phase(gateway_ready: bool, counts: Mapping[str, int], view: PoolView) -> str:
    if view.certificates_error or view.plugins_error or not gateway_ready:
        return "Pending"
    if counts["failed"] or int(view.gateway.get("readyReplicas") or 0) < view.gateway_replicas:
        return "Degraded"
    return "ScaledToZero" if counts["total"] == 0 else "Running"


def pool_status(view: PoolView, previous: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The ``status`` to write for a pool whose spec is valid."""
    counts = worker_counts(view.workers, view.desired)
    gateway, gateway_condition = _gateway(view)
    certs = (("False", "CertificatesFailed", view.certificates_error) if view.certificates_error
             else ("True", "CertificatesIssued", "pool CAs and certificates are current"))
    plugins = (("False", "PluginMissing", view.plugins_error) if view.plugins_error
               else ("True", "PluginsLoaded", "every plugin the pool names is enabled"))
    ready = all(c[0] == "True" for c in (gateway_condition, certs, plugins))
    first_problem = next((c for c in (plugins, certs, gateway_condition) if c[0] != "True"), None)
    ready_condition = ("True", "PoolReady", "the pool accepts allocations") if ready else (
        "False", first_problem[1] if first_problem else "NotReady", first_problem[2] if first_problem else "")
    active = sum(w.status.active_connections for w in view.workers if not w.deleting)
    return {
        "phase": _phase(bool(gateway["ready"]), counts, view),
        "endpoint": view.endpoint, "gateway": gateway, "workers": counts,
        # Reported per worker by the gateways (the Connections column).
        "connections": {"active": active, **_previous_total(previous)},
        "observedGeneration": view.generation,
        "conditions": conditions(previous.get("conditions") or [], {
            "Ready": ready_condition, "GatewayReady": gateway_condition,
            "CertificatesReady": certs, "PluginsReady": plugins}, view.generation, now),
    }


def _previous_total(previous: Mapping[str, Any]) -> dict[str, int]:
    total = (previous.get("connections") or {}).get("total")
    return {"total": int(total)} if total is not None else {}


def invalid_status(message: str, previous: Mapping[str, Any], generation: int | None,
                   now: datetime) -> dict[str, Any]:
    """Status of a pool whose spec cannot be used: Failed, with the reason in ``Ready``."""
    return {"phase": "Failed", "observedGeneration": generation,
            "conditions": conditions(previous.get("conditions") or [],
                                     {"Ready": ("False", "InvalidSpec", message)}, generation, now)}
