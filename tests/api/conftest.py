"""The allocation API against kubesim (the emulated API server). Pods do not run here: workers are
marked Idle and Ready through their status, as the operator would after a real readiness probe."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from buildkit_controller.controller.api.allocations import AllocationSettings, Allocator
from buildkit_controller.controller.api.app import ApiContext, create_app
from buildkit_controller.controller.api.identity import IdentityAuthority
from buildkit_controller.controller.crds import all_crds
from buildkit_controller.controller.manifests.names import API_VERSION, IDLE_LABEL, POOL_LABEL
from buildkit_controller.controller.manifests.secrets import pool_secret
from buildkit_controller.controller.reconciler.kube import Kube
from buildkit_controller.core._loader import load_plugins
from buildkit_controller.core.models import Pool, Runtime
from buildkit_controller.core.pool_certs import plan_pool_certificates
from buildkit_controller.core.settings import PluginSettings
from buildkit_controller.core.testing import NOW
from buildkit_controller.plugins.token import new_static_token
from kubesim import KubeSim
from kubesim.testing import kubesim  # noqa: F401 - a pytest fixture

#: Where the API keeps its identity CA Secret.
API_NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "buildkit-system"}}


class Cluster:
    def __init__(self, kube: Kube, token_dir: Path) -> None:
        self.kube, self.token_dir = kube, token_dir

    def token(self, subject: str, pools: list[str] | None = None) -> dict[str, str]:
        token, entry = new_static_token(subject, pools)
        self.token_dir.mkdir(exist_ok=True)
        (self.token_dir / subject).write_text(json.dumps(entry))
        return {"Authorization": f"Bearer {token}"}

    async def pool(self, name: str = "builds", namespace: str = "default", **spec: Any) -> Pool:
        if await self.kube.get("v1", "Namespace", namespace, None) is None:
            await self.kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        body = await self.kube.create({"apiVersion": API_VERSION, "kind": "BuildKitPool",
                                       "metadata": {"name": name, "namespace": namespace}, "spec": spec})
        pool = Pool.from_body(body)
        for logical, data in plan_pool_certificates(pool, {}, NOW).data.items():
            await self.kube.create(pool_secret(pool, logical, data))
        return pool

    async def idle_workers(self, pool: Pool, count: int, *, labelled: bool = True) -> list[str]:
        """``count`` ready, idle workers, labelled idle as the operator labels them (``labelled``)."""
        names = []
        for n in range(count):
            name = f"{pool.name}-worker-{n:03d}"
            await self.kube.create({"apiVersion": API_VERSION, "kind": "BuildKitWorker",
                                    "metadata": {"name": name, "namespace": pool.namespace,
                                                 "labels": {POOL_LABEL: pool.name,
                                                            **({IDLE_LABEL: "true"} if labelled else {})}},
                                    "spec": {"poolRef": {"name": pool.name}}})
            await self.kube.patch(API_VERSION, "BuildKitWorker", name, pool.namespace, {"status": {
                "phase": "Idle", "podName": name, "podIP": f"127.0.9.{n + 1}",
                "endpoint": f"tcp://127.0.9.{n + 1}:1234",
                "conditions": [{"type": "Ready", "status": "True", "reason": "PodReady", "message": "",
                                "lastTransitionTime": "2026-06-01T12:00:00Z"}]}}, status=True)
            names.append(name)
        return names

    async def workers(self, namespace: str = "default") -> list[dict[str, Any]]:
        return await self.kube.list(API_VERSION, "BuildKitWorker", namespace)


@pytest_asyncio.fixture
async def cluster(kubesim: KubeSim, tmp_path: Path) -> AsyncIterator[Cluster]:  # noqa: F811
    kube = await Kube.connect(host=kubesim.url)
    for crd in all_crds():
        await kube.create(crd)
    await kube.create(API_NAMESPACE)
    yield Cluster(kube, tmp_path / "tokens")
    await kube.close()


@pytest.fixture
def client(cluster: Cluster) -> Any:
    host = load_plugins(PluginSettings())
    authority = IdentityAuthority(cluster.kube, "buildkit-system")
    host.configure(Runtime(process="api", environ={"BKC_AUTH_TOKEN_DIR": str(cluster.token_dir)}, kube=cluster.kube,
                           identity_ca=authority.bundle))
    allocator = Allocator(cluster.kube, AllocationSettings(queue_timeout=1.0, ready_timeout=2.0, poll_interval=0.05))
    return create_app(ApiContext(kube=cluster.kube, host=host, allocator=allocator, identity=authority)).test_client()
