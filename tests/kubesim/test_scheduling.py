"""Scheduling on kubesim's simulated nodes: nodeSelector, taints and tolerations."""

from __future__ import annotations

import asyncio

from kubernetes_asyncio import client

from kubesim import KubeSim, node_object


async def _conditions(core, name):
    pod = await core.read_namespaced_pod(name, "default")
    return pod, {c.type: c for c in pod.status.conditions or []}


async def test_unsatisfiable_node_selector_stays_pending_unschedulable(kubesim: KubeSim):
    """Acceptance 4: no node matches → Pending with PodScheduled=False, reason Unschedulable."""
    async with client.ApiClient(client.Configuration(host=kubesim.url)) as api:
        core = client.CoreV1Api(api)
        spec = {"nodeSelector": {"disk": "ssd"}, "containers": [{"name": "c", "image": "nginx"}]}
        await core.create_namespaced_pod("default", {"metadata": {"name": "p"}, "spec": spec})
        await asyncio.sleep(0.3)
        pod, conds = await _conditions(core, "p")
        assert pod.status.phase == "Pending" and pod.spec.node_name is None
        assert conds["PodScheduled"].status == "False" and conds["PodScheduled"].reason == "Unschedulable"
        assert "0/1 nodes are available" in conds["PodScheduled"].message
        node = node_object("ssd-node", labels={"disk": "ssd"})
        await core.create_node(node)  # a matching node appears: the pod is scheduled and runs
        for _ in range(50):
            pod, conds = await _conditions(core, "p")
            if pod.status.phase == "Running":
                break
            await asyncio.sleep(0.05)
        assert pod.spec.node_name == "ssd-node" and conds["Ready"].status == "True"


async def test_taints_need_tolerations():
    taint = {"key": "dedicated", "value": "builds", "effect": "NoSchedule"}
    async with (
        KubeSim(nodes=[node_object("tainted", taints=[taint])]) as sim,
        client.ApiClient(client.Configuration(host=sim.url)) as api,
    ):
        core = client.CoreV1Api(api)
        container = [{"name": "c", "image": "nginx"}]
        tolerations = [{"key": "dedicated", "operator": "Equal", "value": "builds", "effect": "NoSchedule"}]
        await core.create_namespaced_pod("default", {"metadata": {"name": "plain"}, "spec": {"containers": container}})
        await core.create_namespaced_pod(
            "default",
            {
                "metadata": {"name": "tolerant"},
                "spec": {"containers": container, "tolerations": tolerations},
            },
        )
        await asyncio.sleep(0.3)
        _plain, conds = await _conditions(core, "plain")
        assert conds["PodScheduled"].reason == "Unschedulable" and "untolerated taint" in conds["PodScheduled"].message
        tolerant, _ = await _conditions(core, "tolerant")
        assert tolerant.spec.node_name == "tainted" and tolerant.status.phase == "Running"
