"""The pool's certificate Secrets, from a :class:`~buildkit_controller.core.pool_certs.CertPlan`."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from buildkit_controller.controller.manifests.names import owner_reference, pool_labels, secret_names
from buildkit_controller.core.models import Pool

__all__ = ["pool_secret", "secret_data", "secret_text"]


def pool_secret(pool: Pool, logical: str, data: Mapping[str, str]) -> dict[str, Any]:
    """Secret ``<pool>-<logical>`` holding PEM ``data``; leaves are ``kubernetes.io/tls`` Secrets."""
    return {
        "apiVersion": "v1", "kind": "Secret",
        "type": "kubernetes.io/tls" if "tls.crt" in data else "Opaque",
        "metadata": {"name": secret_names(pool.name)[logical], "namespace": pool.namespace,
                     "labels": pool_labels(pool.name, logical),
                     "ownerReferences": [owner_reference("BuildKitPool", pool.name, pool.uid or "")]},
        "data": secret_data(data),
    }


def secret_data(data: Mapping[str, str]) -> dict[str, str]:
    """Text values as a Secret's base64 ``data`` (the inverse of :func:`secret_text`)."""
    return {key: base64.b64encode(value.encode()).decode() for key, value in sorted(data.items())}


def secret_text(secret: Mapping[str, Any] | None) -> dict[str, str]:
    """A Secret's data as text (empty for a missing Secret)."""
    if not secret:
        return {}
    return {key: base64.b64decode(value).decode() for key, value in (secret.get("data") or {}).items()}
