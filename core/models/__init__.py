"""Typed, immutable values parsed from CR bodies and passed to hooks."""

from buildkit_controller.core.models.allocation import AllocationRequest
from buildkit_controller.core.models.hooks import (
    AuthDecision,
    AuthRequest,
    CacheOptions,
    Credential,
    CredentialContext,
    Identity,
    KubeAccess,
    PodContribution,
    Runtime,
    ScalingDecision,
    SizeProfile,
    WorkerRemoval,
)
from buildkit_controller.core.models.pool import (
    AuthMethod,
    CacheBackend,
    Pool,
    PoolSpec,
    ResourceRequirements,
    ScalingSpec,
)
from buildkit_controller.core.models.units import format_duration, parse_duration, parse_quantity
from buildkit_controller.core.models.worker import (
    AllocationRecord,
    PoolRef,
    Worker,
    WorkerPhase,
    WorkerStatus,
)

__all__ = [
    "AllocationRecord",
    "AllocationRequest",
    "AuthDecision",
    "AuthMethod",
    "AuthRequest",
    "CacheBackend",
    "CacheOptions",
    "Credential",
    "CredentialContext",
    "Identity",
    "KubeAccess",
    "PodContribution",
    "Pool",
    "PoolRef",
    "PoolSpec",
    "ResourceRequirements",
    "Runtime",
    "ScalingDecision",
    "ScalingSpec",
    "SizeProfile",
    "Worker",
    "WorkerPhase",
    "WorkerRemoval",
    "WorkerStatus",
    "format_duration",
    "parse_duration",
    "parse_quantity",
]
