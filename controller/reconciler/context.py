"""What every handler shares, kept on Kopf's ``memo``: the API client, plugins, settings, locks."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import version

from buildkit_controller.controller.manifests.worker import WorkerImages
from buildkit_controller.controller.reconciler.kube import Kube
from buildkit_controller.core._loader import PluginHost
from buildkit_controller.core.models import SizeProfile
from buildkit_controller.core.pool_certs import CA_LIFETIME
from buildkit_controller.core.sizing import merge_profiles

__all__ = ["GATEWAY_REPOSITORY", "Context", "OperatorSettings", "utcnow"]

#: The gateway image repository; dev mode maps it to this project's gateway command.
GATEWAY_REPOSITORY = "buildkit-controller/gateway"
_VERSION = version("buildkit-controller")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class OperatorSettings:
    """Operator-wide knobs (Helm values → flags/env)."""

    #: Image of the gateway Deployments the operator renders.
    gateway_image: str = field(default_factory=lambda: f"{GATEWAY_REPOSITORY}:{_VERSION}")
    #: Default buildkitd images and the worker pods' grace period.
    worker_images: WorkerImages = field(default_factory=WorkerImages)
    #: How often each pool is reconciled even when nothing changed (expiry, idle timeouts, schedules).
    resync_seconds: float = 10.0
    #: Lifetime of each pool CA (rotated at 2/3 with overlap).
    ca_lifetime: timedelta = CA_LIFETIME


@dataclass
class Context:
    """Shared by the handlers of one operator process."""

    kube: Kube
    host: PluginHost
    settings: OperatorSettings = field(default_factory=OperatorSettings)
    clock: Callable[[], datetime] = utcnow
    _kicks: dict[tuple[str, str], asyncio.Event] = field(default_factory=dict)
    _locks: defaultdict[tuple[str, ...], asyncio.Lock] = field(
        default_factory=lambda: defaultdict(asyncio.Lock))

    @property
    def profiles(self) -> Mapping[str, SizeProfile]:
        return merge_profiles(self.host.broadcast("bkc_sizing_profiles"))

    def kick(self, namespace: str, pool: str) -> asyncio.Event:
        """The event that wakes a pool's reconcile loop (set it to reconcile now)."""
        return self._kicks.setdefault((namespace, pool), asyncio.Event())

    def lock(self, *key: str) -> asyncio.Lock:
        """A process-wide lock per key: serialises work on one pool (admission) or one worker."""
        return self._locks[key]
