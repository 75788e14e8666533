"""Fixtures for the gateway: a pool's PKI on disk, kubesim with workers, an mTLS "worker", a gateway.

The worker stand-in is a small asyncio mTLS echo server that, like buildkitd, trusts only the worker
CA and serves the pool's worker DNS name. Allocations are BuildKitWorker objects written by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import uvloop
from kubernetes_asyncio import client

from buildkit_controller.controller.crds import render_crds
from buildkit_controller.core import pki
from buildkit_controller.core.tokens import new_allocation_id
from buildkit_controller.gateway.config import GatewayConfig, KubeAccess
from buildkit_controller.gateway.kube import GROUP, PLURAL, POOL_LABEL, VERSION
from buildkit_controller.gateway.server import Gateway
from kubesim import KubeSim
from kubesim.testing import kubesim  # noqa: F401 - re-exported pytest fixture

POOL, NAMESPACE = "pool-a", "default"


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    """uvloop, as in production: its SSL protocol and transports are the ones that matter."""
    return {"uvloop": uvloop.new_event_loop}
WORKER_NAME = f"buildkit-worker.{POOL}.{NAMESPACE}"
HOUR = dt.timedelta(hours=1)


def write_files(folder: Path, cert: bytes, key: bytes, ca: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in (("tls.crt", cert), ("tls.key", key), ("ca.crt", ca)):
        (folder / name).write_bytes(data)
    return folder


def kubelet_write(folder: Path, cert: bytes, key: bytes, ca: bytes) -> Path:
    """Write files the way a kubelet updates a Secret volume: a new hidden folder, then an atomic
    rename of the ``..data`` symlink; the visible names are symlinks through ``..data``."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = folder / f"..{len(list(folder.glob('..2*')))}_{dt.datetime.now(dt.UTC):%Y_%m_%d_%H_%M_%S.%f}"
    write_files(stamp, cert, key, ca)
    (folder / "..data_tmp").symlink_to(stamp.name)
    (folder / "..data_tmp").rename(folder / "..data")
    for name in ("tls.crt", "tls.key", "ca.crt"):
        if not (folder / name).is_symlink():
            (folder / name).symlink_to(f"..data/{name}")
    return folder


@dataclass
class PoolPKI:
    """A pool's two CAs, another pool's tenant CA, and the gateway's folders."""

    root: Path
    tenant: pki.CertificateAuthority = field(init=False)
    worker: pki.CertificateAuthority = field(init=False)
    other_tenant: pki.CertificateAuthority = field(init=False)

    def __post_init__(self) -> None:
        # Backdated a day, so tests can issue certificates that expired hours ago.
        since = dt.datetime.now(dt.UTC) - HOUR * 24
        self.tenant = pki.create_ca("tenant", lifetime=HOUR * 48, now=since)
        self.worker = pki.create_ca("worker", lifetime=HOUR * 48, now=since)
        self.other_tenant = pki.create_ca("other-tenant", lifetime=HOUR * 48, now=since)
        self.client_trust = self.tenant.certificate_pem  # what clients trust for the gateway
        self.write_gateway_files()

    @property
    def tls_dir(self) -> Path:
        return self.root / "tls"

    @property
    def worker_client_dir(self) -> Path:
        return self.root / "worker-client"

    def write_gateway_files(self, tenant_bundle: bytes | None = None) -> tuple[int, int]:
        """(Re)write both gateway folders with fresh certificates; returns their serials."""
        server = pki.issue_server_certificate(self.tenant, dns_names=["localhost"], ip_addresses=["127.0.0.1"],
                                              lifetime=HOUR)
        kubelet_write(self.tls_dir, server.certificate_pem, server.private_key_pem or b"",
                      tenant_bundle or self.tenant.certificate_pem)
        gw = pki.issue_client_certificate(self.worker, common_name="gateway", uris=["buildkit://gateway"],
                                          lifetime=HOUR)
        kubelet_write(self.worker_client_dir, gw.certificate_pem, gw.private_key_pem or b"",
                      self.worker.certificate_pem)
        return server.certificate.serial_number, gw.certificate.serial_number

    def allocation_cert(self, allocation_id: str, *, ca: pki.CertificateAuthority | None = None,
                        lifetime: dt.timedelta = HOUR, now: dt.datetime | None = None) -> pki.IssuedCertificate:
        identity = pki.AllocationIdentity(allocation_id=allocation_id, pool=POOL, namespace=NAMESPACE)
        return pki.issue_allocation_certificate(ca or self.tenant, identity, lifetime=lifetime, now=now)

    def client_context(self, cert: pki.IssuedCertificate | None, alpn: list[str] | None = None) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cadata=self.client_trust.decode())
        if cert is not None:
            folder = self.root / f"client-{cert.certificate.serial_number}"
            write_files(folder, cert.certificate_pem, cert.private_key_pem or b"", b"")
            ctx.load_cert_chain(folder / "tls.crt", folder / "tls.key")
        if alpn:
            ctx.set_alpn_protocols(alpn)
        return ctx


