"""Per-request sizes: an allocation may ask for a size profile up to the pool's maximum.

The Kubernetes API server is emulated (kubesim) and pods do not run: a small task plays the operator
and marks the workers the allocator creates Ready, as the real operator does after the readiness probe.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio

from buildkit_controller.controller.api.allocations import AllocationSettings, Allocator
from buildkit_controller.controller.manifests.names import API_VERSION
from buildkit_controller.core._loader import load_plugins
from buildkit_controller.core.allocation import new_allocation
from buildkit_controller.core.errors import SpecError
from buildkit_controller.core.models import AllocationRequest, Identity, Pool
from buildkit_controller.core.settings import PluginSettings
from buildkit_controller.core.sizing import merge_profiles

from .conftest import Cluster

PROFILES = merge_profiles(load_plugins(PluginSettings()).broadcast("bkc_sizing_profiles"))


async def _mark_new_workers_ready(cluster: Cluster) -> None:
    while True:
        for body in await cluster.workers():
            if not (body.get("status") or {}).get("phase"):
                name = body["metadata"]["name"]
                await cluster.kube.patch(API_VERSION, "BuildKitWorker", name, "default", {"status": {
                    "phase": "Allocated", "endpoint": "tcp://127.0.9.99:1234",
                    "conditions": [{"type": "Ready", "status": "True", "reason": "PodReady", "message": "",
                                    "lastTransitionTime": "2026-06-01T12:00:00Z"}]}}, status=True)
        await asyncio.sleep(0.05)


@pytest_asyncio.fixture
async def operator(cluster: Cluster) -> AsyncIterator[None]:
    task = asyncio.create_task(_mark_new_workers_ready(cluster))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def allocate(cluster: Cluster, pool: Pool, size: str | None) -> str:
    allocator = Allocator(cluster.kube, AllocationSettings(ready_timeout=10, poll_interval=0.05),
                          profiles=lambda: PROFILES)
    made = new_allocation(identity=Identity(subject="ci", method="token"), gateway=pool.spec.gateway,
                          now=datetime.now(UTC), ttl=None, job_id=None, metadata={})
    credentials = await allocator.allocate(pool, made, AllocationRequest(pool_name=pool.name, size=size))
    return credentials.worker


async def sizes(cluster: Cluster) -> dict[str, Any]:
    return {b["metadata"]["name"]: b["spec"].get("size") for b in await cluster.workers()}


@pytest.mark.usefixtures("operator")
async def test_a_smaller_size_gets_its_own_worker_and_the_warm_one_stays_idle(cluster: Cluster) -> None:
    pool = await cluster.pool(size="md", scaling={"max": 3})
    [warm] = await cluster.idle_workers(pool, 1)
    name = await allocate(cluster, pool, "sm")
    assert name != warm
    assert await sizes(cluster) == {warm: None, name: "sm"}  # the operator renders an sm pod for it


@pytest.mark.usefixtures("operator")
async def test_the_pools_own_size_or_a_capped_one_claims_a_warm_worker(cluster: Cluster) -> None:
    pool = await cluster.pool(size="md", scaling={"max": 3})
    warm = await cluster.idle_workers(pool, 2)
    assert await allocate(cluster, pool, "md") in warm
    assert await allocate(cluster, pool, "xl") in warm  # above the pool's maximum (md): capped to md
    assert set((await sizes(cluster)).values()) == {None}


@pytest.mark.usefixtures("operator")
async def test_max_size_allows_a_bigger_worker_and_counts_toward_max(cluster: Cluster) -> None:
    pool = await cluster.pool(size="sm", maxSize="lg", scaling={"max": 2})
    await cluster.idle_workers(pool, 1)
    name = await allocate(cluster, pool, "xl")
    assert (await sizes(cluster))[name] == "lg"
    assert len(await cluster.workers()) == 2


async def test_an_unknown_size_is_refused_before_anything_is_created(cluster: Cluster) -> None:
    pool = await cluster.pool(scaling={"max": 3})
    with pytest.raises(SpecError) as info:
        await allocate(cluster, pool, "huge")
    assert info.value.path == "body.size" and "known: sm, md, lg, xl" in str(info.value)
    assert await cluster.workers() == []


@pytest.mark.usefixtures("operator")
async def test_the_api_answers_with_the_size_given_and_refuses_unknown_ones(cluster: Cluster, client: Any) -> None:
    await cluster.pool(size="sm", maxSize="lg", scaling={"max": 3})
    headers = cluster.token("ci-bot")
    answer = await client.post("/api/v1/workers/allocate", headers=headers,
                               json={"poolName": "builds", "size": "xl"})
    assert answer.status_code == 200, await answer.get_data()
    assert (await answer.get_json())["size"] == "lg"  # capped at maxSize
    refused = await client.post("/api/v1/workers/allocate", headers=headers,
                                json={"poolName": "builds", "size": "huge"})
    assert refused.status_code == 400
    assert "body.size" in (await refused.get_json())["message"]
    assert len(await cluster.workers()) == 1


@pytest.mark.usefixtures("operator")
async def test_at_max_an_idle_worker_of_another_size_makes_room(cluster: Cluster) -> None:
    pool = await cluster.pool(size="md", maxSize="lg", scaling={"max": 1})
    [warm] = await cluster.idle_workers(pool, 1)
    name = await allocate(cluster, pool, "lg")
    assert await sizes(cluster) == {name: "lg"}  # the warm md worker went; never more than max
    assert warm != name


@pytest.mark.usefixtures("operator")
async def test_a_worker_still_going_holds_its_slot_until_it_is_gone(cluster: Cluster) -> None:
    """The operator admits a pod only when the going worker's pod has drained: the API waits too,
    instead of creating a worker the operator would refuse."""
    pool = await cluster.pool(scaling={"max": 1})
    [going] = await cluster.idle_workers(pool, 1)
    await cluster.kube.patch(API_VERSION, "BuildKitWorker", going, "default",
                             {"metadata": {"finalizers": ["test/draining"]}})
    await cluster.kube.delete(API_VERSION, "BuildKitWorker", going, "default")
    task = asyncio.create_task(allocate(cluster, pool, None))
    await asyncio.sleep(0.5)
    assert list(await sizes(cluster)) == [going] and not task.done()
    await cluster.kube.patch(API_VERSION, "BuildKitWorker", going, "default", {"metadata": {"finalizers": None}})
    name = await asyncio.wait_for(task, timeout=10)
    assert list(await sizes(cluster)) == [name] != [going]
