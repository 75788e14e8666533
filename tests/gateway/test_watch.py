"""The worker cache follows the API across ended watches and expired resource versions (410)."""

from __future__ import annotations

from buildkit_controller.gateway.server import Gateway
from kubesim import KubeSim

from .conftest import PoolPKI, Workers, echo_roundtrip, wait_for


async def test_cache_follows_changes_across_dropped_watches_and_410(
        gateway: Gateway, kubesim: KubeSim, pool_pki: PoolPKI, workers: Workers, echo_worker) -> None:
    first = pool_pki.allocation_cert("x" * 32)
    await workers.create("w1", endpoint=echo_worker.endpoint, cert=first, allocation_id="x" * 32)
    await wait_for(lambda: gateway.cache._by_allocation.get("x" * 32))

    kubesim.drop_watches("buildkitworkers")  # the server ends the watch: resume from the last version
    second = pool_pki.allocation_cert("y" * 32)
    await workers.create("w2", endpoint=echo_worker.endpoint, cert=second, allocation_id="y" * 32)
    await wait_for(lambda: gateway.cache._by_allocation.get("y" * 32))

    kubesim.expire_history()  # resuming now gets 410 Gone: the gateway must relist
    kubesim.drop_watches("buildkitworkers")
    await workers.delete("w1")
    third = pool_pki.allocation_cert("z" * 32)
    await workers.create("w3", endpoint=echo_worker.endpoint, cert=third, allocation_id="z" * 32)
    await wait_for(lambda: gateway.cache._by_allocation.get("z" * 32))
    assert "x" * 32 not in gateway.cache._by_allocation
    assert gateway.cache.synced
    assert await echo_roundtrip(gateway, pool_pki.client_context(third)) == b"ping"
