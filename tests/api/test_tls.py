"""Real TLS: the app served by hypercorn on 127.0.0.1 with the API's server context, real
certificates, and httpx clients presenting (or not) client certificates."""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypercorn.asyncio import serve
from kubernetes_asyncio.client.exceptions import ApiException

from buildkit_controller.controller.api import tls
from buildkit_controller.controller.api.allocations import AllocationSettings, Allocator
from buildkit_controller.controller.api.app import ApiContext, create_app
from buildkit_controller.controller.api.identity import (
    IDENTITY_CA_SECRET,
    IdentityAuthority,
    keep_trust_current,
    trust_once,
)
from buildkit_controller.controller.manifests.secrets import secret_text
from buildkit_controller.core import pki
from buildkit_controller.core._loader import load_plugins
from buildkit_controller.core.identity import issue_identity_certificate, plan_identity_ca
from buildkit_controller.core.models import Runtime
from buildkit_controller.core.settings import PluginSettings
from buildkit_controller.gateway.cache import Refused
from buildkit_controller.gateway.proxy import _identity as gateway_identity
from buildkit_controller.gateway.tls import CertificateFiles, server_context

from .conftest import Cluster
from .test_certs import KubeCalls, publish_worker_ca


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Served:
    url: str
    server_ca: Path
    folder: Path

    def client(self, cert: bytes | None = None, key: bytes | None = None) -> httpx.AsyncClient:
        """An httpx client trusting the API's server CA, presenting ``cert`` when given."""
        context = ssl.create_default_context(cafile=str(self.server_ca))
        if cert is not None and key is not None:
            name = base64.b32encode(cert[-40:-20]).decode().lower()
            (self.folder / f"{name}.crt").write_bytes(cert)
            (self.folder / f"{name}.key").write_bytes(key)
            context.load_cert_chain(self.folder / f"{name}.crt", self.folder / f"{name}.key")
        return httpx.AsyncClient(base_url=self.url, verify=context, timeout=10)


def write_server_files(folder: Path) -> tuple[Path, Path, Path]:
    ca = pki.create_ca("test API CA", lifetime=timedelta(days=1))
    leaf = pki.issue_server_certificate(ca, ip_addresses=["127.0.0.1"], lifetime=timedelta(days=1))
    paths = folder / "server-ca.crt", folder / "server.crt", folder / "server.key"
    for path, data in zip(paths, (ca.certificate_pem, leaf.certificate_pem, leaf.private_key_pem or b""),
                          strict=True):
        path.write_bytes(data)
    return paths


@pytest_asyncio.fixture
async def served(cluster: Cluster, tmp_path: Path) -> AsyncIterator[Served]:
    pool = await cluster.pool()
    await publish_worker_ca(cluster, pool)
    await publish_worker_ca(cluster, await cluster.pool("other"))
    await cluster.idle_workers(pool, 1)
    server_ca, certfile, keyfile = write_server_files(tmp_path)
    tls.install()
    trust = tls.ClientTrust(tls.server_context(str(certfile), str(keyfile), None))
    authority = IdentityAuthority(cluster.kube, "buildkit-system")
    host = load_plugins(PluginSettings())
    host.configure(Runtime(process="api", environ={"BKC_AUTH_TOKEN_DIR": str(cluster.token_dir)},
                           kube=cluster.kube, identity_ca=authority.bundle))
    allocator = Allocator(cluster.kube, AllocationSettings(queue_timeout=1.0, ready_timeout=2.0, poll_interval=0.05))
    app = create_app(ApiContext(kube=cluster.kube, host=host, allocator=allocator, identity=authority, trust=trust))
    await seed_identity_ca(cluster)
    await trust_once(trust, authority, cluster.kube)  # what the serving loop does every 30 s
    port = free_port()
    config = tls.TLSConfig(trust.context)
    config.bind = [f"127.0.0.1:{port}"]
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    for _ in range(100):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            break
        except OSError:
            await asyncio.sleep(0.05)
    yield Served(url=f"https://127.0.0.1:{port}", server_ca=server_ca, folder=tmp_path)
    stop.set()
    await asyncio.wait_for(task, 10)


async def seed_identity_ca(cluster: Cluster) -> None:
    """An identity CA made a day ago, so that the tests can issue already-expired certificates."""
    data, _ = plan_identity_ca({}, datetime.now(UTC) - timedelta(days=1))
    await cluster.kube.create({"apiVersion": "v1", "kind": "Secret", "metadata": {
        "name": IDENTITY_CA_SECRET, "namespace": "buildkit-system"},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}})


async def outcome(call: Callable[[], Any]) -> int | str:
    """The status code, or ``"tls"`` when the TLS layer refused the connection."""
    try:
        response = await call()
    except (httpx.TransportError, ssl.SSLError):
        return "tls"
    return int(response.status_code)


async def identity_cert(served: Served, headers: dict[str, str], pools: list[str]) -> tuple[bytes, bytes]:
    async with served.client() as client:
        response = await client.post("/api/v1/certs/request", json={"pools": pools}, headers=headers)
    assert response.status_code == 200, response.text
    answer = response.json()
    return answer["clientCert"].encode(), answer["clientKey"].encode()


