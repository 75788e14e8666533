"""Objects that belong to a pool as a whole: the ``<pool>-config`` ConfigMap."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from buildkit_controller.controller.manifests.names import config_map_name, owner_reference, pool_labels
from buildkit_controller.core.models import Pool

__all__ = ["WORKER_CA_KEY", "config_key", "pool_config_map"]

DEFAULT_CONFIG_KEY = "buildkitd.toml"
#: The worker CA bundle (certificates only): what the API trusts for the pool gateway's client
#: certificate, published here so that nothing but the operator reads the worker CA's Secret.
WORKER_CA_KEY = "worker-ca.crt"


def config_key(size: str | None) -> str:
    """The ConfigMap key of the ``buildkitd.toml`` for workers of a requested size (``None``: the pool's)."""
    return DEFAULT_CONFIG_KEY if size is None else f"buildkitd-{size}.toml"


def pool_config_map(pool: Pool, buildkitd_toml: str, sized: Mapping[str, str] | None = None,
                    worker_ca: str | None = None) -> dict[str, Any]:
    """ConfigMap ``<pool>-config`` holding ``buildkitd.toml``, mounted by every worker, one
    ``buildkitd-<size>.toml`` per size an allocation may request (``sized``: size → toml) and the
    worker CA bundle (``worker_ca``, public certificates)."""
    data = {DEFAULT_CONFIG_KEY: buildkitd_toml, **{config_key(k): v for k, v in (sized or {}).items()}}
    if worker_ca:
        data[WORKER_CA_KEY] = worker_ca
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": config_map_name(pool.name), "namespace": pool.namespace,
                     "labels": pool_labels(pool.name, "pool-config"),
                     "ownerReferences": [owner_reference("BuildKitPool", pool.name, pool.uid or "")]},
        "data": data,
    }
