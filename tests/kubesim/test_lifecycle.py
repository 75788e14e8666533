"""Deletion semantics on kubesim (the emulated API server): finalizers, garbage collection, namespaces."""

from __future__ import annotations

import asyncio

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.rest import ApiException

from kubesim import KubeSim


@pytest.fixture
async def api(kubesim: KubeSim):
    async with client.ApiClient(client.Configuration(host=kubesim.url)) as api:
        yield api


async def _gone(read, *args, timeout: float = 3.0) -> bool:
    """Poll until reading returns 404 (garbage collection is in the background, as on a real cluster)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        try:
            await read(*args)
        except ApiException as exc:
            if exc.status == 404:
                return True
            raise
        await asyncio.sleep(0.02)
    return False


def _owned(name: str, owner) -> dict:
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": owner.metadata.name, "uid": owner.metadata.uid}
    return {"metadata": {"name": name, "ownerReferences": [ref]}}


async def test_finalizer_holds_deletion_then_children_follow(api):
    """Acceptance 3: deletion waits for the finalizer; then the object and its dependents go."""
    core = client.CoreV1Api(api)
    parent = await core.create_namespaced_config_map(
        "default", {"metadata": {"name": "parent", "finalizers": ["example.com/hold"]}}
    )
    await core.create_namespaced_config_map("default", _owned("child", parent))
    await core.create_namespaced_secret("default", _owned("child-secret", parent))
    await core.delete_namespaced_config_map("parent", "default")
    held = await core.read_namespaced_config_map("parent", "default")
    assert held.metadata.deletion_timestamp is not None
    assert (await core.read_namespaced_config_map("child", "default")).metadata.name == "child"
    with pytest.raises(ApiException) as exc:
        await core.patch_namespaced_config_map(
            "parent", "default", {"metadata": {"finalizers": ["example.com/hold", "new"]}}
        )
    assert exc.value.status == 422
    await core.patch_namespaced_config_map("parent", "default", {"metadata": {"finalizers": None}})
    assert await _gone(core.read_namespaced_config_map, "parent", "default")
    assert await _gone(core.read_namespaced_config_map, "child", "default")
    assert await _gone(core.read_namespaced_secret, "child-secret", "default")


async def test_orphan_propagation_keeps_children(api):
    core = client.CoreV1Api(api)
    parent = await core.create_namespaced_config_map("default", {"metadata": {"name": "o-parent"}})
    await core.create_namespaced_config_map("default", _owned("o-child", parent))
    await core.delete_namespaced_config_map("o-parent", "default", propagation_policy="Orphan")
    await asyncio.sleep(0.1)
    child = await core.read_namespaced_config_map("o-child", "default")
    assert not child.metadata.owner_references


async def test_gc_cascades_through_generations(api):
    core = client.CoreV1Api(api)
    top = await core.create_namespaced_config_map("default", {"metadata": {"name": "g0"}})
    middle = await core.create_namespaced_config_map("default", _owned("g1", top))
    await core.create_namespaced_config_map("default", _owned("g2", middle))
    await core.delete_namespaced_config_map("g0", "default")
    assert await _gone(core.read_namespaced_config_map, "g2", "default")


async def test_namespace_deletion_empties_then_removes_it(api):
    core = client.CoreV1Api(api)
    await core.create_namespace({"metadata": {"name": "doomed"}})
    await core.create_namespaced_config_map("doomed", {"metadata": {"name": "x", "finalizers": ["hold"]}})
    await core.delete_namespace("doomed")
    namespace = await core.read_namespace("doomed")
    assert namespace.status.phase == "Terminating"
    with pytest.raises(ApiException) as exc:
        await core.create_namespaced_config_map("doomed", {"metadata": {"name": "y"}})
    assert exc.value.status == 403
    await core.patch_namespaced_config_map("x", "doomed", {"metadata": {"finalizers": None}})
    assert await _gone(core.read_namespace, "doomed")


async def test_default_service_account_appears_in_new_namespaces(api):
    core = client.CoreV1Api(api)
    await core.create_namespace({"metadata": {"name": "fresh"}})
    for _ in range(50):
        accounts = await core.list_namespaced_service_account("fresh")
        if accounts.items:
            break
        await asyncio.sleep(0.02)
    assert [a.metadata.name for a in accounts.items] == ["default"]


async def test_generation_tracks_spec_only():
    async with (
        KubeSim(workloads=False, kubelet=False) as sim,  # no controller writes in between
        client.ApiClient(client.Configuration(host=sim.url)) as api,
    ):
        await _generation_tracks_spec_only(api)


async def _generation_tracks_spec_only(api):
    apps = client.AppsV1Api(api)
    labels = {"app": "g"}
    body = {
        "metadata": {"name": "g"},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            },
        },
    }
    created = await apps.create_namespaced_deployment("default", body)
    assert created.metadata.generation == 1 and created.spec.replicas == 1
    labelled = await apps.patch_namespaced_deployment("g", "default", {"metadata": {"labels": {"x": "y"}}})
    assert labelled.metadata.generation == 1
    scaled = await apps.patch_namespaced_deployment("g", "default", {"spec": {"replicas": 3}})
    assert scaled.metadata.generation == 2
    same = await apps.patch_namespaced_deployment("g", "default", {"spec": {"replicas": 3}})
    assert same.metadata.resource_version == scaled.metadata.resource_version, "no-op writes keep the version"
    status = await apps.patch_namespaced_deployment_status("g", "default", {"status": {"replicas": 3}})
    assert status.metadata.generation == 2 and status.status.replicas == 3


async def test_delete_collection_with_selector(api):
    core = client.CoreV1Api(api)
    for name, tier in (("a", "x"), ("b", "x"), ("c", "y")):
        await core.create_namespaced_config_map("default", {"metadata": {"name": name, "labels": {"t": tier}}})
    await core.delete_collection_namespaced_config_map("default", label_selector="t=x")
    left = await core.list_namespaced_config_map("default")
    assert [i.metadata.name for i in left.items] == ["c", "kube-root-ca.crt"]


async def test_service_gets_cluster_ip_and_secret_string_data_is_encoded(api):
    core = client.CoreV1Api(api)
    svc = await core.create_namespaced_service(
        "default", {"metadata": {"name": "s"}, "spec": {"selector": {"app": "s"}, "ports": [{"port": 80}]}}
    )
    assert svc.spec.cluster_ip.startswith("127.") and svc.spec.ports[0].target_port == 80
    secret = await core.create_namespaced_secret("default", {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    assert secret.data == {"k": "dg=="} and secret.type == "Opaque"


async def test_pod_bound_to_a_node_is_deleted_gracefully(api, kubesim: KubeSim):
    """Unscheduled pods go at once; a pod with spec.nodeName keeps a deletionTimestamp for its grace."""
    core = client.CoreV1Api(api)
    spec = {"containers": [{"name": "c", "image": "i"}]}
    unschedulable = {**spec, "nodeSelector": {"no": "such-node"}}
    await core.create_namespaced_pod("default", {"metadata": {"name": "free"}, "spec": unschedulable})
    await core.delete_namespaced_pod("free", "default")
    assert await _gone(core.read_namespaced_pod, "free", "default", timeout=0.05)
    await core.create_namespaced_pod("default", {"metadata": {"name": "bound"}, "spec": {**spec, "nodeName": "n1"}})
    await core.delete_namespaced_pod("bound", "default", grace_period_seconds=30)
    pod = await core.read_namespaced_pod("bound", "default")
    assert pod.metadata.deletion_timestamp is not None and pod.metadata.deletion_grace_period_seconds == 30
    assert await _gone(core.read_namespaced_pod, "bound", "default", timeout=3)  # pod_grace_cap is 1 s
