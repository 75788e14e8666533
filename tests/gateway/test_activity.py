"""Real traffic moves the worker's status.activeConnections and status.lastActivityAt, throttled."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from typing import Any

from buildkit_controller.gateway.server import Gateway

from .conftest import PoolPKI, Workers, open_client, wait_for


def parse(ts: str) -> dt.datetime:
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))


async def test_activity_follows_live_connections(gateway: Gateway, pool_pki: PoolPKI, workers: Workers,
                                                 echo_worker) -> None:
    patches: list[tuple[str, Mapping[str, Any]]] = []
    real_patch = gateway.activity._patch

    async def counting_patch(name: str, status: Mapping[str, Any]) -> bool:
        patches.append((name, dict(status)))
        return await real_patch(name, status)

    gateway.activity._patch = counting_patch
    cert = pool_pki.allocation_cert("k" * 32)
    await workers.create("w1", endpoint=echo_worker.endpoint, cert=cert, allocation_id="k" * 32)
    await wait_for(lambda: gateway.cache._by_allocation.get("k" * 32))

    async def status() -> dict[str, Any]:
        return (await workers.get("w1")).get("status") or {}

    streams = [await open_client(gateway, pool_pki.client_context(cert)) for _ in range(3)]
    for reader, writer in streams:
        writer.write(b"x")
        assert await reader.readexactly(1) == b"x"
    await wait_for(lambda: _active(status, 3), timeout=3)
    first = parse((await status())["lastActivityAt"])
    assert len(patches) <= 2, "three opens within the interval are coalesced"

    # Live connections keep lastActivityAt moving (refresh is 1 s in these tests).
    await wait_for(lambda: _moved_past(status, first), timeout=4)

    for _, writer in streams:
        writer.close()
    await wait_for(lambda: _active(status, 0), timeout=3)
    assert len(patches) <= 8, "no more than one patch per worker per interval"


async def _active(status: Any, expected: int) -> bool:
    return (await status()).get("activeConnections") == expected


async def _moved_past(status: Any, first: dt.datetime) -> bool:
    current = (await status()).get("lastActivityAt")
    return current is not None and parse(current) > first


async def test_last_activity_only_moves_forward(gateway: Gateway, pool_pki: PoolPKI, workers: Workers,
                                                echo_worker) -> None:
    cert = pool_pki.allocation_cert("m" * 32)
    await workers.create("w1", endpoint=echo_worker.endpoint, cert=cert, allocation_id="m" * 32)
    future = "2099-01-01T00:00:00Z"  # another replica (or clock) already wrote a later time
    await workers.patch_status("w1", {"lastActivityAt": future})
    await wait_for(lambda: gateway.cache.last_activity("w1") is not None)

    reader, writer = await open_client(gateway, pool_pki.client_context(cert))
    writer.write(b"x")
    assert await reader.readexactly(1) == b"x"
    await wait_for(lambda: _active(lambda: _status(workers), 1), timeout=3)
    writer.close()
    await asyncio.sleep(0.1)
    assert (await _status(workers))["lastActivityAt"] == future


async def _status(workers: Workers) -> dict[str, Any]:
    return (await workers.get("w1")).get("status") or {}
