"""Kubernetes Events for the operator's decisions (best effort: a failed Event never fails work)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from buildkit_controller.controller.reconciler.kube import Kube

__all__ = ["record_event"]

log = logging.getLogger(__name__)
COMPONENT = "buildkit-controller"


def event_body(involved: Mapping[str, Any], reason: str, message: str, kind: str) -> dict[str, Any]:
    meta = involved.get("metadata") or {}
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"generateName": f"{meta.get('name', 'object')}.", "namespace": meta.get("namespace")},
        "involvedObject": {"apiVersion": involved.get("apiVersion"), "kind": involved.get("kind"),
                           "name": meta.get("name"), "namespace": meta.get("namespace"),
                           "uid": meta.get("uid")},
        "reason": reason, "message": message[:1024], "type": kind, "count": 1,
        "firstTimestamp": stamp, "lastTimestamp": stamp, "source": {"component": COMPONENT},
    }


async def record_event(kube: Kube, involved: Mapping[str, Any], reason: str, message: str,
                       kind: str = "Normal") -> None:
    """Post an Event about ``involved``; never include secrets in ``message``."""
    log.info("%s %s/%s: %s", reason, (involved.get("metadata") or {}).get("namespace"),
             (involved.get("metadata") or {}).get("name"), message)
    try:
        await kube.create(event_body(involved, reason, message, kind))
    except (ApiException, OSError) as exc:
        log.warning("could not record event %s: %s", reason, exc)
