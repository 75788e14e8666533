"""A worker's phase, derived from its Pod: a pure function the worker handlers call.

Pending → Provisioning → Idle ⇄ (claimed) Allocated → Terminating, with Failed from anywhere. Rules
that fix the seed's bugs:

* an unschedulable pod is reported (condition ``Scheduled=False``) and only failed after the pool's
  ``worker.unschedulableTimeout`` — clusters that add nodes on demand need that time;
* a failed readiness probe never fails a worker: an allocated worker stays Allocated (its build may
  be busy), an idle one goes back to Provisioning so nobody claims it until it is ready again;
* only a pod that really ended (Failed/Succeeded) or vanished fails the worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from buildkit_controller.controller.manifests.names import WORKER_PORT
from buildkit_controller.core.models import Worker, WorkerPhase

__all__ = ["Observation", "observe"]

PodBody = Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class Observation:
    """What the worker's status should say now, and whether its pod must be created."""

    phase: WorkerPhase
    message: str
    create_pod: bool = False
    pod_ip: str | None = None
    ready: bool = False
    #: Condition type → (status, reason, message)
    conditions: Mapping[str, tuple[str, str, str]] = field(default_factory=dict)

    @property
    def endpoint(self) -> str | None:
        return f"tcp://{self.pod_ip}:{WORKER_PORT}" if self.pod_ip else None


def _condition(pod: PodBody, kind: str) -> Mapping[str, Any]:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return {}


def _ended(pod: PodBody) -> str | None:
    status = pod.get("status") or {}
    if status.get("phase") not in ("Failed", "Succeeded"):
        return None
    for container in status.get("containerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated") or {}
        if terminated:
            reason = terminated.get("reason") or "Error"
            return f"buildkitd exited with code {terminated.get('exitCode')} ({reason})"
    return f"pod {status.get('phase', 'ended').lower()}: {status.get('message') or 'no message'}"


def _unschedulable(worker: Worker, pod: PodBody, now: datetime, timeout: timedelta) -> Observation:
    scheduled = _condition(pod, "PodScheduled")
    message = scheduled.get("message") or "no node fits the pod"
    since = worker.status.created_at or worker.created
    if now - since >= timeout:
        return Observation(phase=WorkerPhase.FAILED, message=f"unschedulable for {now - since}: {message}",
                           conditions={"Scheduled": ("False", "Unschedulable", message)})
    return Observation(phase=WorkerPhase.PROVISIONING, message=f"waiting for a node: {message}",
                       conditions={"Scheduled": ("False", "Unschedulable", message)})


def _running(worker: Worker, pod: PodBody) -> Observation:
    pod_ip = (pod.get("status") or {}).get("podIP")
    ready = _condition(pod, "Ready").get("status") == "True" and bool(pod_ip)
    scheduled = {"Scheduled": ("True", "Scheduled", "")}
    if ready:
        phase = WorkerPhase.ALLOCATED if worker.allocation else WorkerPhase.IDLE
        message = "allocated" if worker.allocation else "ready"
        return Observation(phase=phase, message=message, pod_ip=pod_ip, ready=True,
                           conditions={**scheduled, "Ready": ("True", "PodReady", "")})
    not_ready = {**scheduled, "Ready": ("False", "PodNotReady", "buildkitd is not answering its probe")}
    if worker.allocation is not None and worker.status.phase is WorkerPhase.ALLOCATED:
        return Observation(phase=WorkerPhase.ALLOCATED, message="allocated; buildkitd not ready",
                           pod_ip=pod_ip, conditions=not_ready)
    return Observation(phase=WorkerPhase.PROVISIONING, message="waiting for buildkitd to be ready",
                       pod_ip=pod_ip, conditions=not_ready)


def _without_pod(worker: Worker) -> Observation:
    if worker.status.pod_name:
        return Observation(phase=WorkerPhase.FAILED, message="the pod disappeared")
    return Observation(phase=WorkerPhase.PROVISIONING, message="creating the pod", create_pod=True)


def observe(worker: Worker, pod: PodBody | None, now: datetime, *,
            unschedulable_timeout: timedelta) -> Observation:
    """The worker's phase given its pod (``None`` when there is none)."""
    if worker.deleting:
        return Observation(phase=WorkerPhase.TERMINATING, message="terminating: draining builds")
    if worker.status.phase is WorkerPhase.FAILED:
        return Observation(phase=WorkerPhase.FAILED, message=worker.status.message or "failed")
    if pod is None:
        return _without_pod(worker)
    if (ended := _ended(pod)) is not None:
        return Observation(phase=WorkerPhase.FAILED, message=ended)
    if _condition(pod, "PodScheduled").get("reason") == "Unschedulable":
        return _unschedulable(worker, pod, now, unschedulable_timeout)
    return _running(worker, pod)
