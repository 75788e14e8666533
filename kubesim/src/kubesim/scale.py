"""The ``scale`` subresource (``autoscaling/v1 Scale``) of Deployments and ReplicaSets (``kubectl scale``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .errors import BadRequest, Conflict
from .handlers import Context, json_response, read_body
from .patching import apply_patch
from .resources import ResourceType
from .routing import Target

__all__ = ["serve_scale"]


def _scale(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    selector = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": ",".join(f"{k}={v}" for k, v in sorted(selector.items())),
        },
    }


async def serve_scale(
    ctx: Context, request: web.Request, rtype: ResourceType, target: Target
) -> web.Response:
    """GET returns the Scale; PUT and PATCH change ``spec.replicas`` of the parent object."""
    await ctx.faults.apply(request.method.lower(), f"{rtype.plural}/scale", target.namespace, target.name)
    current = ctx.store.get(rtype, target.namespace, target.name)
    if request.method == "GET":
        return json_response(_scale(current))
    body = await read_body(request)
    if request.method == "PUT":
        wanted = body
    elif request.method == "PATCH":
        wanted = apply_patch(
            request.headers.get("Content-Type", ""),
            _scale(current),
            body,
            custom=False,
            kind="Scale",
            name=target.name,
        )
    else:
        raise BadRequest(f"{request.method} is not supported on scale")
    rv = ((wanted or {}).get("metadata") or {}).get("resourceVersion")
    if rv and rv != current["metadata"]["resourceVersion"]:
        raise Conflict.stale(rtype.plural, target.name, rtype.group)
    replicas = ((wanted or {}).get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or replicas < 0:
        raise BadRequest("spec.replicas must be a non-negative integer")

    def set_replicas(obj: dict[str, Any]) -> dict[str, Any]:
        obj.setdefault("spec", {})["replicas"] = replicas
        obj["metadata"].pop("resourceVersion", None)
        return obj

    return json_response(_scale(ctx.store.patch(rtype, target.namespace, target.name, set_replicas)))
