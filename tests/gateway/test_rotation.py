"""Certificate rotation and session reuse: live connections survive, new ones use what is mounted now."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from cryptography import x509

from buildkit_controller.core import pki
from buildkit_controller.gateway.server import Gateway

from .conftest import HOUR, POOL, EchoWorker, PoolPKI, Workers, blocking_client, open_client, wait_for


def served_serial(writer: asyncio.StreamWriter) -> int:
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).serial_number


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> bytes:
    writer.write(data)
    return await asyncio.wait_for(reader.readexactly(len(data)), 5)


async def test_rotation_keeps_live_streams_and_new_connections_use_new_certificates(
        gateway: Gateway, pool_pki: PoolPKI, workers: Workers, echo_worker: EchoWorker) -> None:
    old_cert = pool_pki.allocation_cert("n" * 32)
    await workers.create("w1", endpoint=echo_worker.endpoint, cert=old_cert, allocation_id="n" * 32)
    await wait_for(lambda: gateway.cache._by_allocation.get("n" * 32))
    live = await open_client(gateway, pool_pki.client_context(old_cert))
    assert await echo(*live, b"before") == b"before"
    old_server_serial = served_serial(live[1])

    # CA rotation as the operator does it: a new tenant CA, both CAs in the bundle during overlap.
    since = dt.datetime.now(dt.UTC) - HOUR
    old_tenant, pool_pki.tenant = pool_pki.tenant, pki.create_ca("tenant-2", lifetime=HOUR * 4, now=since)
    bundle = old_tenant.certificate_pem + pool_pki.tenant.certificate_pem
    pool_pki.client_trust = bundle
    server_serial, worker_client_serial = pool_pki.write_gateway_files(tenant_bundle=bundle)
    await wait_for(lambda: gateway.metrics.registry.get_sample_value(
        "buildkit_gateway_certificate_reloads_total", {"pool": POOL, "result": "success"}) == 1)

    assert await echo(*live, b"after") == b"after", "the live stream survived the reload"
    new_cert = pool_pki.allocation_cert("p" * 32)
    await workers.create("w2", endpoint=echo_worker.endpoint, cert=new_cert, allocation_id="p" * 32)
    await wait_for(lambda: gateway.cache._by_allocation.get("p" * 32))
    for cert in (old_cert, new_cert):  # certificates of both CAs work during the overlap
        fresh = await open_client(gateway, pool_pki.client_context(cert))
        assert served_serial(fresh[1]) == server_serial != old_server_serial
        assert await echo(*fresh, b"new") == b"new"
        fresh[1].close()
    assert int(echo_worker.peers[-1]["serialNumber"], 16) == worker_client_serial  # ssl pads the hex
    live[1].close()


async def test_a_broken_rotation_keeps_the_current_certificates(
        gateway: Gateway, pool_pki: PoolPKI, workers: Workers, echo_worker: EchoWorker) -> None:
    cert = pool_pki.allocation_cert("q" * 32)
    await workers.create("w1", endpoint=echo_worker.endpoint, cert=cert, allocation_id="q" * 32)
    await wait_for(lambda: gateway.cache._by_allocation.get("q" * 32))
    (pool_pki.tls_dir / "..data" / "tls.key").write_bytes(b"not a key")  # e.g. a half-written file

    await wait_for(lambda: gateway.metrics.registry.get_sample_value(
        "buildkit_gateway_certificate_reloads_total", {"pool": POOL, "result": "error"}))
    reader, writer = await open_client(gateway, pool_pki.client_context(cert))
    assert await echo(reader, writer, b"ok") == b"ok"
    writer.close()


@pytest.fixture(params=[True, False], ids=["openssl-extras", "stdlib-only"])
def openssl_extras(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Without: what a Python whose ssl objects the gateway does not recognise gets."""
    from buildkit_controller.gateway import tls

    if not request.param:
        monkeypatch.setattr(tls, "_native", [None])
    return bool(request.param)


async def test_worker_sessions_are_resumed(gateway: Gateway, pool_pki: PoolPKI, workers: Workers,
                                           echo_worker: EchoWorker, openssl_extras: bool) -> None:
    cert = pool_pki.allocation_cert("r" * 32)
    await workers.create("w1", endpoint=echo_worker.endpoint, cert=cert, allocation_id="r" * 32)
    await wait_for(lambda: gateway.cache._by_allocation.get("r" * 32))
    for _ in range(3):
        reader, writer = await open_client(gateway, pool_pki.client_context(cert))
        assert await echo(reader, writer, b"hi") == b"hi"
        writer.close()
        await asyncio.sleep(0.1)
    assert echo_worker.resumed == [False, True, True]
    assert gateway.metrics.resumed._value.get() == 2
    # On CPython the kept session is offered without the stdlib's DER copy (about 0.2 ms each);
    # without the extras, through the stdlib's ``session=``.
    (context,) = gateway.tls._upstream.values()
    assert (context._native is not None and bool(context._last_pointer)) is openssl_extras


async def test_clients_that_close_without_close_notify_keep_worker_sessions_resumable(
        gateway: Gateway, pool_pki: PoolPKI, workers: Workers, echo_worker: EchoWorker) -> None:
    # Python's SSLSocket.close() sends no close_notify. The worker side must still end with one:
    # OpenSSL marks the session of a connection freed without it as not resumable.
    cert = pool_pki.allocation_cert("t" * 32)
    await workers.create("w1", endpoint=echo_worker.endpoint, cert=cert, allocation_id="t" * 32)
    await wait_for(lambda: gateway.cache._by_allocation.get("t" * 32))

    def ping() -> bytes:
        with blocking_client(gateway, pool_pki.client_context(cert)) as tls:
            tls.sendall(b"hi")
            return tls.recv(2)  # then close() without close_notify

    for _ in range(3):
        assert await asyncio.to_thread(ping) == b"hi"
        await asyncio.sleep(0.1)
    assert echo_worker.resumed == [False, True, True]


def test_contexts_send_the_certificate_file_as_it_is(pool_pki: PoolPKI) -> None:
    # Like nginx: no chain built from the trust store at every handshake, no CA certificate sent.
    from buildkit_controller.gateway import tls

    native = tls._openssl()
    assert native is not None
    for context in (tls.server_context(tls.CertificateFiles(pool_pki.tls_dir)),
                    tls.client_context(tls.CertificateFiles(pool_pki.worker_client_dir), "w", None)):
        mode = native._ctx_ctrl(native.ctx(context), tls._SSL_CTRL_MODE, 0, None)
        assert mode & tls._SSL_MODE_NO_AUTO_CHAIN


async def test_unreachable_worker_is_a_clear_error(gateway: Gateway, pool_pki: PoolPKI,
                                                   workers: Workers) -> None:
    cert = pool_pki.allocation_cert("s" * 32)
    await workers.create("w1", endpoint="tcp://127.0.0.1:9", cert=cert, allocation_id="s" * 32)
    await wait_for(lambda: gateway.cache._by_allocation.get("s" * 32))
    reader, writer = await open_client(gateway, pool_pki.client_context(cert))
    writer.write(b"x")
    assert await asyncio.wait_for(reader.read(1), 6) == b""
    assert gateway.metrics.registry.get_sample_value(
        "buildkit_gateway_connections_total", {"pool": POOL, "status": "error"}) == 1
