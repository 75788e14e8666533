"""The real Kopf operator, in-process, against kubesim (the emulated API server; pods do not run)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
import yaml

from buildkit_controller.controller.manifests.names import API_VERSION, IDLE_LABEL, POOL_LABEL, PURPOSE_LABEL
from buildkit_controller.controller.manifests.secrets import secret_text
from buildkit_controller.controller.reconciler.context import OperatorSettings
from buildkit_controller.controller.reconciler.kube import Kube
from buildkit_controller.controller.reconciler.run import OperatorOptions, run_operator
from buildkit_controller.core import pki
from buildkit_controller.core.settings import PluginSettings
from kubesim import KubeSim
from kubesim.buildkitd.proto import control_pb2, control_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]


@pytest_asyncio.fixture
async def operator(kubesim: KubeSim, kube: Kube) -> AsyncIterator[Kube]:
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_operator(
        OperatorOptions(server=kubesim.url, standalone=True), PluginSettings(),
        OperatorSettings(resync_seconds=0.5), stop_flag=stop, ready_flag=ready))
    await asyncio.wait_for(ready.wait(), 20)
    yield kube
    stop.set()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 20)


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 15.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result or asyncio.get_running_loop().time() > deadline:
            assert result, "condition not reached in time"
            return result
        await asyncio.sleep(0.2)


async def worker_pods(kube: Kube) -> list[dict[str, Any]]:
    """Pods of workers (the gateway Deployment's pods run too, since kubesim has a kubelet)."""
    return await kube.list("v1", "Pod", "default", {PURPOSE_LABEL: "worker"})


def pool_body(spec: dict[str, Any]) -> dict[str, Any]:
    body = yaml.safe_load((ROOT / "examples" / "pool-example.yaml").read_text())
    body["metadata"]["namespace"] = "default"
    body["spec"].update(spec)
    return body


async def test_operator_creates_min_workers_with_pods_and_reports_status(operator: Kube) -> None:
    await operator.create(pool_body({"scaling": {"min": 2, "max": 4}}))

    async def workers_with_pods() -> list[dict[str, Any]]:
        workers = await operator.list(API_VERSION, "BuildKitWorker", "default",
                                      {POOL_LABEL: "my-buildkit-pool"})
        pods = {p["metadata"]["name"] for p in await worker_pods(operator)}
        ok = len(workers) == 2 and all(w["metadata"]["name"] in pods for w in workers)
        return workers if ok else []

    workers = await eventually(workers_with_pods)
    assert all((w.get("status") or {}).get("podName") == w["metadata"]["name"] for w in workers)

    async def status() -> dict[str, Any]:
        pool = await operator.get(API_VERSION, "BuildKitPool", "my-buildkit-pool", "default") or {}
        found = pool.get("status") or {}
        return found if (found.get("workers") or {}).get("total") == 2 else {}

    found = await eventually(status)
    assert found["endpoint"] == "tcp://my-buildkit-pool.default.svc:1235"
    assert {c["type"] for c in found["conditions"]} == {"Ready", "GatewayReady", "CertificatesReady",
                                                        "PluginsReady"}
    await asyncio.sleep(1.5)  # several resync rounds: still exactly two workers
    assert len(await operator.list(API_VERSION, "BuildKitWorker", "default")) == 2


async def test_workers_created_from_outside_never_exceed_max(operator: Kube) -> None:
    await operator.create(pool_body({"scaling": {"min": 0, "max": 3}}))
    outside = {"apiVersion": API_VERSION, "kind": "BuildKitWorker",
               "metadata": {"generateName": "outside-", "namespace": "default",
                            "labels": {POOL_LABEL: "my-buildkit-pool"}},
               "spec": {"poolRef": {"name": "my-buildkit-pool"}}}
    await asyncio.gather(*(operator.create(outside) for _ in range(50)))
    most_pods = 0

    async def refused_all_but_three() -> bool:
        nonlocal most_pods
        most_pods = max(most_pods, len(await worker_pods(operator)))
        refusals = [e for e in await operator.list("v1", "Event", "default") if e["reason"] == "NotAdmitted"]
        return len(refusals) == 47

    await eventually(refused_all_but_three, timeout=40)

    async def three_left() -> bool:
        return len(await operator.list(API_VERSION, "BuildKitWorker", "default")) == 3

    await eventually(three_left)  # the refused ones failed and were removed by the pool's scaling
    assert most_pods <= 3
    assert len(await worker_pods(operator)) == 3


async def test_deleting_a_worker_deletes_its_pod_then_the_worker(operator: Kube) -> None:
    await operator.create(pool_body({"scaling": {"min": 1, "max": 2}}))

    async def one_pod() -> list[dict[str, Any]]:
        return await worker_pods(operator)

    (pod,) = await eventually(one_pod)
    await operator.delete(API_VERSION, "BuildKitWorker", pod["metadata"]["name"], "default")

    async def replaced() -> bool:
        names = {w["metadata"]["name"] for w in await operator.list(API_VERSION, "BuildKitWorker", "default")}
        pods = {p["metadata"]["name"] for p in await worker_pods(operator)}
        return pod["metadata"]["name"] not in names | pods and len(names) == 1

    await eventually(replaced)  # the pod went first, then the worker; min 1 brought a new one


async def test_deleting_a_pool_removes_everything_it_created(operator: Kube) -> None:
    await operator.create(pool_body({"scaling": {"min": 2, "max": 3}}))
    await eventually(lambda: _count(operator, "v1", "Pod", 2))
    await operator.delete(API_VERSION, "BuildKitPool", "my-buildkit-pool", "default")
    for api_version, kind in [(API_VERSION, "BuildKitWorker"), ("v1", "Pod"), ("apps/v1", "Deployment"),
                              ("v1", "ConfigMap"), ("rbac.authorization.k8s.io/v1", "Role")]:
        await eventually(lambda a=api_version, k=kind: _none_of_ours(operator, a, k))
    secrets = await operator.list("v1", "Secret", "default", {POOL_LABEL: "my-buildkit-pool"})
    assert secrets == []


async def _count(kube: Kube, api_version: str, kind: str, count: int) -> bool:
    labels = {PURPOSE_LABEL: "worker"} if kind == "Pod" else None
    return len(await kube.list(api_version, kind, "default", labels)) == count


async def _none_of_ours(kube: Kube, api_version: str, kind: str) -> bool:
    objects = await kube.list(api_version, kind, "default")
    return not [o for o in objects if "my-buildkit-pool" in o["metadata"]["name"]]


async def test_kubectl_shows_pool_and_worker_columns(operator: Kube, kubesim: KubeSim,
                                                     tmp_path: Path) -> None:
    """Real kubectl against kubesim: short names, category and printer columns with live values."""
    await operator.create(pool_body({"scaling": {"min": 2, "max": 4}}))
    await eventually(lambda: _pool_ready(operator, 2), timeout=30)
    kubeconfig = tmp_path / "kubeconfig"
    kubesim.write_kubeconfig(kubeconfig)
    process = await asyncio.create_subprocess_exec(
        "kubectl", "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp_path / "cache"),
        "get", "bkp,bkw", "-n", "default", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    pool_header = next(line for line in lines if line.startswith("NAME") and "CONNECTIONS" in line)
    assert pool_header.split() == ["NAME", "PHASE", "WORKERS", "READY", "ALLOCATED", "CONNECTIONS", "AGE"]
    pool_row = next(line for line in lines if line.startswith("buildkitpool"))
    assert pool_row.split()[1:6] == ["Running", "2", "2", "0", "0"]
    worker_rows = [line.split() for line in lines if line.startswith("buildkitworker")]
    assert len(worker_rows) == 2
    assert all(row[1] == "my-buildkit-pool" and row[2] == "Idle" for row in worker_rows)
    assert all(row[3] == row[0].split("/")[1] for row in worker_rows)  # the Pod column names the pod


async def _pool_ready(kube: Kube, ready: int) -> bool:
    status = (await kube.get(API_VERSION, "BuildKitPool", "my-buildkit-pool", "default") or {}).get("status") or {}
    return status.get("phase") == "Running" and (status.get("workers") or {}).get("ready") == ready


async def test_idle_workers_answer_only_worker_ca_clients_over_mtls(operator: Kube) -> None:
    """Real grpcio against the stand-in buildkitd pods (kubesim runs them): the gateway's worker-CA
    client certificate gets ListWorkers; a tenant-CA certificate cannot even finish the handshake."""
    await operator.create(pool_body({"scaling": {"min": 2, "max": 4}}))
    await eventually(lambda: _pool_ready(operator, 2), timeout=40)
    pool = await operator.get(API_VERSION, "BuildKitPool", "my-buildkit-pool", "default") or {}
    conditions = {c["type"]: c["status"] for c in pool["status"]["conditions"]}
    assert conditions == {"Ready": "True", "GatewayReady": "True", "CertificatesReady": "True",
                          "PluginsReady": "True"}
    client = secret_text(await operator.get("v1", "Secret", "my-buildkit-pool-gateway-worker-client", "default"))
    tenant = secret_text(await operator.get("v1", "Secret", "my-buildkit-pool-tenant-ca", "default"))
    workers = await operator.list(API_VERSION, "BuildKitWorker", "default")
    endpoints = [w["status"]["endpoint"].removeprefix("tcp://") for w in workers]
    assert len(endpoints) == 2
    for endpoint in endpoints:
        answer = await list_workers(endpoint, client["ca.crt"], client["tls.crt"], client["tls.key"])
        assert answer.record, "buildkitd answered with its workers"
    ca = pki.load_ca(tenant["ca.crt"], tenant["ca.key"])
    identity = pki.AllocationIdentity(allocation_id="a" * 32, pool="my-buildkit-pool", namespace="default")
    intruder = pki.issue_allocation_certificate(ca, identity, lifetime=pki.BACKDATE * 60)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await list_workers(endpoints[0], client["ca.crt"], intruder.certificate_pem.decode(),
                           (intruder.private_key_pem or b"").decode())
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


async def list_workers(endpoint: str, ca: str, cert: str, key: str) -> Any:
    credentials = grpc.ssl_channel_credentials(ca.encode(), key.encode(), cert.encode())
    options = [("grpc.ssl_target_name_override", "buildkit-worker.my-buildkit-pool.default")]
    async with grpc.aio.secure_channel(endpoint, credentials, options=options) as channel:
        stub = control_pb2_grpc.ControlStub(channel)
        return await stub.ListWorkers(control_pb2.ListWorkersRequest(), timeout=10)


async def test_min_changes_scale_exactly_and_down_only_after_the_delay(operator: Kube) -> None:
    await operator.create(pool_body({"scaling": {"min": 2, "max": 6, "scaleDownDelay": "4s"}}))
    await eventually(lambda: _pool_ready(operator, 2), timeout=40)
    await operator.patch(API_VERSION, "BuildKitPool", "my-buildkit-pool", "default",
                         {"spec": {"scaling": {"min": 4}}})
    await eventually(lambda: _pool_ready(operator, 4), timeout=40)
    await asyncio.sleep(1.5)
    assert len(await operator.list(API_VERSION, "BuildKitWorker", "default")) == 4  # exactly the difference
    await operator.patch(API_VERSION, "BuildKitPool", "my-buildkit-pool", "default",
                         {"spec": {"scaling": {"min": 0}}})
    lowered = asyncio.get_running_loop().time()
    await asyncio.sleep(1.5)
    assert len(await operator.list(API_VERSION, "BuildKitWorker", "default")) == 4  # the delay holds them

    async def scaled_to_zero() -> bool:
        pool = await operator.get(API_VERSION, "BuildKitPool", "my-buildkit-pool", "default") or {}
        workers = await operator.list(API_VERSION, "BuildKitWorker", "default")
        return not workers and (pool.get("status") or {}).get("phase") == "ScaledToZero"

    await eventually(scaled_to_zero, timeout=40)
    assert asyncio.get_running_loop().time() - lowered >= 2.5  # not before ~4s of idleness


async def test_a_worker_of_a_requested_size_runs_with_that_profile(operator: Kube) -> None:
    """What the API creates for ``size: lg`` on a pool that allows up to lg: a pod sized lg whose
    buildkitd.toml (lg's max-parallelism) comes from the pool's ConfigMap."""
    body = pool_body({"scaling": {"min": 0, "max": 2}, "maxSize": "lg"})
    del body["spec"]["resources"]  # the example's explicit resources would be the pool's own size
    await operator.create(body)
    await operator.create({"apiVersion": API_VERSION, "kind": "BuildKitWorker",
                           "metadata": {"name": "sized", "namespace": "default",
                                        "labels": {POOL_LABEL: "my-buildkit-pool"}},
                           "spec": {"poolRef": {"name": "my-buildkit-pool"}, "size": "lg"}})

    async def sized_pod() -> list[dict[str, Any]]:
        return [p for p in await worker_pods(operator) if p["metadata"]["name"] == "sized"]

    (pod,) = await eventually(sized_pod)
    assert pod["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "8", "memory": "8Gi"}
    [config] = [v["configMap"] for v in pod["spec"]["volumes"] if v["name"] == "config"]

    async def config_map() -> dict[str, Any]:
        return await operator.get("v1", "ConfigMap", config["name"], "default") or {}

    data = (await eventually(config_map))["data"]
    assert "max-parallelism = 8" in data[config["items"][0]["key"]]
    assert "max-parallelism = 4" in data["buildkitd.toml"]  # the pool's own size, md


async def test_idle_workers_carry_the_idle_label_and_allocated_ones_do_not(operator: Kube) -> None:
    await operator.create(pool_body({"scaling": {"min": 1, "max": 2}}))

    async def labelled_idle() -> list[dict[str, Any]]:
        return [w for w in await operator.list(API_VERSION, "BuildKitWorker", "default",
                                               {POOL_LABEL: "my-buildkit-pool", IDLE_LABEL: "true"})
                if (w.get("status") or {}).get("phase") == "Idle"]

    (worker,) = await eventually(labelled_idle, timeout=30)
    name = worker["metadata"]["name"]
    # Allocated by someone who left the label (say kubectl): the operator takes the hint away.
    await operator.patch(API_VERSION, "BuildKitWorker", name, "default", {"spec": {"allocation": {
        "id": "x" * 32, "tokenHash": "sha256:00", "subject": "someone", "jobId": "j",
        "allocatedAt": "2026-01-01T00:00:00Z", "expiresAt": "2099-01-01T00:00:00Z"}}})

    async def unlabelled() -> bool:
        body = await operator.get(API_VERSION, "BuildKitWorker", name, "default") or {}
        return IDLE_LABEL not in (body.get("metadata") or {}).get("labels", {})

    await eventually(unlabelled)
