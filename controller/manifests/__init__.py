"""Pure builders of every Kubernetes object the operator creates (tested with golden files)."""

from buildkit_controller.controller.manifests.buildkitd import buildkitd_config
from buildkit_controller.controller.manifests.gateway import gateway_deployment, gateway_rbac, gateway_service
from buildkit_controller.controller.manifests.pool import pool_config_map
from buildkit_controller.controller.manifests.worker import WorkerImages, worker_pod

__all__ = [
    "WorkerImages",
    "buildkitd_config",
    "gateway_deployment",
    "gateway_rbac",
    "gateway_service",
    "pool_config_map",
    "worker_pod",
]
