"""Objects that belong to a pool as a whole: the ``<pool>-config`` ConfigMap."""

from __future__ import annotations

from typing import Any

from buildkit_controller.controller.manifests.names import config_map_name, owner_reference, pool_labels
from buildkit_controller.core.models import Pool

__all__ = ["pool_config_map"]


def pool_config_map(pool: Pool, buildkitd_toml: str) -> dict[str, Any]:
    """ConfigMap ``<pool>-config`` holding ``buildkitd.toml``, mounted by every worker."""
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": config_map_name(pool.name), "namespace": pool.namespace,
                     "labels": pool_labels(pool.name, "pool-config"),
                     "ownerReferences": [owner_reference("BuildKitPool", pool.name, pool.uid or "")]},
        "data": {"buildkitd.toml": buildkitd_toml},
    }
