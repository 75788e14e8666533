"""Objects that belong to a pool as a whole: the ``<pool>-config`` ConfigMap."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from buildkit_controller.controller.manifests.names import config_map_name, owner_reference, pool_labels
from buildkit_controller.core.models import Pool

__all__ = ["config_key", "pool_config_map"]

DEFAULT_CONFIG_KEY = "buildkitd.toml"


def config_key(size: str | None) -> str:
    """The ConfigMap key of the ``buildkitd.toml`` for workers of a requested size (``None``: the pool's)."""
    return DEFAULT_CONFIG_KEY if size is None else f"buildkitd-{size}.toml"


def pool_config_map(pool: Pool, buildkitd_toml: str, sized: Mapping[str, str] | None = None) -> dict[str, Any]:
    """ConfigMap ``<pool>-config`` holding ``buildkitd.toml``, mounted by every worker, and one
    ``buildkitd-<size>.toml`` per size an allocation may request (``sized``: size → toml)."""
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": config_map_name(pool.name), "namespace": pool.namespace,
                     "labels": pool_labels(pool.name, "pool-config"),
                     "ownerReferences": [owner_reference("BuildKitPool", pool.name, pool.uid or "")]},
        "data": {DEFAULT_CONFIG_KEY: buildkitd_toml, **{config_key(k): v for k, v in (sized or {}).items()}},
    }
