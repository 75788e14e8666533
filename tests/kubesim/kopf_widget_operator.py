"""A small Kopf operator run against kubesim in test_kopf.py (not named operator.py: that shadows stdlib)."""

from __future__ import annotations

import kopf
from kubernetes_asyncio import client, config

WIDGETS = ("example.com", "v1", "widgets")


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: object) -> None:
    # Short timeouts and back-offs keep the test fast; faults make Kopf retry and re-watch.
    settings.watching.server_timeout = 10
    settings.watching.client_timeout = 15
    settings.watching.reconnect_backoff = 0.1
    settings.networking.error_backoffs = [0.1, 0.2, 0.5]
    settings.batching.idle_timeout = 0.3
    await config.load_kube_config()
    memo.core = client.CoreV1Api(client.ApiClient())


@kopf.on.create(*WIDGETS)
async def create_child(
    *,
    body: kopf.Body,
    name: str,
    namespace: str,
    spec: kopf.Spec,
    patch: kopf.Patch,
    memo: kopf.Memo,
    **_: object,
) -> None:
    child = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{name}-child"},
        "data": {"size": str(spec["size"])},
    }
    kopf.adopt(child)
    await memo.core.create_namespaced_config_map(namespace, child)
    patch.status["phase"] = "Created"
    kopf.info(body, reason="ChildCreated", message=f"created {name}-child")  # a k8s Event


@kopf.on.update(*WIDGETS, field="spec.size")
async def resize_child(name: str, namespace: str, new: int, memo: kopf.Memo, **_: object) -> None:
    await memo.core.patch_namespaced_config_map(f"{name}-child", namespace, {"data": {"size": str(new)}})


@kopf.on.delete(*WIDGETS)
async def record_deletion(name: str, namespace: str, memo: kopf.Memo, **_: object) -> None:
    await memo.core.create_namespaced_config_map(namespace, {"metadata": {"name": f"{name}-deleted"}})
