"""The stand-in buildkitd, run by kubesim from the operator's own worker pod manifest (golden file).

Emulated: buildkitd's flags (``--addr`` unix + tcp with ``$(POD_IP)``, mTLS files from the mounted
Secret, ``--config`` from the mounted ConfigMap), the exec readiness probe
``buildctl --addr=unix:///run/user/1000/buildkit/buildkitd.sock debug workers`` inside the pod's
mount namespace, and BuildKit's ``moby.buildkit.v1.Control`` service for real grpcio clients.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import grpc
import pytest
import yaml
from kubernetes_asyncio import client

from kubesim import KubeSim
from kubesim.buildkitd.proto import control_pb2, control_pb2_grpc
from kubesim.certs import CA

GOLDEN = Path(__file__).parents[1] / "controller" / "golden" / "worker-pod.pool-example.yaml"
TOML = """
debug = false
[worker.oci]
  enabled = true
  [[worker.oci.gcpolicy]]
    keepBytes = 1073741824
    filters = ["type==source.local"]
"""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def pki():
    ca, other = CA("worker-ca"), CA("someone-else")
    return {
        "ca": ca,
        "server": ca.issue("buildkitd", server=True, dns=("buildkitd",)),
        "client": ca.issue("gateway"),
        "stranger": other.issue("gateway"),
    }


async def _ready_worker(sim: KubeSim, pki) -> client.V1Pod:
    manifest = yaml.safe_load(GOLDEN.read_text())
    del manifest["metadata"]["ownerReferences"]  # its BuildKitWorker owner is not in this test
    async with client.ApiClient(client.Configuration(host=sim.url)) as api:
        core = client.CoreV1Api(api)
        await core.create_namespace({"metadata": {"name": "ci"}})
        await core.create_namespaced_config_map(
            "ci", {"metadata": {"name": "my-buildkit-pool-config"}, "data": {"buildkitd.toml": TOML}}
        )
        server = pki["server"]
        data = {"ca.crt": _b64(pki["ca"].pem), "tls.crt": _b64(server.cert), "tls.key": _b64(server.key)}
        await core.create_namespaced_secret("ci", {"metadata": {"name": "my-buildkit-pool-worker-tls"}, "data": data})
        await core.create_namespaced_pod("ci", manifest)
        name = manifest["metadata"]["name"]
        for _ in range(100):
            pod = await core.read_namespaced_pod(name, "ci")
            if any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []):
                return pod
            await asyncio.sleep(0.1)
    raise AssertionError(f"worker pod never became Ready: {pod.status}")


def _channel(ip: str, ca: bytes, pair) -> grpc.aio.Channel:
    creds = grpc.ssl_channel_credentials(ca, pair.key if pair else None, pair.cert if pair else None)
    return grpc.aio.secure_channel(f"{ip}:1234", creds, options=[("grpc.ssl_target_name_override", "buildkitd")])


async def test_grpc_client_with_certificate_reaches_the_worker_pod(pki):
    """Acceptance 3: ListWorkers and Info over mTLS; no certificate or a foreign CA's is refused."""
    async with KubeSim(pod_grace_cap=2) as sim:
        pod = await _ready_worker(sim, pki)
        ip = pod.status.pod_ip
        async with _channel(ip, pki["ca"].pem, pki["client"]) as channel:
            stub = control_pb2_grpc.ControlStub(channel)
            workers = await stub.ListWorkers(control_pb2.ListWorkersRequest(), timeout=5)
            info = await stub.Info(control_pb2.InfoRequest(), timeout=5)
            usage = await stub.DiskUsage(control_pb2.DiskUsageRequest(), timeout=5)
            chunks = [b"x" * 1_000_000, b"y" * 10]

            async def outgoing():
                for chunk in chunks:
                    yield control_pb2.BytesMessage(data=chunk)

            echoed = [m.data async for m in stub.Session(outgoing(), timeout=5)]
        record = workers.record[0]
        assert record.Labels["org.mobyproject.buildkit.worker.hostname"] == pod.metadata.name
        assert record.Labels["org.mobyproject.buildkit.worker.oci.process-mode"] == "no-sandbox"
        assert [(p.OS, p.Architecture) for p in record.platforms] == [("linux", "amd64")]
        assert record.GCPolicy[0].keepBytes == 1073741824  # from the mounted buildkitd.toml
        assert info.buildkitVersion.package == "github.com/moby/buildkit"
        assert usage.record[0].RecordType == "regular"
        assert echoed == chunks
        for pair in (None, pki["stranger"]):
            async with _channel(ip, pki["ca"].pem, pair) as channel:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await control_pb2_grpc.ControlStub(channel).ListWorkers(control_pb2.ListWorkersRequest(), timeout=3)
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        async with client.ApiClient(client.Configuration(host=sim.url)) as api:
            logs = await client.CoreV1Api(api).read_namespaced_pod_log(pod.metadata.name, "ci")
        assert "running on unix:///run/user/1000/buildkit/buildkitd.sock" in logs


async def test_prestop_drain_waits_for_open_connections(pki):
    """The manifest's preStop script (awk over /proc/net/tcp) holds the deletion while a client is
    connected to POD_IP:1234; once the client goes, the pod terminates and disappears."""
    async with KubeSim(pod_grace_cap=20) as sim:
        pod = await _ready_worker(sim, pki)
        name = pod.metadata.name
        async with (
            _channel(pod.status.pod_ip, pki["ca"].pem, pki["client"]) as channel,
            client.ApiClient(client.Configuration(host=sim.url)) as api,
        ):
            await control_pb2_grpc.ControlStub(channel).ListWorkers(control_pb2.ListWorkersRequest(), timeout=5)
            core = client.CoreV1Api(api)
            await core.delete_namespaced_pod(name, "ci")
            await asyncio.sleep(1.0)
            held = await core.read_namespaced_pod(name, "ci")
            assert held.metadata.deletion_timestamp is not None  # still draining
        # the channel is closed now: the next awk round finds no connection
        async with client.ApiClient(client.Configuration(host=sim.url)) as api:
            core = client.CoreV1Api(api)
            for _ in range(60):
                if name not in [p.metadata.name for p in (await core.list_namespaced_pod("ci")).items]:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("worker pod was not deleted after its connections closed")