@pytest.fixture
def pool_pki(tmp_path: Path) -> PoolPKI:
    return PoolPKI(tmp_path / "pki")


class EchoWorker:
    """buildkitd stand-in: mTLS (worker CA only), serves the pool's worker name, echoes bytes."""

    def __init__(self, pool_pki: PoolPKI, tmp: Path, name: str = WORKER_NAME) -> None:
        cert = pki.issue_server_certificate(pool_pki.worker, dns_names=[name], lifetime=HOUR)
        folder = write_files(tmp / "worker-server", cert.certificate_pem, cert.private_key_pem or b"",
                             pool_pki.worker.certificate_pem)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.ctx.load_cert_chain(folder / "tls.crt", folder / "tls.key")
        self.ctx.load_verify_locations(folder / "ca.crt")
        self.ctx.set_alpn_protocols(["h2", "http/1.1"])
        self.connections = 0
        self.alpn: list[str | None] = []
        self.peers: list[dict[str, Any]] = []
        self.resumed: list[bool] = []
        self.greeting = b""  # sent first, before reading (server-speaks-first protocols)
        self.hang_up: bool | str = False  # close right after the greeting ("abort": reset, no close_notify)
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ctx)

    @property
    def endpoint(self) -> str:
        assert self.server is not None
        return f"tcp://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        ssl_object = writer.get_extra_info("ssl_object")
        self.alpn.append(ssl_object.selected_alpn_protocol())
        self.peers.append(ssl_object.getpeercert())
        self.resumed.append(ssl_object.session_reused)
        writer.write(self.greeting)
        if self.hang_up == "abort":
            await writer.drain()
            writer.transport.abort()
            return
        try:
            while not self.hang_up and (data := await reader.read(65536)):
                writer.write(data)
                await writer.drain()
        except (OSError, ssl.SSLError):
            pass
        finally:
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.drain()
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest_asyncio.fixture
async def echo_worker(pool_pki: PoolPKI, tmp_path: Path) -> AsyncIterator[EchoWorker]:
    worker = EchoWorker(pool_pki, tmp_path)
    await worker.start()
    yield worker
    await worker.stop()


