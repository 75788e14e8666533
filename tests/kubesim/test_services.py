"""Services on kubesim: Endpoints from ready pods, a userspace proxy on the cluster IP, the name table.

Emulated: a pod whose readiness probe fails is listed under ``notReadyAddresses`` and never receives
Service traffic; ``targetPort`` by container port name; ``<svc>.<ns>.svc[.cluster.local]`` names.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp
from kubernetes_asyncio import client

from kubesim import KubeSim

APP = [sys.executable, str(Path(__file__).parent / "apps" / "podapp.py")]


def pod(name: str, ready: bool) -> dict:
    env = [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    if not ready:
        env.append({"name": "NOT_READY", "value": "1"})
    container = {
        "name": "web",
        "image": "example.com/podapp",
        "env": env,
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": 8080},
            "periodSeconds": 1,
            "failureThreshold": 1,
        },
    }
    spec = {
        "containers": [container],
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 1,
    }
    return {"metadata": {"name": name, "labels": {"app": "web"}}, "spec": spec}


async def test_service_reaches_only_ready_pods():
    """Acceptance 2: an unready pod stays out of the Endpoints and gets no Service connections."""
    async with (
        KubeSim(images={"example.com/podapp": APP}) as sim,
        client.ApiClient(client.Configuration(host=sim.url)) as api,
    ):
        core = client.CoreV1Api(api)
        svc_body = {
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"app": "web"},
                "ports": [{"name": "h", "port": 80, "targetPort": "http"}],
            },
        }
        svc = await core.create_namespaced_service("default", svc_body)
        await core.create_namespaced_pod("default", pod("good", ready=True))
        await core.create_namespaced_pod("default", pod("bad", ready=False))

        async def settled():
            eps = await core.read_namespaced_endpoints("web", "default")
            subsets = eps.subsets or []
            ready = [a.target_ref.name for s in subsets for a in s.addresses or []]
            unready = [a.target_ref.name for s in subsets for a in s.not_ready_addresses or []]
            return (ready, unready) == (["good"], ["bad"]) and subsets

        deadline = asyncio.get_running_loop().time() + 15
        while not (subsets := await settled()):
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.1)
        assert subsets[0].ports[0].port == 8080 and subsets[0].ports[0].name == "h"
        bad = await core.read_namespaced_pod("bad", "default")
        ready = {c.type: c.status for c in bad.status.conditions}
        assert bad.status.phase == "Running" and ready["Ready"] == "False"

        ip = svc.spec.cluster_ip
        assert sim.resolve("web.default.svc") == ip == sim.names()["web.default.svc.cluster.local"]
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{sim.url}/kubesim/names") as r:
                assert (await r.json())["web.default.svc"] == ip
            for _ in range(6):
                async with http.get(f"http://{ip}:80/env", headers={"Connection": "close"}) as r:
                    assert (await r.json())["POD_NAME"] == "good"
