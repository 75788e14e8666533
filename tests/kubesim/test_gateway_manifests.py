"""The operator's rendered gateway objects (golden file) run unchanged on kubesim.

Emulated: the Deployment's pods run a stand-in gateway from the manifest's args (wildcard listen
addresses land on each pod's own IP), httpGet probes on the named port ``metrics``, Secret volumes
at /etc/gateway/tls refreshed when the Secret changes, the ServiceAccount token mount, the Service
reaching the pods by name, a rolling update on a template change.
"""

from __future__ import annotations

import asyncio
import base64
import sys
from pathlib import Path

import aiohttp
import yaml
from kubernetes_asyncio import client, utils

from kubesim import KubeSim

GOLDEN = Path(__file__).parents[1] / "controller" / "golden" / "gateway.pool-example.yaml"
GATEWAY = [sys.executable, str(Path(__file__).parent / "apps" / "gateway_standin.py")]


def _secret(name: str, crt: str) -> dict:
    data = {"tls.crt": base64.b64encode(crt.encode()).decode(), "tls.key": "a2V5"}
    return {"metadata": {"name": name}, "data": data}


async def _wait(predicate, timeout: float = 15.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := await predicate()):
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.1)
    return result


async def test_gateway_deployment_runs_unchanged_and_rolls(tmp_path: Path):
    objects = yaml.safe_load(GOLDEN.read_text())
    for obj in objects:
        obj["metadata"].pop("ownerReferences", None)  # the BuildKitPool owner is not in this test
    async with (
        KubeSim(images={"buildkit-controller/gateway": GATEWAY}, sync_period=0.2, probe_period_cap=0.5) as sim,
        client.ApiClient(client.Configuration(host=sim.url)) as api,
    ):
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        await core.create_namespace({"metadata": {"name": "ci"}})
        await core.create_namespaced_secret("ci", _secret("my-buildkit-pool-gateway-tls", "cert-1"))
        await core.create_namespaced_secret("ci", _secret("my-buildkit-pool-gateway-worker-client", "c"))
        for obj in objects:
            await utils.create_from_dict(api, obj, namespace="ci")
        await apps.patch_namespaced_deployment_scale("my-buildkit-pool-gateway", "ci", {"spec": {"replicas": 2}})

        async def rolled_out(generation: int = 1):
            d = await apps.read_namespaced_deployment("my-buildkit-pool-gateway", "ci")
            s = d.status
            done = (s.observed_generation or 0) >= generation and s.updated_replicas == s.ready_replicas == 2
            return done and s.replicas == 2

        await _wait(rolled_out)
        pods = (await core.list_namespaced_pod("ci", label_selector="buildkit.smrt-devops.net/purpose=gateway")).items
        assert len({p.status.pod_ip for p in pods}) == 2  # both bound 0.0.0.0:9090, each on its own IP

        async def both_endpoints_ready():  # the Endpoints controller may trail the Deployment's status
            eps = await core.read_namespaced_endpoints("my-buildkit-pool", "ci")
            return sum(len(s.addresses or []) for s in eps.subsets or []) == 2

        await _wait(both_endpoints_ready)
        svc_ip = sim.resolve("my-buildkit-pool.ci.svc.cluster.local")
        seen = set()
        for _ in range(4):
            reader, writer = await asyncio.open_connection(svc_ip, 1235)
            seen.add((await reader.read()).decode())
            writer.close()
        assert seen == {p.metadata.name for p in pods}

        await core.replace_namespaced_secret(
            "my-buildkit-pool-gateway-tls", "ci", _secret("my-buildkit-pool-gateway-tls", "cert-2")
        )
        async with aiohttp.ClientSession() as http:

            async def rotated():
                async with http.get(f"http://{pods[0].status.pod_ip}:9090/tls") as r:
                    return await r.text() == "cert-2"

            await _wait(rotated)

        patch = {"spec": {"template": {"metadata": {"annotations": {"buildkit.smrt-devops.net/certs-hash": "def"}}}}}
        await apps.patch_namespaced_deployment("my-buildkit-pool-gateway", "ci", patch)
        await _wait(lambda: rolled_out(2), timeout=20)

        async def old_pods_gone():
            listed = await core.list_namespaced_pod("ci", label_selector="buildkit.smrt-devops.net/purpose=gateway")
            return len(listed.items) == 2 and listed.items

        fresh = await _wait(old_pods_gone)
        assert not {p.metadata.name for p in fresh} & {p.metadata.name for p in pods}
        assert all(p.metadata.annotations["buildkit.smrt-devops.net/certs-hash"] == "def" for p in fresh)
