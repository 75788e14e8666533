"""Names and labels of everything the operator creates, in one place."""

from __future__ import annotations

from buildkit_controller.controller.crds import GROUP, VERSION

__all__ = [
    "API_VERSION",
    "FINALIZER",
    "GATEWAY_METRICS_PORT",
    "GATEWAY_PORT",
    "IDLE_LABEL",
    "POOL_LABEL",
    "PURPOSE_LABEL",
    "WORKER_LABEL",
    "WORKER_PORT",
    "config_map_name",
    "gateway_labels",
    "gateway_name",
    "owner_reference",
    "pool_labels",
    "secret_names",
    "worker_labels",
]

API_VERSION = f"{GROUP}/{VERSION}"
POOL_LABEL = f"{GROUP}/pool"
WORKER_LABEL = f"{GROUP}/worker"
#: ``"true"`` on a worker the operator saw idle and unallocated: a hint that lets the API find
#: claimable workers with one small, label-selected page (a claim removes it). Never trusted alone:
#: claims still check the worker's status and are guarded by its resourceVersion.
IDLE_LABEL = f"{GROUP}/idle"
PURPOSE_LABEL = f"{GROUP}/purpose"
FINALIZER = f"{GROUP}/worker-finalizer"
GATEWAY_PORT = 1235
GATEWAY_METRICS_PORT = 9090
WORKER_PORT = 1234
MANAGED_BY = {"app.kubernetes.io/managed-by": "buildkit-controller"}


def pool_labels(pool: str, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "buildkit-controller", "app.kubernetes.io/component": component,
            POOL_LABEL: pool, **MANAGED_BY}


def gateway_labels(pool: str) -> dict[str, str]:
    """Selector labels of a pool's gateway pods (and so of its Service)."""
    return {"app.kubernetes.io/name": "buildkit-gateway", "app.kubernetes.io/instance": pool,
            POOL_LABEL: pool, PURPOSE_LABEL: "gateway"}


def worker_labels(pool: str, worker: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "buildkit-worker", "app.kubernetes.io/instance": worker,
            POOL_LABEL: pool, WORKER_LABEL: worker, PURPOSE_LABEL: "worker", **MANAGED_BY}


def gateway_name(pool: str) -> str:
    return f"{pool}-gateway"


def config_map_name(pool: str) -> str:
    return f"{pool}-config"


def secret_names(pool: str) -> dict[str, str]:
    """The pool's Secrets: two CAs (tenant signs clients and the gateway; worker signs the rest)."""
    return {
        "tenant-ca": f"{pool}-tenant-ca",
        "worker-ca": f"{pool}-worker-ca",
        "gateway-tls": f"{pool}-gateway-tls",
        "gateway-worker-client": f"{pool}-gateway-worker-client",
        "worker-tls": f"{pool}-worker-tls",
    }


def owner_reference(kind: str, name: str, uid: str, *, controller: bool = True) -> dict[str, object]:
    return {"apiVersion": API_VERSION, "kind": kind, "name": name, "uid": uid,
            "controller": controller, "blockOwnerDeletion": True}
