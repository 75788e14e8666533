"""Benchmark kubesim: create, patch and watch-delivery throughput with N objects, and memory.

Run:  .venv/bin/python benchmarks/bench_kubesim.py [--objects 10000] [--writers 20] [--watchers 2]

Clients and server share one process and event loop (the way tests use kubesim in-process), so the
numbers are end-to-end HTTP requests/s on one core, not server-only capacity. Watch delivery is
checked for correctness while it is measured: every watcher must see each create and patch exactly
once, in resourceVersion order.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
import tracemalloc
from typing import Any

import aiohttp

from kubesim import KubeSim

NS_URL = "/api/v1/namespaces/default/configmaps"


async def _run_writers(
    session: aiohttp.ClientSession, base: str, count: int, writers: int, kind: str
) -> float:
    async def writer(index: int) -> None:
        for i in range(index, count, writers):
            if kind == "create":
                body = {"metadata": {"name": f"cm-{i}", "labels": {"bench": "yes"}}, "data": {"i": str(i)}}
                async with session.post(base + NS_URL, json=body) as response:
                    assert response.status == 201, await response.text()
            else:
                headers = {"Content-Type": "application/merge-patch+json"}
                body = {"data": {"i": str(i), "patched": "yes"}}
                async with session.patch(
                    f"{base}{NS_URL}/cm-{i}", data=json.dumps(body), headers=headers
                ) as r:
                    assert r.status == 200, await r.text()

    started = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    return time.perf_counter() - started


async def _watch(session: aiohttp.ClientSession, base: str, rv: str, expected: int, seen: list[Any]) -> float:
    """Read events until ``expected`` arrived; returns the time the last one arrived."""
    url = f"{base}{NS_URL}?watch=true&resourceVersion={rv}&timeoutSeconds=600"
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=None)) as response:
        async for line in response.content:
            event = json.loads(line)
            seen.append(
                (
                    event["type"],
                    event["object"]["metadata"]["name"],
                    int(event["object"]["metadata"]["resourceVersion"]),
                )
            )
            if len(seen) == expected:
                break
    return time.perf_counter()


def _check(seen: list[Any], count: int) -> None:
    versions = [rv for _, _, rv in seen]
    assert versions == sorted(set(versions)), "duplicated or out-of-order events"
    assert len({(t, n) for t, n, _ in seen}) == 2 * count, "lost events"


def store_memory(objects: int) -> dict[str, float]:
    """Heap used by ``objects`` ConfigMaps in the store (and their creation events), measured apart
    from the throughput run because tracemalloc slows everything down severalfold."""
    store = KubeSim(https_port=None, history=objects).store
    ns_type, cm_type = store.registry.get("", "v1", "namespaces"), store.registry.get("", "v1", "configmaps")
    assert ns_type is not None and cm_type is not None
    store.create(ns_type, "", {"metadata": {"name": "default"}})
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(objects):
        body = {"metadata": {"name": f"cm-{i}", "labels": {"bench": "yes"}}, "data": {"i": str(i)}}
        store.create(cm_type, "default", body)
    used, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "store_bytes_per_object": round((used - before) / objects),
        "store_heap_mib": round((used - before) / 2**20, 1),
        "store_heap_peak_mib": round(peak / 2**20, 1),
    }


async def bench(objects: int, writers: int, watchers: int) -> dict[str, Any]:
    async with KubeSim(https_port=None, history=3 * objects) as sim:
        base = sim.url
        connector = aiohttp.TCPConnector(limit=writers + watchers + 4)
        async with aiohttp.ClientSession(connector=connector) as session:
            start_rv = str(sim.store.resource_version)
            seen: list[list[Any]] = [[] for _ in range(watchers)]
            watch_tasks = [asyncio.create_task(_watch(session, base, start_rv, 2 * objects, s)) for s in seen]
            await asyncio.sleep(0.2)
            t0 = time.perf_counter()
            create_s = await _run_writers(session, base, objects, writers, "create")
            patch_s = await _run_writers(session, base, objects, writers, "patch")
            last_event = max(await asyncio.gather(*watch_tasks))
            for events in seen:
                _check(events, objects)
            list_t0 = time.perf_counter()
            async with session.get(f"{base}{NS_URL}?labelSelector=bench%3Dyes") as response:
                listed = len((await response.json())["items"])
            list_s = time.perf_counter() - list_t0
    deliveries = 2 * objects * watchers
    return {
        "objects": objects,
        "writers": writers,
        "watchers": watchers,
        "create_per_s": round(objects / create_s),
        "patch_per_s": round(objects / patch_s),
        "watch_events_delivered": deliveries,
        "watch_delivery_per_s": round(deliveries / (last_event - t0)),
        "watch_lag_after_last_write_s": round(last_event - (t0 + create_s + patch_s), 3),
        "list_all_s": round(list_s, 3),
        "listed": listed,
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "watch_correct": True,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--writers", type=int, default=20)
    parser.add_argument("--watchers", type=int, default=2)
    args = parser.parse_args()
    result = asyncio.run(bench(args.objects, args.writers, args.watchers))
    result.update(store_memory(args.objects))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
