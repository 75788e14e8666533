"""``BuildKitWorker`` as the kernel sees it: one buildkitd pod, optionally allocated to one job."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import Field

from buildkit_controller.core.models._base import Timestamp, _Model
from buildkit_controller.core.models.status import Condition

__all__ = ["AllocationRecord", "PoolRef", "Worker", "WorkerPhase", "WorkerSpec", "WorkerStatus"]


class WorkerPhase(enum.StrEnum):
    """Lifecycle of a worker, driven by its pod: Pending → Provisioning → Idle → Allocated → Releasing
    → Terminating, with Failed from anywhere. ``Running`` is accepted for the seed's data."""

    PENDING = "Pending"
    PROVISIONING = "Provisioning"
    IDLE = "Idle"
    ALLOCATED = "Allocated"
    RUNNING = "Running"
    RELEASING = "Releasing"
    TERMINATING = "Terminating"
    FAILED = "Failed"

    @property
    def is_starting(self) -> bool:
        return self in (WorkerPhase.PENDING, WorkerPhase.PROVISIONING)

    @property
    def is_going(self) -> bool:
        return self in (WorkerPhase.RELEASING, WorkerPhase.TERMINATING, WorkerPhase.FAILED)


class PoolRef(_Model):
    name: str
    namespace: str | None = None


class AllocationRecord(_Model):
    """What a worker records about its allocation. Never the token: only its hash."""

    id: str
    token_hash: str
    subject: str
    job_id: str
    allocated_at: Timestamp
    expires_at: Timestamp
    metadata: Mapping[str, str] = Field(default_factory=dict)
    cert_fingerprint: str | None = None
    cert_serial: str | None = None

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at


class WorkerSpec(_Model):
    """The CR's ``spec``: which pool, and the allocation when the worker is allocated."""

    pool_ref: PoolRef
    allocation: AllocationRecord | None = None
    #: The size profile an allocation asked for when it differs from the pool's; the API sets it on
    #: the workers it creates for such a request (warm workers run at the pool's size).
    size: str | None = Field(default=None, max_length=63)


class WorkerStatus(_Model):
    phase: WorkerPhase = WorkerPhase.PENDING
    pod_name: str | None = None
    pod_ip: str | None = Field(default=None, alias="podIP")
    endpoint: str | None = None
    created_at: Timestamp | None = None
    ready_at: Timestamp | None = None
    last_activity_at: Timestamp | None = None
    active_connections: int = 0
    message: str | None = None
    #: ``Ready`` (buildkitd answers its probe) and ``Scheduled`` (the pod has a node).
    conditions: tuple[Condition, ...] = ()


class Worker(_Model):
    """A worker CR: identity, the pool it belongs to, its allocation and its observed state."""

    name: str
    namespace: str
    pool_ref: PoolRef
    created: Timestamp
    allocation: AllocationRecord | None = None
    size: str | None = None
    status: WorkerStatus = Field(default_factory=WorkerStatus)
    deleting: bool = False
    resource_version: str | None = None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Worker:
        """Build from a whole CR body (``metadata``, ``spec``, ``status``)."""
        meta, spec = body.get("metadata") or {}, body.get("spec") or {}
        return cls.model_validate({
            "name": meta.get("name", ""),
            "namespace": meta.get("namespace", "default"),
            "created": meta.get("creationTimestamp"),
            "poolRef": spec.get("poolRef") or {},
            "allocation": spec.get("allocation"),
            "size": spec.get("size"),
            "status": body.get("status") or {},
            "deleting": bool(meta.get("deletionTimestamp")),
            "resourceVersion": meta.get("resourceVersion"),
        })

    @property
    def phase(self) -> WorkerPhase:
        return WorkerPhase.TERMINATING if self.deleting else self.status.phase

    @property
    def is_idle(self) -> bool:
        """Ready and unallocated: the only state scaling may delete or an allocation may claim."""
        return self.phase is WorkerPhase.IDLE and self.allocation is None

    def idle_since(self) -> datetime:
        """When this worker last did anything; scale-down delays count from here."""
        return self.status.last_activity_at or self.status.ready_at or self.created
