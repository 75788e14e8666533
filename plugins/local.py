"""``local`` cache: BuildKit's own state directory, on the node or on a volume per worker.

Without options the state lives in an ``emptyDir``. With ``storageClass`` and/or ``size`` each
worker pod gets its own PersistentVolumeClaim through a generic ephemeral volume: Kubernetes creates
the claim with the pod and deletes it with the pod, so a cache never outlives its worker and is
never handed to another tenant. Garbage collection comes from ``spec.cache.gc`` (rendered by the
kernel into ``buildkitd.toml``).
"""

from __future__ import annotations

from typing import Any

from buildkit_controller.core import hookimpl
from buildkit_controller.core.errors import SpecError
from buildkit_controller.core.models import CacheBackend, PodContribution, Pool, parse_quantity

__all__ = ["DEFAULT_SIZE", "LocalCache"]

DEFAULT_SIZE = "50Gi"
KNOWN = {"storageClass", "size"}
FIELD = "spec.cache.backends[].local"


class LocalCache:
    """The built-in ``local`` cache backend."""

    @hookimpl
    def bkc_cache_validate(self, backend: CacheBackend, pool: Pool) -> None:
        options = backend.options
        unknown = sorted(set(options) - KNOWN)
        if unknown:
            raise SpecError(f"{FIELD}.{unknown[0]}", f"unknown option (known: {', '.join(sorted(KNOWN))})")
        if "storageClass" in options and not isinstance(options["storageClass"], str):
            raise SpecError(f"{FIELD}.storageClass", "must be the name of a StorageClass")
        if "size" in options:
            try:
                parse_quantity(options["size"])
            except ValueError as exc:
                raise SpecError(f"{FIELD}.size", str(exc)) from None

    @hookimpl
    def bkc_cache_worker_pod(self, backend: CacheBackend, pool: Pool) -> PodContribution | None:
        options = backend.options
        if not KNOWN & set(options):
            return None  # the worker pod's default emptyDir
        size = str(options.get("size", DEFAULT_SIZE))
        claim: dict[str, Any] = {"accessModes": ["ReadWriteOnce"],
                                 "resources": {"requests": {"storage": size}}}
        if options.get("storageClass"):
            claim["storageClassName"] = options["storageClass"]
        volume = {"name": "buildkitd", "ephemeral": {"volumeClaimTemplate": {
            "metadata": {"labels": {"buildkit.smrt-devops.net/pool": pool.name}}, "spec": claim}}}
        return PodContribution(volumes=(volume,))