class Workers:
    """Creates and changes BuildKitWorker objects in kubesim."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.objects = client.CustomObjectsApi(api)

    async def create(self, name: str, *, endpoint: str, cert: pki.IssuedCertificate | None = None,
                     allocation_id: str | None = None, expires_in: dt.timedelta = HOUR,
                     phase: str = "Allocated", ready: bool = True, pool: str = POOL) -> str:
        """An allocated, ready worker whose allocation matches ``cert``; returns the allocation id."""
        allocation_id = allocation_id or new_allocation_id()
        now = dt.datetime.now(dt.UTC)
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "BuildKitWorker",
                "metadata": {"name": name, "namespace": NAMESPACE, "labels": {POOL_LABEL: pool}},
                "spec": {"poolRef": {"name": pool}}}
        await self.objects.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, body)
        conditions = [{"type": "Ready", "status": "True" if ready else "False", "reason": "PodReady",
                       "message": "", "lastTransitionTime": _ts(now)}]
        await self.patch_status(name, {"phase": phase, "endpoint": endpoint, "conditions": conditions})
        # The allocation comes last: watch events are ordered, so once a gateway's cache knows the
        # allocation it also knows the status (waiting for the allocation is then enough).
        await self.patch_spec(name, {"allocation": {
            "id": allocation_id, "tokenHash": "sha256:" + "0" * 64, "subject": "test", "jobId": "job",
            "allocatedAt": _ts(now), "expiresAt": _ts(now + expires_in),
            "certSerial": pki.serial_decimal(cert.certificate) if cert else "1"}})
        return allocation_id

    async def patch_status(self, name: str, status: dict[str, Any]) -> None:
        await self.objects.patch_namespaced_custom_object_status(
            GROUP, VERSION, NAMESPACE, PLURAL, name, {"status": status},
            _content_type="application/merge-patch+json")

    async def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        await self.objects.patch_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, PLURAL, name, {"spec": spec},
            _content_type="application/merge-patch+json")

    async def delete(self, name: str) -> None:
        await self.objects.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name)

    async def get(self, name: str) -> dict[str, Any]:
        return await self.objects.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, name)


def _ts(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest_asyncio.fixture
async def workers(kubesim: KubeSim) -> AsyncIterator[Workers]:  # noqa: F811 - the fixture above
    async with client.ApiClient(client.Configuration(host=kubesim.url)) as api:
        extensions = client.ApiextensionsV1Api(api)
        for crd in render_crds():
            await extensions.create_custom_resource_definition(crd)
        yield Workers(api)


def gateway_config(pool_pki: PoolPKI, sim: KubeSim, **overrides: Any) -> GatewayConfig:
    settings: dict[str, Any] = {
        "pool": POOL, "namespace": NAMESPACE, "tls_dir": pool_pki.tls_dir,
        "worker_client_dir": pool_pki.worker_client_dir, "listen": ("127.0.0.1", 0),
        "metrics_listen": ("127.0.0.1", 0), "kube": KubeAccess(server=sim.url),
        "drain_timeout": 2.0, "reload_interval": 0.1, "activity_interval": 0.3,
        "activity_refresh": 1.0, **overrides}
    return GatewayConfig(**settings)


async def wait_for(predicate: Any, timeout: float = 5.0, interval: float = 0.02) -> None:
    """Poll ``predicate`` (sync or async) until true; fail the test after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


@pytest_asyncio.fixture
async def gateway(pool_pki: PoolPKI, kubesim: KubeSim, workers: Workers) -> AsyncIterator[Gateway]:  # noqa: F811
    gw = Gateway(gateway_config(pool_pki, kubesim))
    await gw.start()
    await wait_for(lambda: gw.cache.synced)
    yield gw
    await gw.stop()


async def open_client(gw: Gateway, ctx: ssl.SSLContext) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = gw.address
    return await asyncio.open_connection(host, port, ssl=ctx, server_hostname="localhost")


def blocking_client(gw: Gateway, ctx: ssl.SSLContext, **options: Any) -> ssl.SSLSocket:
    """A plain blocking TLS client (for threads): unlike asyncio's, it shows how a stream ended
    (``suppress_ragged_eofs=False``) and closes without close_notify."""
    raw = socket.create_connection(gw.address, timeout=10)
    return ctx.wrap_socket(raw, server_hostname="localhost", **options)


async def echo_roundtrip(gw: Gateway, ctx: ssl.SSLContext, payload: bytes = b"ping") -> bytes:
    """Connect, send ``payload``, return what comes back before EOF or the payload's length."""
    reader, writer = await open_client(gw, ctx)
    try:
        writer.write(payload)
        return await asyncio.wait_for(reader.read(len(payload)), 5)
    finally:
        writer.close()
