"""The data plane: a live allocation's certificate reaches its worker; bytes come back intact."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import os
import ssl
import weakref
from pathlib import Path

from buildkit_controller.gateway.server import Gateway

from .conftest import POOL, EchoWorker, PoolPKI, Workers, blocking_client, echo_roundtrip, open_client, wait_for


async def test_live_allocation_is_proxied_to_its_worker(gateway: Gateway, pool_pki: PoolPKI,
                                                         workers: Workers, echo_worker) -> None:
    cert = pool_pki.allocation_cert("a" * 32)
    await workers.create("w1", endpoint=echo_worker.endpoint, cert=cert, allocation_id="a" * 32)
    await wait_for(lambda: gateway.cache._by_allocation.get("a" * 32))

    assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")  # as in production
    assert await echo_roundtrip(gateway, pool_pki.client_context(cert)) == b"ping"
    # The worker saw the gateway's worker-client certificate, never the tenant's.
    subject = dict(x[0] for x in echo_worker.peers[0]["subject"])
    assert subject["commonName"] == "gateway"


async def test_large_transfer_is_lossless_both_ways(gateway: Gateway, pool_pki: PoolPKI,
                                                    workers: Workers, echo_worker) -> None:
    cert = pool_pki.allocation_cert("b" * 32)
    await workers.create("w1", endpoint=echo_worker.endpoint, cert=cert, allocation_id="b" * 32)
    await wait_for(lambda: gateway.cache._by_allocation.get("b" * 32))
    data = os.urandom(8 << 20)
    reader, writer = await open_client(gateway, pool_pki.client_context(cert))

    async def send() -> None:
        for offset in range(0, len(data), 1 << 20):
            writer.write(data[offset:offset + (1 << 20)])
            await writer.drain()

    sender = asyncio.create_task(send())
    received = await asyncio.wait_for(reader.readexactly(len(data)), 30)
    await sender
    writer.close()
    assert hashlib.sha256(received).digest() == hashlib.sha256(data).digest()
    await wait_for(lambda: gateway.metrics.bytes_in._value.get() >= len(data)  # counted every 0.25 s
                   and gateway.metrics.bytes_out._value.get() >= len(data))


async def test_alpn_chosen_by_the_client_is_asked_of_the_worker(gateway: Gateway, pool_pki: PoolPKI,
                                                                 workers: Workers, echo_worker) -> None:
    cert = pool_pki.allocation_cert("c" * 32)
    await workers.create("w1", endpoint=echo_worker.endpoint, cert=cert, allocation_id="c" * 32)
    await wait_for(lambda: gateway.cache._by_allocation.get("c" * 32))

    for offered, expected in ((["h2"], "h2"), (["http/1.1"], "http/1.1"), (None, None)):
        reader, writer = await open_client(gateway, pool_pki.client_context(cert, alpn=offered))
        assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == expected
        writer.write(b"x")
        assert await asyncio.wait_for(reader.read(1), 5) == b"x"
        writer.close()
    assert echo_worker.alpn == ["h2", "http/1.1", None]


async def test_a_worker_that_speaks_first_reaches_the_client(gateway: Gateway, pool_pki: PoolPKI,
                                                              workers: Workers, echo_worker) -> None:
    echo_worker.greeting = b"hello from the worker"
    cert = pool_pki.allocation_cert("g" * 32)
    await workers.create("w1", endpoint=echo_worker.endpoint, cert=cert, allocation_id="g" * 32)
    await wait_for(lambda: gateway.cache._by_allocation.get("g" * 32))
    reader, writer = await open_client(gateway, pool_pki.client_context(cert))
    assert await asyncio.wait_for(reader.readexactly(21), 5) == b"hello from the worker"
    writer.close()


async def test_what_a_worker_sent_before_closing_reaches_a_slow_client(
        gateway: Gateway, pool_pki: PoolPKI, workers: Workers, echo_worker: EchoWorker) -> None:
    # The worker writes 16 MiB and hangs up at once; the client reads only after a pause, so the
    # gateway holds a chunk it cannot write yet when the worker's side ends. All of it must arrive,
    # then a clean end: not a reset, not a truncated stream.
    echo_worker.greeting, echo_worker.hang_up = os.urandom(16 << 20), True
    cert = pool_pki.allocation_cert("m" * 32)
    await workers.create("w1", endpoint=echo_worker.endpoint, cert=cert, allocation_id="m" * 32)
    await wait_for(lambda: gateway.cache._by_allocation.get("m" * 32))
    reader, writer = await open_client(gateway, pool_pki.client_context(cert))
    await asyncio.sleep(0.5)
    received = await asyncio.wait_for(reader.read(), 30)  # until EOF
    writer.close()
    assert len(received) == len(echo_worker.greeting)
    assert hashlib.sha256(received).digest() == hashlib.sha256(echo_worker.greeting).digest()
    await wait_for(lambda: not gateway.proxy.links and not gateway.proxy.closing())


async def test_a_worker_that_breaks_off_is_not_passed_on_as_a_clean_end(
        gateway: Gateway, pool_pki: PoolPKI, workers: Workers, echo_worker: EchoWorker) -> None:
    # TLS tells a complete stream from a cut one by close_notify: the gateway sends it to the
    # client only when the worker sent its own, so a client never takes a truncated answer for all.
    cert = pool_pki.allocation_cert("u" * 32)
    await workers.create("w1", endpoint=echo_worker.endpoint, cert=cert, allocation_id="u" * 32)
    await wait_for(lambda: gateway.cache._by_allocation.get("u" * 32))

    def read_all() -> tuple[bytes, str]:
        with blocking_client(gateway, pool_pki.client_context(cert), suppress_ragged_eofs=False) as tls:
            got = b""
            try:
                while chunk := tls.recv(65536):
                    got += chunk
            except ssl.SSLEOFError:
                return got, "unclean"
            return got, "close_notify"

    echo_worker.greeting, echo_worker.hang_up = b"partial answer", "abort"
    assert await asyncio.to_thread(read_all) == (b"partial answer", "unclean")
    echo_worker.hang_up = True
    assert await asyncio.to_thread(read_all) == (b"partial answer", "close_notify")


async def test_a_worker_serving_another_name_is_not_trusted(gateway: Gateway, pool_pki: PoolPKI,
                                                             workers: Workers, tmp_path: Path) -> None:
    impostor = EchoWorker(pool_pki, tmp_path, name="buildkit-worker.other-pool.default")
    await impostor.start()
    try:
        cert = pool_pki.allocation_cert("h" * 32)
        await workers.create("w1", endpoint=impostor.endpoint, cert=cert, allocation_id="h" * 32)
        await wait_for(lambda: gateway.cache._by_allocation.get("h" * 32))
        reader, writer = await open_client(gateway, pool_pki.client_context(cert))
        writer.write(b"secret build context")
        assert await asyncio.wait_for(reader.read(1), 5) == b""
        assert gateway.metrics.registry.get_sample_value(
            "buildkit_gateway_connections_total", {"pool": POOL, "status": "error"}) == 1
        assert impostor.connections == 0  # the TLS handshake failed: nothing was relayed
    finally:
        await impostor.stop()


async def test_a_closed_connection_is_freed_without_the_garbage_collector(
        gateway: Gateway, pool_pki: PoolPKI, workers: Workers, echo_worker) -> None:
    # Cyclic garbage per connection (sides, link, sockets, OpenSSL objects) would wait for a full
    # collection, whose pauses grow with the heap: reference counting must free it all. (The
    # OpenSSL objects take no weak references; only their side holds them.)
    cert = pool_pki.allocation_cert("k" * 32)
    await workers.create("w1", endpoint=echo_worker.endpoint, cert=cert, allocation_id="k" * 32)
    await wait_for(lambda: gateway.cache._by_allocation.get("k" * 32))
    gc.collect()
    gc.disable()
    try:
        reader, writer = await open_client(gateway, pool_pki.client_context(cert))
        writer.write(b"x")
        assert await asyncio.wait_for(reader.read(1), 5) == b"x"
        (link,) = gateway.proxy.links
        refs = [weakref.ref(x) for x in (link, link.client, link.upstream, link.client.sock,
                                         link.upstream.sock)]
        del link
        writer.close()
        await wait_for(lambda: not gateway.proxy.links)
        await wait_for(lambda: all(ref() is None for ref in refs))
    finally:
        gc.enable()
