"""Everything but a live allocation's own certificate is refused, and revocation reaches live streams."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import time

from buildkit_controller.core import pki
from buildkit_controller.gateway.server import Gateway
from kubesim import KubeSim

from .conftest import POOL, EchoWorker, PoolPKI, Workers, gateway_config, open_client, wait_for


def rejections(gw: Gateway, reason: str) -> float:
    value = gw.metrics.registry.get_sample_value(
        "buildkit_gateway_rejections_total", {"pool": POOL, "reason": reason})
    return value or 0.0


async def assert_refused(gw: Gateway, ctx: ssl.SSLContext) -> None:
    """The client gets no byte back: the handshake fails or the connection is closed at once."""
    try:
        reader, writer = await open_client(gw, ctx)
        writer.write(b"hello")
        data = await asyncio.wait_for(reader.read(5), 5)
    except (ssl.SSLError, ConnectionError):
        return
    writer.close()
    assert data == b"", "a refused client received bytes"


async def assert_closed_within(reader: asyncio.StreamReader, seconds: float) -> float:
    started = time.monotonic()
    try:
        data = await asyncio.wait_for(reader.read(1), seconds)
    except (ssl.SSLError, ConnectionError):
        data = b""
    assert data == b""
    return time.monotonic() - started


async def live_stream(gw: Gateway, ctx: ssl.SSLContext) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await open_client(gw, ctx)
    writer.write(b"up")
    assert await asyncio.wait_for(reader.readexactly(2), 5) == b"up"
    return reader, writer


async def test_handshake_refusals_are_counted_by_reason(gateway: Gateway, pool_pki: PoolPKI,
                                                        workers: Workers, echo_worker: EchoWorker) -> None:
    allocation_id = "d" * 32
    good = pool_pki.allocation_cert(allocation_id)
    await workers.create("w1", endpoint=echo_worker.endpoint, cert=good, allocation_id=allocation_id)
    await wait_for(lambda: gateway.cache._by_allocation.get(allocation_id))
    foreign = pool_pki.allocation_cert(allocation_id, ca=pool_pki.other_tenant)
    expired = pool_pki.allocation_cert(allocation_id, now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=3))
    early = pool_pki.allocation_cert(allocation_id, now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=2))
    # The gateway's own serving certificate (same tenant CA, serverAuth only) is no client certificate.
    server_cert = pki.IssuedCertificate(
        certificate=pki.certificate_from_pem((pool_pki.tls_dir / "tls.crt").read_bytes()),
        private_key=pki.private_key_from_pem((pool_pki.tls_dir / "tls.key").read_bytes()))

    await assert_refused(gateway, pool_pki.client_context(None))
    await assert_refused(gateway, pool_pki.client_context(foreign))
    await assert_refused(gateway, pool_pki.client_context(expired))
    await assert_refused(gateway, pool_pki.client_context(early))
    await assert_refused(gateway, pool_pki.client_context(server_cert))

    await wait_for(lambda: rejections(gateway, "no-certificate") == 1)
    await wait_for(lambda: rejections(gateway, "unknown-issuer") == 1)
    await wait_for(lambda: rejections(gateway, "certificate-expired") == 1)
    await wait_for(lambda: rejections(gateway, "certificate-not-yet-valid") == 1)
    await wait_for(lambda: rejections(gateway, "certificate-rejected") == 1)
    assert echo_worker.connections == 0


async def test_allocation_checks_refuse_before_any_byte_reaches_a_worker(
        gateway: Gateway, pool_pki: PoolPKI, workers: Workers, echo_worker: EchoWorker) -> None:
    cert = pool_pki.allocation_cert("e" * 32)
    other = pool_pki.allocation_cert("e" * 32)  # same allocation, a serial the worker did not record
    unknown = pool_pki.allocation_cert("u" * 32)
    await workers.create("w1", endpoint=echo_worker.endpoint, cert=cert, allocation_id="e" * 32)
    starting = pool_pki.allocation_cert("f" * 32)
    await workers.create("w2", endpoint=echo_worker.endpoint, cert=starting, allocation_id="f" * 32,
                         ready=False)
    await wait_for(lambda: len(gateway.cache._by_allocation) == 2)

    await assert_refused(gateway, pool_pki.client_context(other))
    await assert_refused(gateway, pool_pki.client_context(unknown))
    await assert_refused(gateway, pool_pki.client_context(starting))

    assert rejections(gateway, "serial-mismatch") == 1
    assert rejections(gateway, "unknown-allocation") == 1
    assert rejections(gateway, "worker-not-ready") == 1
    assert echo_worker.connections == 0


async def test_release_closes_live_connections_and_refuses_new_ones_within_a_second(
        gateway: Gateway, pool_pki: PoolPKI, workers: Workers, echo_worker: EchoWorker) -> None:
    cert = pool_pki.allocation_cert("g" * 32)
    await workers.create("w1", endpoint=echo_worker.endpoint, cert=cert, allocation_id="g" * 32)
    await wait_for(lambda: gateway.cache._by_allocation.get("g" * 32))
    reader, _writer = await live_stream(gateway, pool_pki.client_context(cert))

    await workers.delete("w1")  # the API deletes the worker on release
    assert await assert_closed_within(reader, 1.0) < 1.0
    await assert_refused(gateway, pool_pki.client_context(cert))
    assert rejections(gateway, "revoked-unknown-allocation") == 1


async def test_allocation_removed_from_the_worker_revokes(gateway: Gateway, pool_pki: PoolPKI,
                                                          workers: Workers, echo_worker: EchoWorker) -> None:
    cert = pool_pki.allocation_cert("h" * 32)
    await workers.create("w1", endpoint=echo_worker.endpoint, cert=cert, allocation_id="h" * 32)
    await wait_for(lambda: gateway.cache._by_allocation.get("h" * 32))
    reader, _writer = await live_stream(gateway, pool_pki.client_context(cert))

    await workers.patch_spec("w1", {"allocation": None})
    assert await assert_closed_within(reader, 1.0) < 1.0


async def test_expiry_closes_live_connections_without_any_api_event(
        gateway: Gateway, pool_pki: PoolPKI, workers: Workers, echo_worker: EchoWorker) -> None:
    cert = pool_pki.allocation_cert("i" * 32)
    await workers.create("w1", endpoint=echo_worker.endpoint, cert=cert, allocation_id="i" * 32,
                         expires_in=dt.timedelta(seconds=2))
    await wait_for(lambda: gateway.cache._by_allocation.get("i" * 32))
    expires_at = gateway.cache._entries["w1"].worker.allocation.expires_at  # whole seconds
    reader, _writer = await live_stream(gateway, pool_pki.client_context(cert))

    await assert_closed_within(reader, 4.0)
    late = (dt.datetime.now(dt.UTC) - expires_at).total_seconds()
    assert 0 <= late < 1.0
    await assert_refused(gateway, pool_pki.client_context(cert))
    assert rejections(gateway, "expired") == 1


async def test_unsynced_cache_fails_closed_and_reports_not_ready(
        pool_pki: PoolPKI, kubesim: KubeSim, workers: Workers, echo_worker: EchoWorker) -> None:
    import aiohttp

    cert = pool_pki.allocation_cert("j" * 32)
    await workers.create("w1", endpoint=echo_worker.endpoint, cert=cert, allocation_id="j" * 32)
    kubesim.faults.fail_next(None, 500, verb="list", resource="buildkitworkers")
    gw = Gateway(gateway_config(pool_pki, kubesim))
    await gw.start()
    try:
        url = "http://{}:{}".format(*gw.metrics_address)
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/readyz") as response:
                assert response.status == 503
            await assert_refused(gw, pool_pki.client_context(cert))
            assert rejections(gw, "not-synced") == 1

            kubesim.faults.clear()
            await wait_for(lambda: gw.cache.synced)
            async with http.get(url + "/readyz") as response:
                assert response.status == 200
            async with http.get(url + "/healthz") as response:
                assert response.status == 200
    finally:
        await gw.stop()
    assert echo_worker.connections == 0


async def test_a_client_that_never_sends_a_hello_is_cut_off(pool_pki: PoolPKI, kubesim: KubeSim,
                                                             workers: Workers) -> None:
    gw = Gateway(gateway_config(pool_pki, kubesim, handshake_timeout=0.5))
    await gw.start()
    try:
        reader, writer = await asyncio.open_connection(*gw.address)  # plain TCP, no ClientHello
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(1), 5) == b""
        assert time.monotonic() - started < 2
        writer.close()
        await wait_for(lambda: rejections(gw, "handshake-timeout") == 1)
    finally:
        await gw.stop()


async def test_connections_per_allocation_are_capped(pool_pki: PoolPKI, kubesim: KubeSim, workers: Workers,
                                                     echo_worker: EchoWorker) -> None:
    gw = Gateway(gateway_config(pool_pki, kubesim, max_connections_per_allocation=2))
    await gw.start()
    try:
        cert = pool_pki.allocation_cert("c" * 32)
        await workers.create("w1", endpoint=echo_worker.endpoint, cert=cert, allocation_id="c" * 32)
        await wait_for(lambda: gw.cache._by_allocation.get("c" * 32))
        streams = [await live_stream(gw, pool_pki.client_context(cert)) for _ in range(2)]
        await assert_refused(gw, pool_pki.client_context(cert))
        assert rejections(gw, "too-many-connections") == 1
        streams.pop()[1].close()
        await wait_for(lambda: len(gw.proxy.links) == 1)
        streams.append(await live_stream(gw, pool_pki.client_context(cert)))  # room again
        for _, writer in streams:
            writer.close()
    finally:
        await gw.stop()
