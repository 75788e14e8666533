"""Real gRPC (HTTP/2 over TLS with ALPN h2) through the gateway: unary and bidirectional streams."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest_asyncio

from buildkit_controller.core import pki
from buildkit_controller.gateway.server import Gateway

from .conftest import HOUR, WORKER_NAME, PoolPKI, Workers, wait_for

SERVICE = "moby.buildkit.v1.Control"


async def _info(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    peer = context.auth_context().get("x509_common_name", [b"?"])[0]
    return b"info:" + request + b":" + peer


async def _session(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    async for message in requests:
        yield message[::-1]


@pytest_asyncio.fixture
async def grpc_worker(pool_pki: PoolPKI) -> AsyncIterator[str]:
    """A grpc.aio server with buildkitd's TLS: worker certificate, client certificates required."""
    cert = pki.issue_server_certificate(pool_pki.worker, dns_names=[WORKER_NAME], lifetime=HOUR)
    credentials = grpc.ssl_server_credentials(
        [(cert.private_key_pem or b"", cert.certificate_pem)],
        root_certificates=pool_pki.worker.certificate_pem, require_client_auth=True)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, {
        "Info": grpc.unary_unary_rpc_method_handler(_info),
        "Session": grpc.stream_stream_rpc_method_handler(_session)})])
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    yield f"tcp://127.0.0.1:{port}"
    await server.stop(0)


async def test_grpc_unary_and_streaming_calls_pass_through(gateway: Gateway, pool_pki: PoolPKI,
                                                            workers: Workers, grpc_worker: str,
                                                            tmp_path: Path) -> None:
    cert = pool_pki.allocation_cert("w" * 32)
    await workers.create("w1", endpoint=grpc_worker, cert=cert, allocation_id="w" * 32)
    await wait_for(lambda: gateway.cache._by_allocation.get("w" * 32))
    credentials = grpc.ssl_channel_credentials(root_certificates=pool_pki.tenant.certificate_pem,
                                               private_key=cert.private_key_pem,
                                               certificate_chain=cert.certificate_pem)
    host, port = gateway.address
    async with grpc.aio.secure_channel(f"{host}:{port}", credentials,
                                       options=[("grpc.ssl_target_name_override", "localhost")]) as channel:
        info = channel.unary_unary(f"/{SERVICE}/Info")
        assert await info(b"hello", timeout=10) == b"info:hello:gateway"

        session = channel.stream_stream(f"/{SERVICE}/Session")
        call = session(iter([b"abc", b"defg", b"x" * 100_000]), timeout=10)
        replies = [reply async for reply in call]
        assert replies == [b"cba", b"gfed", b"x" * 100_000]
