"""``kubernetes_asyncio`` against an in-process kubesim (the emulated API server)."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.rest import ApiException

from kubesim import KubeSim


@pytest.fixture
async def core(kubesim: KubeSim):
    config = client.Configuration(host=kubesim.url)
    async with client.ApiClient(config) as api:
        yield client.CoreV1Api(api)


def _cm(name: str, **data: str) -> dict:
    return {"metadata": {"name": name}, "data": data}


async def test_unknown_nested_field_is_400_and_known_fields_pass(core):
    """Strict decoding derived from the client models: a typo deep in a pod spec is refused."""
    pod = {
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "i", "imagePullPolice": "x"}]},
    }
    with pytest.raises(ApiException) as exc:
        await core.create_namespaced_pod("default", pod)
    assert exc.value.status == 400
    assert 'unknown field "spec.containers[0].imagePullPolice"' in json.loads(exc.value.body)["message"]
    pod["spec"]["containers"][0]["imagePullPolicy"] = pod["spec"]["containers"][0].pop("imagePullPolice")
    created = await core.create_namespaced_pod("default", pod)
    assert created.status.phase == "Pending" and created.spec.node_name is None


async def test_missing_namespace_is_404(core):
    with pytest.raises(ApiException) as exc:
        await core.create_namespaced_config_map("nowhere", _cm("x"))
    assert exc.value.status == 404


async def test_python_fault_api_fails_and_delays(core, kubesim: KubeSim):
    kubesim.faults.fail_next(1, 409, verb="patch", resource="configmaps")
    await core.create_namespaced_config_map("default", _cm("f", k="1"))
    with pytest.raises(ApiException) as exc:
        await core.patch_namespaced_config_map("f", "default", {"data": {"k": "2"}})
    assert exc.value.status == 409
    await core.patch_namespaced_config_map("f", "default", {"data": {"k": "2"}})
    kubesim.faults.fail_next(1, 410, verb="list", resource="configmaps")
    with pytest.raises(ApiException) as gone:
        await core.list_namespaced_config_map("default")
    assert gone.value.status == 410
    kubesim.faults.delay(0.3, count=1, verb="get")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await core.read_namespaced_config_map("f", "default")
    assert loop.time() - started >= 0.3


async def test_dropped_watch_resumes_from_last_version_without_loss(core, kubesim: KubeSim):
    """After a dropped stream, re-watching from the last seen version misses nothing."""
    start = (await core.list_namespaced_config_map("default")).metadata.resource_version
    seen: list[str] = []
    last_rv = start

    async def watch_once() -> None:
        nonlocal last_rv
        async with watch.Watch().stream(
            core.list_namespaced_config_map, "default", resource_version=last_rv, timeout_seconds=5
        ) as stream:
            async for event in stream:
                seen.append(event["object"].metadata.name)
                last_rv = event["object"].metadata.resource_version
                if len(seen) == 4:
                    return

    first = asyncio.create_task(watch_once())
    await core.create_namespaced_config_map("default", _cm("d0"))
    await core.create_namespaced_config_map("default", _cm("d1"))
    await asyncio.sleep(0.2)
    assert kubesim.drop_watches("configmaps") == 1
    await first
    await core.create_namespaced_config_map("default", _cm("d2"))
    await core.create_namespaced_config_map("default", _cm("d3"))
    await asyncio.wait_for(watch_once(), 5)
    assert seen == ["d0", "d1", "d2", "d3"]


async def test_bookmarks_carry_current_version(kubesim: KubeSim):
    """With allowWatchBookmarks, idle streams get BOOKMARK events with the latest resourceVersion."""
    kubesim.ctx.bookmark_interval = 0.1
    config = client.Configuration(host=kubesim.url)
    async with client.ApiClient(config) as api:
        core = client.CoreV1Api(api)
        await core.create_namespaced_config_map("default", _cm("b"))
        response = await core.list_namespaced_config_map(
            "default",
            watch=True,
            resource_version="1",
            allow_watch_bookmarks=True,
            timeout_seconds=1,
            _preload_content=False,
        )
        lines = [json.loads(line) async for line in response.content]
    kinds = [event["type"] for event in lines]
    assert kinds[0] == "ADDED" and "BOOKMARK" in kinds
    bookmark = next(e for e in lines if e["type"] == "BOOKMARK")
    assert bookmark["object"]["metadata"]["resourceVersion"] == str(kubesim.store.resource_version)


async def test_watch_with_label_selector_sees_objects_leave_the_selection(core):
    start = (await core.list_namespaced_config_map("default")).metadata.resource_version
    await core.create_namespaced_config_map("default", {"metadata": {"name": "l", "labels": {"app": "x"}}})
    await core.patch_namespaced_config_map("l", "default", {"metadata": {"labels": {"app": "y"}}})
    events = []
    async with watch.Watch().stream(
        core.list_namespaced_config_map,
        "default",
        label_selector="app=x",
        resource_version=start,
        timeout_seconds=1,
    ) as stream:
        async for event in stream:
            events.append(event["type"])
    assert events == ["ADDED", "DELETED"]


async def test_concurrent_writers_deliver_every_event_once(core, kubesim: KubeSim):
    """Acceptance 5: 20 writers, one watcher; every create and patch arrives exactly once, in order."""
    start = (await core.list_namespaced_config_map("default")).metadata.resource_version
    writers, per_writer = 20, 15
    received: list[tuple[str, str, int]] = []

    async def watcher() -> None:
        async with watch.Watch().stream(
            core.list_namespaced_config_map, "default", resource_version=start, timeout_seconds=20
        ) as stream:
            async for event in stream:
                obj = event["object"]
                received.append((event["type"], obj.metadata.name, int(obj.metadata.resource_version)))
                if len(received) == writers * per_writer * 2:
                    return

    async def writer(index: int) -> None:
        for j in range(per_writer):
            name = f"w{index}-{j}"
            await core.create_namespaced_config_map("default", _cm(name))
            await core.patch_namespaced_config_map(name, "default", {"data": {"n": str(j)}})

    watching = asyncio.create_task(watcher())
    await asyncio.gather(*(writer(i) for i in range(writers)))
    await asyncio.wait_for(watching, 20)
    versions = [rv for _, _, rv in received]
    assert versions == sorted(set(versions)), "events duplicated or out of order"
    assert sorted(t for t, n, _ in received if n == "w7-3") == ["ADDED", "MODIFIED"]
    assert len({(t, n) for t, n, _ in received}) == writers * per_writer * 2


async def test_put_conflict_and_expired_watch_recovery(core, kubesim: KubeSim):
    """Stale PUT → 409; a watch from a version older than the retained history → 410, relist recovers."""
    created = await core.create_namespaced_config_map("default", _cm("r", k="1"))
    fresh = await core.read_namespaced_config_map("r", "default")
    fresh.data = {"k": "2"}
    await core.replace_namespaced_config_map("r", "default", fresh)
    created.data = {"k": "stale"}
    with pytest.raises(ApiException) as conflict:
        await core.replace_namespaced_config_map("r", "default", created)
    assert conflict.value.status == 409
    kubesim.expire_history()
    with pytest.raises(ApiException) as gone:
        async with watch.Watch().stream(
            core.list_namespaced_config_map,
            "default",
            resource_version=created.metadata.resource_version,
            timeout_seconds=1,
        ) as stream:
            async for _ in stream:
                pass
    assert gone.value.status == 410
    relisted = await core.list_namespaced_config_map("default")
    await core.patch_namespaced_config_map("r", "default", {"data": {"k": "3"}})
    async with watch.Watch().stream(
        core.list_namespaced_config_map,
        "default",
        resource_version=relisted.metadata.resource_version,
        timeout_seconds=5,
    ) as stream:
        event = await anext(aiter(stream))
    assert (event["type"], event["object"].data) == ("MODIFIED", {"k": "3"})


async def test_disconnected_watch_releases_its_subscription(kubesim: KubeSim):
    async with aiohttp.ClientSession() as http:
        response = await http.get(f"{kubesim.url}/api/v1/namespaces/default/configmaps?watch=1")
        await asyncio.sleep(0.1)
        assert len([s for s in kubesim.store.log.subscriptions() if s.key]) == 1
        response.close()
    for _ in range(50):
        if not [s for s in kubesim.store.log.subscriptions() if s.key]:
            break
        await asyncio.sleep(0.02)
    assert not [s for s in kubesim.store.log.subscriptions() if s.key]


async def test_send_initial_events_ends_with_marked_bookmark(kubesim: KubeSim):
    """The streaming-list form of watch (Kopf's `initial_streaming`, client-go's WatchList)."""
    async with aiohttp.ClientSession() as http:
        body = {"metadata": {"name": "i", "labels": {"app": "i"}}}
        await http.post(f"{kubesim.url}/api/v1/namespaces/default/configmaps", json=body)
        url = (
            f"{kubesim.url}/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=true&labelSelector=app"
            "&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1"
        )
        async with http.get(url) as response:
            events = [json.loads(line) async for line in response.content]
    assert events[0]["type"] == "ADDED" and events[0]["object"]["metadata"]["name"] == "i"
    assert events[1]["type"] == "BOOKMARK"
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


async def test_json_patch_with_failed_test_op_is_422_and_changes_nothing(core):
    """Acceptance 3 (JSON patch): kubernetes_asyncio sends a list body as application/json-patch+json."""
    created = await core.create_namespaced_config_map("default", _cm("j", k="1"))
    rv = created.metadata.resource_version
    ok = await core.patch_namespaced_config_map(
        "j",
        "default",
        [
            {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
            {"op": "add", "path": "/data/n", "value": "2"},
        ],
    )
    assert ok.data == {"k": "1", "n": "2"}
    with pytest.raises(ApiException) as exc:
        await core.patch_namespaced_config_map(  # the same precondition, now stale: Kopf's finalizer patch
            "j",
            "default",
            [
                {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
                {"op": "remove", "path": "/data/n"},
            ],
        )
    assert exc.value.status == 422 and json.loads(exc.value.body)["reason"] == "Invalid"
    assert (await core.read_namespaced_config_map("j", "default")).data == {"k": "1", "n": "2"}
