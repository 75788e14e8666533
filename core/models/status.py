"""Status shapes the reconciler writes (and the CRD schema declares): Kubernetes API conventions."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from buildkit_controller.core.models._base import Timestamp, _Model

__all__ = ["Condition", "ConnectionCounts", "GatewayStatus", "PoolStatus", "WorkerCounts"]


class Condition(_Model):
    """A ``metav1.Condition``: ``status`` is ``True``, ``False`` or ``Unknown``."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: Timestamp
    observed_generation: int | None = None


class GatewayStatus(_Model):
    ready: bool = False
    replicas: int = 0
    ready_replicas: int = 0


class WorkerCounts(_Model):
    total: int = 0
    ready: int = 0
    idle: int = 0
    allocated: int = 0
    provisioning: int = 0
    failed: int = 0
    desired: int = 0


class ConnectionCounts(_Model):
    """Real counts reported by the gateway: open connections and connections since creation."""

    active: int = 0
    total: int = 0


class PoolStatus(_Model):
    phase: Literal["Pending", "Running", "ScaledToZero", "Degraded", "Failed"] = "Pending"
    conditions: tuple[Condition, ...] = ()
    endpoint: str | None = None
    gateway: GatewayStatus = Field(default_factory=GatewayStatus)
    workers: WorkerCounts = Field(default_factory=WorkerCounts)
    connections: ConnectionCounts = Field(default_factory=ConnectionCounts)
    observed_generation: int | None = None
    last_scale_time: Timestamp | None = None
    last_activity_time: Timestamp | None = None