async def test_identity_certificate_issued_and_used_over_tls(cluster: Cluster, served: Served) -> None:
    cert, key = await identity_cert(served, cluster.token("ci-bot"), ["builds"])
    async with served.client(cert, key) as client:
        pools = await client.get("/api/v1/pools")
        assert pools.status_code == 200, pools.text
        assert [p["name"] for p in pools.json()["pools"]] == ["builds"]
        assert (await client.get("/api/v1/pools/default/other")).status_code == 403
        allocated = await client.post("/api/v1/workers/allocate", json={"poolName": "builds"})
        assert allocated.status_code == 200, allocated.text
        assert (await client.post("/api/v1/workers/allocate", json={"poolName": "other"})).status_code == 403
    async with served.client() as bearer_only:  # client certificates stay optional
        assert (await bearer_only.get("/api/v1/pools", headers=cluster.token("ci-bot"))).status_code == 200
        assert (await bearer_only.get("/api/v1/pools")).status_code == 401


async def test_wrong_ca_and_expired_certificates_are_refused(cluster: Cluster, served: Served) -> None:
    stranger = pki.create_ca("stranger", lifetime=timedelta(days=1))
    foreign = issue_identity_certificate(stranger, subject="ci-bot", pools=["default/builds"],
                                         lifetime=timedelta(hours=1))
    secret = secret_text(await cluster.kube.get("v1", "Secret", IDENTITY_CA_SECRET, "buildkit-system"))
    ca = pki.load_ca(secret["ca.crt"], secret["ca.key"])
    expired = issue_identity_certificate(ca, subject="ci-bot", pools=["default/builds"],
                                         lifetime=timedelta(hours=1), now=datetime.now(UTC) - timedelta(hours=3))
    for issued in (foreign, expired):
        async with served.client(issued.certificate_pem, issued.private_key_pem) as client:
            # OpenSSL refuses both in the handshake; one that reaches the app anyway (a certificate
            # that expires on a kept-alive connection) gets 401 there: test_certs.py.
            assert await outcome(lambda c=client: c.get("/api/v1/pools")) == "tls"


async def test_lookup_takes_the_gateway_certificate_only(cluster: Cluster, served: Served) -> None:
    headers = cluster.token("ci-bot")
    async with served.client() as client:
        allocated = (await client.post("/api/v1/workers/allocate", json={"poolName": "builds"},
                                       headers=headers)).json()
        body = {"token": allocated["token"]}
        assert (await client.post("/api/v1/workers/lookup", json=body, headers=headers)).status_code == 401
    gateway = secret_text(await cluster.kube.get("v1", "Secret", "builds-gateway-worker-client", "default"))
    async with served.client(gateway["tls.crt"].encode(), gateway["tls.key"].encode()) as client:
        found = await client.post("/api/v1/workers/lookup", json=body)
        assert found.status_code == 200, found.text
        assert found.json() == {"workerEndpoint": "tcp://127.0.9.1:1234", "workerName": allocated["workerName"],
                                "poolName": "builds"}
        assert (await client.post("/api/v1/workers/lookup", json={"token": "a" * 32 + ".x"})).status_code == 404
    cert, key = await identity_cert(served, headers, ["builds"])
    async with served.client(cert, key) as client:
        assert (await client.post("/api/v1/workers/lookup", json=body)).status_code == 403


async def test_identity_certificate_is_useless_at_the_gateway(cluster: Cluster, served: Served,
                                                              tmp_path: Path) -> None:
    cert, key = await identity_cert(served, cluster.token("ci-bot"), ["builds"])
    # The gateway's acceptance function: no buildkit://allocation/<id> SAN, no route.
    der = x509.load_pem_x509_certificate(cert).public_bytes(Encoding.DER)
    with pytest.raises(Refused) as refused:
        gateway_identity(der)
    assert refused.value.reason == "bad-identity"
    # And the gateway's TLS layer does not even accept it: it trusts only the pool's tenant CA.
    folder = tmp_path / "gateway"
    folder.mkdir()
    for name, value in secret_text(await cluster.kube.get("v1", "Secret", "builds-gateway-tls", "default")).items():
        (folder / name).write_text(value)
    handshake = await gateway_handshake(server_context(CertificateFiles(folder)), folder / "ca.crt", cert, key,
                                        tmp_path)
    assert handshake == "refused"
    # Control: the same handshake with an allocation certificate of that pool is accepted.
    async with served.client() as client:
        allocated = (await client.post("/api/v1/workers/allocate", json={"poolName": "builds"},
                                       headers=cluster.token("ci-bot"))).json()
    control = await gateway_handshake(server_context(CertificateFiles(folder)), folder / "ca.crt",
                                      base64.b64decode(allocated["clientCert"]),
                                      base64.b64decode(allocated["clientKey"]), tmp_path)
    assert control == "ok"


