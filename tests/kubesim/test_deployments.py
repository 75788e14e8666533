"""Deployments on kubesim's simulated kubelet: pods run as local processes from their manifests.

Emulated: Deployment → ReplicaSet → Pods, each pod a process in its own mount namespace with the
container's env (downward API, secretKeyRef), its Secret mounted at the mountPath, a projected
ServiceAccount token for in-cluster clients, preStop hooks on scale-down.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp
from kubernetes_asyncio import client

from kubesim import KubeSim
from kubesim.kubelet.process import pids_with

APP = [sys.executable, str(Path(__file__).parent / "apps" / "podapp.py")]
LABELS = {"app": "web"}


def deployment(replicas: int, shared: Path) -> dict:
    container = {
        "name": "web",
        "image": "example.com/podapp:1.0",
        "env": [
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
        ],
        "args": ["--listen=$(POD_IP):8080"],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 1},
        "lifecycle": {"preStop": {"exec": {"command": ["/bin/sh", "-c", "echo bye > /shared/$POD_NAME"]}}},
        "volumeMounts": [
            {"name": "creds", "mountPath": "/etc/app/creds", "readOnly": True},
            {"name": "shared", "mountPath": "/shared"},
        ],
    }
    return {
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": LABELS},
            "template": {
                "metadata": {"labels": LABELS},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [container],
                    "volumes": [
                        {"name": "creds", "secret": {"secretName": "creds"}},
                        {"name": "shared", "hostPath": {"path": str(shared)}},
                    ],
                },
            },
        },
    }


async def wait_for(predicate, timeout: float = 15.0, interval: float = 0.1):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await predicate()
        if result:
            return result
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(interval)


async def test_deployment_runs_ready_processes_and_scales_down_with_prestop(tmp_path: Path):
    """Acceptance 1: 3 Ready pods on 3 IPs, each seeing its Secret, POD_IP and a working in-cluster
    client; scaling to 1 runs the preStop hook of the 2 pods that go, and their processes end."""
    async with (
        KubeSim(images={"example.com/podapp": APP}, pod_grace_cap=5) as sim,
        client.ApiClient(client.Configuration(host=sim.url)) as api,
    ):
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        await core.create_namespaced_secret(
            "default", {"metadata": {"name": "creds"}, "stringData": {"password": "s3cret"}}
        )
        await apps.create_namespaced_deployment("default", deployment(3, tmp_path))

        async def ready():
            d = await apps.read_namespaced_deployment_status("web", "default")
            return d.status.ready_replicas == 3 and d

        status = (await wait_for(ready)).status
        assert (status.replicas, status.updated_replicas, status.available_replicas) == (3, 3, 3)
        pods = (await core.list_namespaced_pod("default", label_selector="app=web")).items
        ips = {p.status.pod_ip for p in pods}
        assert len(ips) == 3 and all(ip.startswith("127.") for ip in ips)
        async with aiohttp.ClientSession() as http:
            for pod in pods:
                base = f"http://{pod.status.pod_ip}:8080"
                async with http.get(f"{base}/file", params={"path": "/etc/app/creds/password"}) as r:
                    assert await r.text() == "s3cret"
                async with http.get(f"{base}/env") as r:
                    env = await r.json()
                assert env["POD_IP"] == pod.status.pod_ip and env["PASSWORD"] == "s3cret"
                async with http.get(f"{base}/whoami") as r:
                    assert await r.json() == {"name": pod.metadata.name, "podIP": pod.status.pod_ip}
        assert not Path("/etc/app/creds").exists(), "mounts exist only inside the pods"

        await apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 1}})

        async def one_left():
            left = (await core.list_namespaced_pod("default", label_selector="app=web")).items
            return len(left) == 1 and left

        left = await wait_for(one_left)
        gone = {p.metadata.name for p in pods} - {left[0].metadata.name}
        assert {f.name for f in tmp_path.iterdir()} == gone
        assert all((tmp_path / name).read_text() == "bye\n" for name in gone)
        for name in gone:
            assert not pids_with(f"POD_NAME={name}".encode())
