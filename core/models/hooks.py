"""Values that hooks receive and return: frozen, keyword-only, framework-free."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from buildkit_controller.core.models.pool import ResourceRequirements

__all__ = [
    "AuthDecision",
    "AuthRequest",
    "CacheOptions",
    "Credential",
    "CredentialContext",
    "Identity",
    "KubeAccess",
    "PodContribution",
    "Runtime",
    "ScalingDecision",
    "SizeProfile",
    "WorkerRemoval",
]


# --- runtime --------------------------------------------------------------------------------------
class KubeAccess(Protocol):
    """The Kubernetes calls a plugin may make, provided by the host process (no client library
    leaks into plugins or the kernel)."""

    async def token_review(self, token: str, audiences: Sequence[str]) -> Mapping[str, Any]:
        """Create a TokenReview; return its ``status`` (``authenticated``, ``user``, ``audiences``)."""
        ...


@dataclass(frozen=True, kw_only=True)
class Runtime:
    """What a plugin learns about the process it runs in, once, through ``bkc_configure``."""

    process: Literal["api", "operator", "gateway", "bkctl"]
    environ: Mapping[str, str] = field(default_factory=dict)
    #: The audience API tokens must carry (ServiceAccount TokenReview, OIDC ``aud``).
    audience: str = "buildkit-controller"
    kube: KubeAccess | None = None
    #: API process only: returns the current PEM bundle of the API's identity CA, the CA that
    #: signs identity certificates (``POST /api/v1/certs/request``); ``None`` elsewhere.
    identity_ca: Callable[[], bytes] | None = None


# --- auth -----------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class AuthRequest:
    """What an auth method may look at; built by the API from the HTTP request.

    ``bearer`` is the raw credential: plugins must never log it or put it in an error message.
    """

    bearer: str | None = None
    #: PEM of the verified client certificate, when the caller presented one.
    client_certificate: str | None = None
    #: The verified chain as the TLS layer reported it, DER, leaf first (today: the leaf only, as
    #: Python before 3.13 cannot read the rest). Empty without a client certificate.
    client_certificate_chain: tuple[bytes, ...] = ()
    #: The audience this API expects in tokens (e.g. ``buildkit-controller``).
    audience: str = "buildkit-controller"
    remote_addr: str | None = None

    def __repr__(self) -> str:  # keeps the credential out of logs and tracebacks
        certificate = "<set>" if self.client_certificate else None
        return (f"AuthRequest(bearer={'<set>' if self.bearer else None}, client_certificate={certificate}, "
                f"audience={self.audience!r})")


@dataclass(frozen=True, kw_only=True)
class Identity:
    """An authenticated caller. ``subject`` is what RBAC rules match (``users`` patterns)."""

    subject: str
    method: str
    groups: tuple[str, ...] = ()
    claims: Mapping[str, Any] = field(default_factory=dict)
    #: Pool patterns the credential itself limits the caller to (e.g. a static token's ``pools``).
    pools: tuple[str, ...] | None = None
    #: When the credential itself expires (aware UTC), if it says: a ServiceAccount token's ``exp``,
    #: an identity certificate's NotAfter. Nothing derived from it (identity certificates) may
    #: outlive it. ``None``: no expiry known (static tokens live until deleted).
    expires_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class AuthDecision:
    """An authorization vote. ``allowed=False`` is a deny, which always wins."""

    allowed: bool
    reason: str
    source: str = ""


# --- credentials (bkctl) --------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class CredentialContext:
    """What a bkctl credential plugin knows: the environment and the audience to ask for."""

    environ: Mapping[str, str]
    audience: str = "buildkit-controller"
    timeout: float = 10.0


@dataclass(frozen=True, kw_only=True)
class Credential:
    """A bearer credential for the API and where it came from (for ``bkctl doctor``)."""

    token: str
    source: str

    def __repr__(self) -> str:
        return f"Credential(source={self.source!r}, token=<redacted>)"


# --- cache ----------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class PodContribution:
    """Changes a cache backend makes to the worker pod (Kubernetes JSON shapes)."""

    env: tuple[Mapping[str, Any], ...] = ()
    volumes: tuple[Mapping[str, Any], ...] = ()
    volume_mounts: tuple[Mapping[str, Any], ...] = ()
    #: Volume claim templates for a per-worker PVC (the ``local`` backend's persistent mode).
    volume_claims: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True, kw_only=True)
class CacheOptions:
    """``docker buildx`` cache options handed to the client with an allocation."""

    cache_from: tuple[str, ...] = ()
    cache_to: tuple[str, ...] = ()


# --- sizing ---------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class SizeProfile:
    """A named size: container resources plus buildkitd's ``max-parallelism``.

    ``rank`` orders profiles from small to large so a request can be capped at a pool's maximum.
    """

    name: str
    rank: int
    resources: ResourceRequirements
    max_parallelism: int
    default: bool = False


# --- scaling --------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class WorkerRemoval:
    name: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class ScalingDecision:
    """What a scaling policy wants: create ``create`` workers, remove the listed ones."""

    create: int = 0
    remove: tuple[WorkerRemoval, ...] = ()
    reason: str = ""
    #: The number of workers the policy aims for (reported as ``status.workers.desired``).
    desired: int = 0

    @property
    def changes(self) -> bool:
        return bool(self.create or self.remove)