async def gateway_handshake(context: ssl.SSLContext, server_ca: Path, cert: bytes, key: bytes,
                            folder: Path) -> str:
    """Connect to a TLS server using the gateway's context; ``ok`` if it answers, else ``refused``."""
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"ok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    (folder / "id.crt").write_bytes(cert)
    (folder / "id.key").write_bytes(key)
    client = ssl.create_default_context(cafile=str(server_ca))
    client.check_hostname = False  # the gateway's names are cluster DNS names
    client.load_cert_chain(folder / "id.crt", folder / "id.key")
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
        data = await reader.read(2)
        writer.close()
        return "ok" if data == b"ok" else "refused"
    except (ssl.SSLError, ConnectionError):
        return "refused"
    finally:
        server.close()
        await server.wait_closed()


def test_plain_http_stays_the_default_and_tls_options_are_checked(tmp_path: Path) -> None:
    from buildkit_controller.controller.api.serve import ApiOptions, _config
    from buildkit_controller.core.errors import ConfigError

    config, trust = _config(ApiOptions(listen="127.0.0.1:8082"))
    assert trust is None and not config.ssl_enabled
    _, certfile, keyfile = write_server_files(tmp_path)
    config, trust = _config(ApiOptions(certfile=str(certfile), keyfile=str(keyfile)))
    assert trust is not None and trust.context.verify_mode == ssl.CERT_OPTIONAL
    assert config.create_ssl_context() is trust.context
    assert trust.context.cert_store_stats()["x509_ca"] == 0  # no system CA is trusted for clients
    for wrong in (ApiOptions(certfile=str(certfile)), ApiOptions(client_ca=str(certfile))):
        with pytest.raises(ConfigError):
            _config(wrong)


def trusted(trust: tls.ClientTrust) -> set[bytes]:
    return {bytes(der) for der in trust.context.get_ca_certs(binary_form=True)}


def ders(bundle: str) -> set[bytes]:
    return {c.public_bytes(Encoding.DER) for c in pki.certificates_from_pem(bundle)}


async def worker_ca(cluster: Cluster, pool: str, namespace: str = "default") -> str:
    return secret_text(await cluster.kube.get("v1", "Secret", f"{pool}-worker-ca", namespace))["bundle.crt"]


async def test_trust_comes_from_published_worker_cas_and_no_ca_secret_is_listed(
        cluster: Cluster, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    builds, other = await cluster.pool(), await cluster.pool("other", namespace="ci")
    await cluster.pool("unreconciled")  # no ConfigMap yet: nothing to trust, nothing to say
    bundles = {name: await worker_ca(cluster, name, ns) for name, ns in (("builds", "default"), ("other", "ci"))}
    await publish_worker_ca(cluster, builds, bundles["builds"])
    await publish_worker_ca(cluster, other, bundles["other"])
    await publish_worker_ca(cluster, await cluster.pool("broken"), "-----BEGIN CERTIFICATE-----\nnope\n"
                            "-----END CERTIFICATE-----\n")
    authority = IdentityAuthority(cluster.kube, "buildkit-system")
    trust = tls.ClientTrust(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    spy = KubeCalls(monkeypatch, cluster.kube)
    with caplog.at_level(logging.WARNING):
        assert await trust_once(trust, authority, cluster.kube) == 3  # the identity CA and two worker CAs
    assert trusted(trust) == ders(authority.bundle().decode()) | ders(bundles["builds"]) | ders(bundles["other"])
    assert ("list", "ConfigMap", None) in spy.calls
    assert {call[2] for call in spy.secrets()} == {IDENTITY_CA_SECRET}  # the API's own CA, by name only
    assert "default/broken-config" in caplog.text and "unreconciled" not in caplog.text


async def test_the_trust_refresher_survives_any_failure(cluster: Cluster, monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    pool = await cluster.pool()
    await publish_worker_ca(cluster, pool)
    leaky = ApiException(status=500, reason="Internal Server Error")
    leaky.body = "token=bkct_not-for-logs"
    failures: list[BaseException] = [RuntimeError("boom"), leaky, ValueError("odd")]
    listing, rounds = cluster.kube.list, []

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        rounds.append(1)
        if failures:
            raise failures.pop(0)
        return await listing(*args, **kwargs)

    monkeypatch.setattr(cluster.kube, "list", flaky)
    trust = tls.ClientTrust(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    with caplog.at_level(logging.WARNING):
        task = asyncio.create_task(keep_trust_current(trust, IdentityAuthority(cluster.kube, "buildkit-system"),
                                                      cluster.kube, every=0.01))
        for _ in range(300):
            if len(rounds) > 4 or task.done():
                break
            await asyncio.sleep(0.01)
        alive = not task.done()
        task.cancel()
    assert alive, "the refresher died"
    assert ders(await worker_ca(cluster, "builds")) <= trusted(trust)  # a later round got through
    assert "RuntimeError: boom" in caplog.text and "500 Internal Server Error" in caplog.text
    assert "ValueError: odd" in caplog.text and "bkct_" not in caplog.text
