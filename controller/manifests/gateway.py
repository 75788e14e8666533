"""A pool's gateway: Deployment ``<pool>-gateway``, Service ``<pool>`` and the gateway's narrow RBAC.

The gateway terminates client mTLS on 1235 (server certificate and tenant CA bundle from
``<pool>-gateway-tls``), reaches workers with its own client certificate from the worker CA
(``<pool>-gateway-worker-client``), and serves health and metrics on 9090. The pod template carries
a hash of the certificates so that a rotation rolls the gateway.
"""

from __future__ import annotations

from typing import Any

from buildkit_controller.controller.manifests.names import (
    API_VERSION,
    GATEWAY_METRICS_PORT,
    gateway_labels,
    gateway_name,
    owner_reference,
    pool_labels,
    secret_names,
)
from buildkit_controller.core.models import Pool

__all__ = ["CERTS_HASH_ANNOTATION", "gateway_deployment", "gateway_rbac", "gateway_service"]

CERTS_HASH_ANNOTATION = "buildkit.smrt-devops.net/certs-hash"
TLS_DIR = "/etc/gateway/tls"
WORKER_CLIENT_DIR = "/etc/gateway/worker-client"
DEFAULT_LIMITS = {"cpu": "1", "memory": "256Mi"}
DEFAULT_REQUESTS = {"cpu": "100m", "memory": "64Mi"}


def _owner(pool: Pool) -> list[dict[str, object]]:
    return [owner_reference("BuildKitPool", pool.name, pool.uid or "")]


def _resources(pool: Pool) -> dict[str, Any]:
    custom = pool.spec.gateway.resources
    return {"requests": dict(custom.requests) or DEFAULT_REQUESTS,
            "limits": dict(custom.limits) or DEFAULT_LIMITS}


def _container(pool: Pool, image: str) -> dict[str, Any]:
    probe = {"httpGet": {"path": "/readyz", "port": "metrics"}, "periodSeconds": 5, "failureThreshold": 2}
    return {
        "name": "gateway", "image": image,
        "args": [f"--pool={pool.name}", f"--namespace={pool.namespace}",
                 f"--listen=0.0.0.0:{pool.spec.gateway.port}",
                 f"--metrics-listen=0.0.0.0:{GATEWAY_METRICS_PORT}",
                 f"--tls-dir={TLS_DIR}", f"--worker-client-dir={WORKER_CLIENT_DIR}"],
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "ports": [{"name": "buildkit", "containerPort": pool.spec.gateway.port, "protocol": "TCP"},
                  {"name": "metrics", "containerPort": GATEWAY_METRICS_PORT, "protocol": "TCP"}],
        "resources": _resources(pool),
        "readinessProbe": probe,
        "livenessProbe": {**probe, "httpGet": {"path": "/healthz", "port": "metrics"},
                          "periodSeconds": 10, "failureThreshold": 3},
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "volumeMounts": [{"name": "tls", "mountPath": TLS_DIR, "readOnly": True},
                         {"name": "worker-client", "mountPath": WORKER_CLIENT_DIR, "readOnly": True}],
    }


def gateway_deployment(pool: Pool, *, image: str, certs_hash: str,
                       grace_period_seconds: int = 300) -> dict[str, Any]:
    """The gateway Deployment; ``certs_hash`` changes when any mounted certificate rotates."""
    secrets = secret_names(pool.name)
    selector = gateway_labels(pool.name)
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": gateway_name(pool.name), "namespace": pool.namespace,
                     "labels": {**pool_labels(pool.name, "gateway"), **selector},
                     "ownerReferences": _owner(pool)},
        "spec": {
            "replicas": pool.spec.gateway.replicas,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": selector, "annotations": {CERTS_HASH_ANNOTATION: certs_hash}},
                "spec": {
                    "serviceAccountName": gateway_name(pool.name),
                    "terminationGracePeriodSeconds": grace_period_seconds,
                    "enableServiceLinks": False,
                    "containers": [_container(pool, image)],
                    "volumes": [
                        {"name": "tls", "secret": {"secretName": secrets["gateway-tls"]}},
                        {"name": "worker-client", "secret": {"secretName": secrets["gateway-worker-client"]}},
                    ],
                },
            },
        },
    }


def gateway_service(pool: Pool) -> dict[str, Any]:
    """Service ``<pool>`` on the gateway port (1235 by default) and metrics (9090)."""
    gateway = pool.spec.gateway
    port: dict[str, Any] = {"name": "buildkit", "port": gateway.port, "targetPort": "buildkit",
                            "protocol": "TCP"}
    if gateway.service_type == "NodePort" and gateway.node_port:
        port["nodePort"] = gateway.node_port
    spec: dict[str, Any] = {
        "type": gateway.service_type, "selector": gateway_labels(pool.name),
        "ports": [port, {"name": "metrics", "port": GATEWAY_METRICS_PORT, "targetPort": "metrics",
                         "protocol": "TCP"}],
    }
    if gateway.service_type == "LoadBalancer" and gateway.load_balancer_class:
        spec["loadBalancerClass"] = gateway.load_balancer_class
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": pool.name, "namespace": pool.namespace,
                     "labels": {**pool_labels(pool.name, "gateway"), **gateway_labels(pool.name)},
                     "annotations": dict(pool.spec.networking.annotations),
                     "ownerReferences": _owner(pool)},
        "spec": spec,
    }


def gateway_rbac(pool: Pool) -> list[dict[str, Any]]:
    """ServiceAccount, Role and RoleBinding: the gateway may read its pool's workers and report
    activity on their status, nothing else (no Secrets: its certificates are mounted)."""
    name, meta = gateway_name(pool.name), {"namespace": pool.namespace, "ownerReferences": _owner(pool),
                                           "labels": pool_labels(pool.name, "gateway")}
    group = API_VERSION.split("/")[0]
    rules = [{"apiGroups": [group], "resources": ["buildkitworkers"], "verbs": ["get", "list", "watch"]},
             {"apiGroups": [group], "resources": ["buildkitworkers/status", "buildkitpools/status"],
              "verbs": ["patch"]}]
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, **meta},
         "automountServiceAccountToken": True},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name, **meta},
         "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": name, **meta},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": pool.namespace}]},
    ]
