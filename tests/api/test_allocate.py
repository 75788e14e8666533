"""Allocation, release, renew and status through the HTTP API (Quart test client, kubesim)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from buildkit_controller.controller.api.allocations import AllocationSettings, Allocator
from buildkit_controller.controller.manifests.names import API_VERSION, IDLE_LABEL
from buildkit_controller.core import pki
from buildkit_controller.core.allocation import new_allocation
from buildkit_controller.core.models import AllocationRequest, Identity

from .conftest import Cluster


async def allocate(client: Any, headers: dict[str, str], **body: Any) -> Any:
    return await client.post("/api/v1/workers/allocate", json={"poolName": "builds", **body}, headers=headers)


def pem(answer: dict[str, Any], key: str) -> bytes:
    return base64.b64decode(answer[key])


async def test_allocate_as_the_seed_readme_does(cluster: Cluster, client: Any) -> None:
    pool = await cluster.pool()
    (worker,) = await cluster.idle_workers(pool, 1)
    response = await allocate(client, cluster.token("ci-bot"), ttl="1h")
    assert response.status_code == 200, await response.get_data()
    answer = await response.get_json()
    assert answer["workerName"] == worker
    assert answer["endpoint"] == answer["gatewayEndpoint"] == "tcp://builds.default.svc:1235"
    certificate = x509.load_pem_x509_certificate(pem(answer, "clientCert"))
    key = pem(answer, "clientKey")
    assert b"PRIVATE KEY" in key
    bundle = pki.certificates_from_pem(pem(answer, "caCert"))
    pki.verify_certificate(certificate, bundle, purpose=pki.Purpose.CLIENT)  # chains to the tenant CA
    assert pki.allocation_id_from_certificate(certificate) == answer["allocationId"]
    (stored,) = await cluster.workers()
    allocation = stored["spec"]["allocation"]
    assert allocation["certSerial"] == pki.serial_decimal(certificate)
    assert answer["token"] not in str(stored)  # only the hash is kept


async def test_a_csr_is_signed_and_no_key_is_returned(cluster: Cluster, client: Any) -> None:
    pool = await cluster.pool()
    await cluster.idle_workers(pool, 1)
    private = ec.generate_private_key(ec.SECP256R1())  # stays with the client
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "anything")]))
           .sign(private, hashes.SHA256()))
    response = await allocate(client, cluster.token("ci-bot"), csr=csr.public_bytes(Encoding.PEM).decode())
    assert response.status_code == 200, await response.get_data()
    answer = await response.get_json()
    assert "clientKey" not in answer
    certificate = x509.load_pem_x509_certificate(pem(answer, "clientCert"))
    assert certificate.public_key() == private.public_key()


async def test_two_hundred_concurrent_requests_never_share_or_exceed_max(cluster: Cluster, client: Any) -> None:
    pool = await cluster.pool(scaling={"min": 0, "max": 20})
    await cluster.idle_workers(pool, 20)
    headers = cluster.token("ci-bot")
    responses = await asyncio.gather(*(allocate(client, headers) for _ in range(200)))
    ok = [await r.get_json() for r in responses if r.status_code == 200]
    busy = [r for r in responses if r.status_code == 503]
    assert len(ok) == 20 and len(busy) == 180
    assert len({a["workerName"] for a in ok}) == 20  # never one worker for two allocations
    assert all(r.headers.get("Retry-After") for r in busy)
    assert len(await cluster.workers()) == 20  # nothing created beyond max


async def test_release_deletes_the_worker_and_a_second_release_is_404(cluster: Cluster, client: Any) -> None:
    pool = await cluster.pool()
    await cluster.idle_workers(pool, 1)
    headers = cluster.token("ci-bot")
    answer = await (await allocate(client, headers)).get_json()
    status = await client.get(f"/api/v1/workers/{answer['allocationId']}", headers=headers)
    assert (await status.get_json())["workerName"] == answer["workerName"]
    released = await client.post("/api/v1/workers/release", json={"token": answer["token"]}, headers=headers)
    assert released.status_code == 200
    assert await cluster.workers() == []
    again = await client.post("/api/v1/workers/release", json={"token": answer["token"]}, headers=headers)
    assert again.status_code == 404 and (await again.get_json())["error"] == "not_found"


async def test_renew_extends_within_max_token_ttl(cluster: Cluster, client: Any) -> None:
    pool = await cluster.pool(gateway={"tokenTTL": "1h", "maxTokenTTL": "2h"})
    await cluster.idle_workers(pool, 1)
    headers = cluster.token("ci-bot")
    answer = await (await allocate(client, headers, ttl="30m")).get_json()
    renewed = await client.post("/api/v1/workers/renew", json={"token": answer["token"], "ttl": "5h"},
                                headers=headers)
    assert renewed.status_code == 200, await renewed.get_data()
    assert (await renewed.get_json())["expiresAt"] > answer["expiresAt"]


async def test_someone_else_cannot_see_or_release_by_id(cluster: Cluster, client: Any) -> None:
    pool = await cluster.pool()
    await cluster.idle_workers(pool, 1)
    answer = await (await allocate(client, cluster.token("alice"))).get_json()
    mallory = cluster.token("mallory")
    assert (await client.get(f"/api/v1/workers/{answer['allocationId']}", headers=mallory)).status_code == 404
    by_id = await client.post("/api/v1/workers/release", json={"allocationId": answer["allocationId"]},
                              headers=mallory)
    assert by_id.status_code == 404
    assert len(await cluster.workers()) == 1


async def test_a_request_cancelled_mid_wait_leaves_no_worker_behind(cluster: Cluster) -> None:
    """hypercorn cancels the handler when the client disconnects; this is that cancellation."""
    pool = await cluster.pool(scaling={"max": 2})  # no idle worker: the request creates one and waits
    allocator = Allocator(cluster.kube, AllocationSettings(ready_timeout=60, poll_interval=0.05))
    made = new_allocation(identity=Identity(subject="ci", method="token"), gateway=pool.spec.gateway,
                          now=datetime.now(UTC), ttl=None, job_id=None, metadata={})
    task = asyncio.create_task(allocator.allocate(pool, made, AllocationRequest(pool_name="builds")))
    for _ in range(100):
        if await cluster.workers():
            break
        await asyncio.sleep(0.05)
    assert len(await cluster.workers()) == 1
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert await cluster.workers() == []



async def test_idle_labels_are_a_hint_never_the_truth(cluster: Cluster, client: Any) -> None:
    """Workers labelled idle come first (one small page, whatever the pool's size); a label that
    lags behind the status neither hides an idle worker nor hands out an allocated one."""
    pool = await cluster.pool(scaling={"max": 1})
    [unlabelled] = await cluster.idle_workers(pool, 1, labelled=False)
    headers = cluster.token("ci-bot")
    first = await (await allocate(client, headers)).get_json()
    assert first["workerName"] == unlabelled  # found by the full list
    await cluster.kube.patch(API_VERSION, "BuildKitWorker", unlabelled, "default",
                             {"metadata": {"labels": {IDLE_LABEL: "true"}}})  # a stale label
    second = await allocate(client, headers)
    assert second.status_code == 503  # not handed out twice: the status says it is allocated
    assert len(await cluster.workers()) == 1


async def test_a_claim_removes_the_idle_label(cluster: Cluster, client: Any) -> None:
    pool = await cluster.pool(scaling={"max": 2})
    await cluster.idle_workers(pool, 2)
    answer = await (await allocate(client, cluster.token("ci-bot"))).get_json()
    labels = {w["metadata"]["name"]: w["metadata"]["labels"] for w in await cluster.workers()}
    assert IDLE_LABEL not in labels[answer["workerName"]]
    still_idle = sorted(set(labels) - {answer["workerName"]})
    assert [n for n, lab in labels.items() if lab.get(IDLE_LABEL) == "true"] == still_idle
