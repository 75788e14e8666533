"""The Pod of one BuildKitWorker: buildkitd with mTLS on the pod IP, sized, scheduled as the pool says.

Security profiles: ``rootless`` (default: the ``-rootless`` image as uid 1000, seccomp and AppArmor
unconfined as rootless BuildKit needs for its own user namespace), ``userns`` (the rootful image,
privileged only inside a pod user namespace: ``hostUsers: false``) and ``privileged``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from buildkit_controller.controller.manifests.buildkitd import BUILDKIT_ROOT
from buildkit_controller.controller.manifests.names import (
    WORKER_PORT,
    config_map_name,
    owner_reference,
    secret_names,
    worker_labels,
)
from buildkit_controller.controller.manifests.pool import config_key
from buildkit_controller.core.models import PodContribution, Pool
from buildkit_controller.core.sizing import ResolvedSize

__all__ = ["PRESTOP_DRAIN", "WorkerImages", "worker_pod"]

ROOTLESS_SOCKET = "/run/user/1000/buildkit/buildkitd.sock"
ROOTFUL_SOCKET = "/run/buildkit/buildkitd.sock"
CERTS = "/certs"

#: Waits while any client holds a connection to this pod's buildkitd (a build needs one), so a pod
#: being deleted finishes in-flight builds; the grace period bounds the wait. Needs only sh and awk.
PRESTOP_DRAIN = (
    'while awk -v ip="$POD_IP" -v port=PORT \'BEGIN { split(ip, o, "."); '
    'want = sprintf("%02X%02X%02X%02X:%s", o[4], o[3], o[2], o[1], port) } '
    '$2 == want && $4 == "01" { busy = 1 } END { exit !busy }\' /proc/net/tcp; do sleep 2; done'
).replace("PORT", f"{WORKER_PORT:04X}")  # /proc/net/tcp shows ports in hex


@dataclass(frozen=True, kw_only=True)
class WorkerImages:
    """Default images when the pool names none; the rootful one serves userns and privileged."""

    rootless: str = "moby/buildkit:v0.31.1-rootless"
    rootful: str = "moby/buildkit:v0.31.1"
    grace_period_seconds: int = 900


def _image(pool: Pool, images: WorkerImages) -> str:
    if pool.spec.buildkit_image:
        return pool.spec.buildkit_image
    return images.rootless if pool.spec.worker.security_profile == "rootless" else images.rootful


def _security(profile: str) -> dict[str, Any]:
    if profile == "rootless":
        return {"runAsUser": 1000, "runAsGroup": 1000, "runAsNonRoot": True,
                "seccompProfile": {"type": "Unconfined"}, "appArmorProfile": {"type": "Unconfined"}}
    return {"privileged": True}


def _args(profile: str) -> list[str]:
    socket = ROOTLESS_SOCKET if profile == "rootless" else ROOTFUL_SOCKET
    args = [f"--addr=unix://{socket}", f"--addr=tcp://$(POD_IP):{WORKER_PORT}",
            "--config=/etc/buildkit/buildkitd.toml", f"--tlscacert={CERTS}/ca.crt",
            f"--tlscert={CERTS}/tls.crt", f"--tlskey={CERTS}/tls.key"]
    if profile == "rootless":
        args.append("--oci-worker-no-process-sandbox")
    return args


def _probe(profile: str, period: int, failures: int) -> dict[str, Any]:
    socket = ROOTLESS_SOCKET if profile == "rootless" else ROOTFUL_SOCKET
    return {"exec": {"command": ["buildctl", f"--addr=unix://{socket}", "debug", "workers"]},
            "initialDelaySeconds": 2, "periodSeconds": period, "timeoutSeconds": 5,
            "failureThreshold": failures}


def _merged(contributions: Iterable[PodContribution], field: str) -> list[dict[str, Any]]:
    return [dict(item) for c in contributions for item in getattr(c, field)]


def _volumes(pool: Pool, extra: list[dict[str, Any]], requested: str | None) -> list[dict[str, Any]]:
    config: dict[str, Any] = {"name": config_map_name(pool.name)}
    if requested is not None:  # a requested size: its own buildkitd.toml (parallelism follows the size)
        config["items"] = [{"key": config_key(requested), "path": "buildkitd.toml"}]
    volumes = [{"name": "config", "configMap": config},
               {"name": "certs", "secret": {"secretName": secret_names(pool.name)["worker-tls"]}}]
    if not any(v["name"] == "buildkitd" for v in extra):  # the local cache plugin may provide a PVC
        volumes.append({"name": "buildkitd", "emptyDir": {}})
    return volumes + extra


def _container(pool: Pool, size: ResolvedSize, images: WorkerImages,
               contributions: list[PodContribution]) -> dict[str, Any]:
    profile = pool.spec.worker.security_profile
    resources = {k: dict(v) for k, v in (("requests", size.resources.requests),
                                          ("limits", size.resources.limits)) if v}
    return {
        "name": "buildkitd", "image": _image(pool, images), "args": _args(profile),
        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                *_merged(contributions, "env")],
        "ports": [{"name": "buildkit", "containerPort": WORKER_PORT, "protocol": "TCP"}],
        "resources": resources,
        "readinessProbe": _probe(profile, period=5, failures=3),
        # Liveness is lenient: a busy daemon that misses a few probes must not lose its build.
        "livenessProbe": _probe(profile, period=20, failures=6),
        "lifecycle": {"preStop": {"exec": {"command": ["/bin/sh", "-c", PRESTOP_DRAIN]}}},
        "securityContext": _security(profile),
        "volumeMounts": [{"name": "config", "mountPath": "/etc/buildkit", "readOnly": True},
                         {"name": "certs", "mountPath": CERTS, "readOnly": True},
                         {"name": "buildkitd", "mountPath": _state_dir(profile)},
                         *_merged(contributions, "volume_mounts")],
    }


def _state_dir(profile: str) -> str:
    return BUILDKIT_ROOT if profile == "rootless" else "/var/lib/buildkit"


def _scheduling(pool: Pool) -> dict[str, Any]:
    worker = pool.spec.worker
    fields: dict[str, Any] = {
        "nodeSelector": dict(worker.node_selector) or None,
        "tolerations": [dict(t) for t in worker.tolerations] or None,
        "affinity": dict(worker.affinity) if worker.affinity else None,
        "topologySpreadConstraints": [dict(t) for t in worker.topology_spread_constraints] or None,
        "priorityClassName": worker.priority_class_name,
        "runtimeClassName": worker.runtime_class_name,
        "serviceAccountName": worker.service_account_name,
        "imagePullSecrets": [{"name": n} for n in worker.image_pull_secrets] or None,
        "hostUsers": False if worker.security_profile == "userns" else None,
    }
    return {k: v for k, v in fields.items() if v is not None}


def worker_pod(*, name: str, namespace: str, worker_uid: str, pool: Pool, size: ResolvedSize,
               contributions: Iterable[PodContribution] = (), images: WorkerImages | None = None,
               annotations: Mapping[str, str] | None = None, requested: str | None = None) -> dict[str, Any]:
    """The Pod manifest for worker ``name``, owned by its BuildKitWorker; ``requested`` is the size
    an allocation asked for (its ``size`` is then that profile), ``None`` for the pool's own size."""
    images = images or WorkerImages()
    contributions = list(contributions)
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": worker_labels(pool.name, name),
                     "annotations": dict(annotations or {}),
                     "ownerReferences": [owner_reference("BuildKitWorker", name, worker_uid)]},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": images.grace_period_seconds,
            "containers": [_container(pool, size, images, contributions)],
            "volumes": _volumes(pool, _merged(contributions, "volumes"), requested),
            **_scheduling(pool),
        },
    }
