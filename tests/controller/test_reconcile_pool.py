"""One pool reconcile against kubesim (the emulated API server; pods do not run in these tests)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio.client.exceptions import ApiException

from buildkit_controller.controller.manifests.names import API_VERSION, POOL_LABEL
from buildkit_controller.controller.reconciler.context import Context
from buildkit_controller.controller.reconciler.kube import Kube
from buildkit_controller.controller.reconciler.pools import reconcile_pool

ROOT = Path(__file__).resolve().parents[2]


async def create_pool(kube: Kube, spec_changes: dict[str, Any] | None = None) -> dict[str, Any]:
    body = yaml.safe_load((ROOT / "examples" / "pool-example.yaml").read_text())
    body["metadata"]["namespace"] = "default"  # kubectl would take it from the context
    body["spec"].update(spec_changes or {})
    return await kube.create(body)


async def names(kube: Kube, api_version: str, kind: str) -> set[str]:
    return {o["metadata"]["name"] for o in await kube.list(api_version, kind, "default")}


async def test_seed_example_gets_its_objects_workers_and_status(kube: Kube, context: Context) -> None:
    pool = await create_pool(kube, {"scaling": {"min": 2, "max": 3}})
    status = await reconcile_pool(context, pool)
    secrets = await names(kube, "v1", "Secret")
    assert {"my-buildkit-pool-tenant-ca", "my-buildkit-pool-worker-ca", "my-buildkit-pool-gateway-tls",
            "my-buildkit-pool-gateway-worker-client", "my-buildkit-pool-worker-tls"} <= secrets
    config = await kube.get("v1", "ConfigMap", "my-buildkit-pool-config", "default")
    assert config is not None and "max-parallelism = 4" in config["data"]["buildkitd.toml"]
    worker_ca = await kube.get("v1", "Secret", "my-buildkit-pool-worker-ca", "default") or {}
    published = config["data"]["worker-ca.crt"]  # what the API trusts for the gateway: no key
    assert published == base64.b64decode(worker_ca["data"]["bundle.crt"]).decode()
    assert "PRIVATE KEY" not in published
    assert "my-buildkit-pool-gateway" in await names(kube, "apps/v1", "Deployment")
    service = await kube.get("v1", "Service", "my-buildkit-pool", "default")
    assert service is not None and [p["port"] for p in service["spec"]["ports"]] == [1235, 9090]
    assert "my-buildkit-pool-gateway" in await names(kube, "rbac.authorization.k8s.io/v1", "Role")
    workers = await kube.list(API_VERSION, "BuildKitWorker", "default", {POOL_LABEL: "my-buildkit-pool"})
    assert len(workers) == 2
    assert all(w["metadata"]["ownerReferences"][0]["uid"] == pool["metadata"]["uid"] for w in workers)
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {"Ready": "False", "GatewayReady": "False", "CertificatesReady": "True",
                          "PluginsReady": "True"}
    assert status["phase"] == "Pending"  # no gateway pod can be ready without a kubelet
    reasons = {e["reason"] for e in await kube.list("v1", "Event", "default")}
    assert {"Certificates", "WorkerCreated", "GatewayUpdated"} <= reasons


async def versions(kube: Kube) -> dict[tuple[str, str], str]:
    kinds = (("v1", "Secret"), ("v1", "ConfigMap"), ("apps/v1", "Deployment"), ("v1", "Service"))
    return {(o["kind"], o["metadata"]["name"]): o["metadata"]["resourceVersion"]
            for kind in kinds for o in await kube.list(*kind, "default")}


async def test_a_second_reconcile_writes_nothing(kube: Kube, context: Context) -> None:
    pool = await create_pool(kube, {"scaling": {"min": 1}})
    await reconcile_pool(context, pool)
    before = await versions(kube)
    fresh = await kube.get(API_VERSION, "BuildKitPool", "my-buildkit-pool", "default")
    await reconcile_pool(context, fresh or {})
    assert await versions(kube) == before
    assert len(await kube.list(API_VERSION, "BuildKitWorker", "default")) == 1


async def test_a_pool_naming_a_missing_plugin_fails_with_the_reason(kube: Kube, context: Context) -> None:
    pool = await create_pool(kube, {"scaling": {"policy": "turbo"}})
    status = await reconcile_pool(context, pool)
    assert status["phase"] == "Failed"
    ready = status["conditions"][0]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "False", "InvalidSpec")
    assert "'turbo' is not enabled" in ready["message"]
    assert await kube.list(API_VERSION, "BuildKitWorker", "default") == []


@pytest.mark.parametrize(("spec", "message"), [
    ({"maxSize": "huge"}, "spec.maxSize: unknown size 'huge'"),
    ({"size": "tiny"}, "spec.size: unknown size 'tiny'"),
])
async def test_an_unknown_size_fails_the_pool_with_the_field(kube: Kube, context: Context, spec: dict[str, Any],
                                                              message: str) -> None:
    status = await reconcile_pool(context, await create_pool(kube, spec))
    assert status["phase"] == "Failed"
    assert message in status["conditions"][0]["message"]


async def test_the_crd_rejects_a_bad_enum_and_max_below_one(kube: Kube) -> None:
    for bad in ({"scaling": {"mode": "turbo"}}, {"scaling": {"max": 0}}):
        with pytest.raises(ApiException) as info:
            await create_pool(kube, bad)
        assert info.value.status == 422
