"""The real ``buildkit-gateway`` process: the operator's arguments, readiness, SIGTERM drain, exit 0."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import ssl
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from kubesim import KubeSim

from .conftest import NAMESPACE, POOL, EchoWorker, PoolPKI, Workers, wait_for

GATEWAY = Path(sys.executable).parent / "buildkit-gateway"
LISTENING = re.compile(rb"listening on ([\d.]+):(\d+), health and metrics on ([\d.]+):(\d+)")


async def start_gateway(pool_pki: PoolPKI, sim: KubeSim, *extra: str) -> tuple[asyncio.subprocess.Process,
                                                                               tuple[int, int], list[bytes]]:
    process = await asyncio.create_subprocess_exec(
        str(GATEWAY), f"--pool={POOL}", f"--namespace={NAMESPACE}", "--listen=127.0.0.1:0",
        "--metrics-listen=127.0.0.1:0", f"--tls-dir={pool_pki.tls_dir}",
        f"--worker-client-dir={pool_pki.worker_client_dir}", f"--server={sim.url}", *extra,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    lines: list[bytes] = []
    assert process.stderr is not None
    match = None
    while match is None:
        line = await asyncio.wait_for(process.stderr.readline(), 15)
        assert line, b"".join(lines).decode()
        lines.append(line)
        match = LISTENING.search(line)
    asyncio.get_running_loop().create_task(_collect(process.stderr, lines))
    return process, (int(match.group(2)), int(match.group(4))), lines


async def _collect(stream: asyncio.StreamReader, lines: list[bytes]) -> None:
    while line := await stream.readline():
        lines.append(line)


async def ready(port: int) -> bool:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/readyz") as response:
        return response.status == 200


@pytest.mark.slow
async def test_sigterm_lets_a_live_stream_finish_then_exits_zero(
        pool_pki: PoolPKI, kubesim: KubeSim, workers: Workers, echo_worker: EchoWorker) -> None:
    cert = pool_pki.allocation_cert("t" * 32)
    await workers.create("w1", endpoint=echo_worker.endpoint, cert=cert, allocation_id="t" * 32)
    process, (port, metrics_port), log = await start_gateway(pool_pki, kubesim, "--drain-timeout=20")
    try:
        await wait_for(lambda: ready(metrics_port), timeout=10)
        ctx = pool_pki.client_context(cert)
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost")
        writer.write(b"one")
        assert await asyncio.wait_for(reader.readexactly(3), 5) == b"one"

        process.send_signal(signal.SIGTERM)
        await wait_for(lambda: not _accepts(port), timeout=5)  # stopped accepting
        for _ in range(5):  # the live stream keeps working while the process drains
            writer.write(b"more")
            assert await asyncio.wait_for(reader.readexactly(4), 5) == b"more"
            await asyncio.sleep(0.1)
        assert process.returncode is None
        writer.close()
        closed_at = time.monotonic()
        assert await asyncio.wait_for(process.wait(), 10) == 0
        assert time.monotonic() - closed_at < 3, "exits as soon as the last stream ends"
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = b"".join(log).decode()
    assert "draining 1 connection" in text
    assert "PRIVATE KEY" not in text


def _accepts(port: int) -> bool:
    """True while the data port still accepts TCP connections."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.mark.slow
async def test_drain_timeout_closes_what_is_left(pool_pki: PoolPKI, kubesim: KubeSim, workers: Workers,
                                                 echo_worker: EchoWorker) -> None:
    cert = pool_pki.allocation_cert("v" * 32)
    await workers.create("w1", endpoint=echo_worker.endpoint, cert=cert, allocation_id="v" * 32)
    process, (port, metrics_port), _ = await start_gateway(pool_pki, kubesim, "--drain-timeout=1")
    try:
        await wait_for(lambda: ready(metrics_port), timeout=10)
        ctx = pool_pki.client_context(cert)
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost")
        writer.write(b"x")
        assert await asyncio.wait_for(reader.readexactly(1), 5) == b"x"
        started = time.monotonic()
        os.kill(process.pid, signal.SIGTERM)
        with contextlib.suppress(ssl.SSLError, ConnectionError):  # closed, politely or not
            assert await asyncio.wait_for(reader.read(1), 5) == b""
        assert 0.9 < time.monotonic() - started < 3
        assert await asyncio.wait_for(process.wait(), 10) == 0
        writer.close()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
