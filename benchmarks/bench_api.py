"""Allocation API throughput and latency with warm idle workers, 16 concurrent clients, on kubesim.

Usage (about a minute; not part of the test suite)::

    .venv/bin/python benchmarks/bench_api.py --allocations 400 --clients 16 --json out.json

kubesim (the emulated API server) runs in this process; the API is the real
``buildkit-controller api`` process, so its CPU time is its own. Idle, ready workers are prepared
beforehand (as the operator would keep them warm), so each allocation is: authenticate a static token,
authorize, claim a worker with a resourceVersion-guarded patch, issue a P-256 certificate, record its
serial. The same run measures ``GET /healthz`` on the same server with the same clients as the
reference for the cost of an HTTP request itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from buildkit_controller.controller.crds import all_crds
from buildkit_controller.controller.manifests.names import API_VERSION, IDLE_LABEL, POOL_LABEL
from buildkit_controller.controller.manifests.secrets import pool_secret
from buildkit_controller.controller.reconciler.kube import Kube
from buildkit_controller.core.models import Pool
from buildkit_controller.core.pool_certs import plan_pool_certificates
from buildkit_controller.plugins.token import new_static_token
from kubesim import KubeSim

sys.path.insert(0, str(Path(__file__).parent))
from _proc import cpu_seconds, free_port

EXE = str(Path(sys.executable).parent / "buildkit-controller")
READY = [{"type": "Ready", "status": "True", "reason": "PodReady", "message": "",
          "lastTransitionTime": "2026-01-01T00:00:00Z"}]






async def prepare(kube: Kube, workers: int) -> None:
    for crd in all_crds():
        await kube.create(crd)
    body = await kube.create({"apiVersion": API_VERSION, "kind": "BuildKitPool",
                              "metadata": {"name": "bench", "namespace": "default"},
                              "spec": {"scaling": {"min": 0, "max": workers}}})
    pool = Pool.from_body(body)
    for logical, data in plan_pool_certificates(pool, {}, datetime.now(UTC)).data.items():
        await kube.create(pool_secret(pool, logical, data))
    for n in range(workers):
        name = f"bench-worker-{n:05d}"
        await kube.create({"apiVersion": API_VERSION, "kind": "BuildKitWorker",
                           "metadata": {"name": name, "namespace": "default",
                                        "labels": {POOL_LABEL: "bench", IDLE_LABEL: "true"}},  # as the operator
                           "spec": {"poolRef": {"name": "bench"}}})
        await kube.patch(API_VERSION, "BuildKitWorker", name, "default", {"status": {
            "phase": "Idle", "podName": name, "endpoint": f"tcp://127.1.{n // 250}.{n % 250 + 1}:1234",
            "conditions": READY}}, status=True)


async def drive(url: str, headers: dict[str, str], clients: int, requests: int,
                request: Any) -> tuple[list[float], float, int]:
    latencies: list[float] = []
    failures = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(requests):
        queue.put_nowait(n)

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal failures
        while not queue.empty():
            queue.get_nowait()
            started = time.perf_counter()
            response = await request(http, url, headers)
            latencies.append(time.perf_counter() - started)
            failures += response.status_code != 200

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=60) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        return latencies, time.perf_counter() - started, failures


def allocate(http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> Any:
    return http.post(f"{url}/api/v1/workers/allocate", json={"poolName": "bench", "ttl": "1h"}, headers=headers)


def health(http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> Any:
    return http.get(f"{url}/healthz")


def summary(name: str, latencies: list[float], elapsed: float, failures: int, cpu: float) -> dict[str, Any]:
    ordered = sorted(latencies)
    return {"case": name, "requests": len(latencies), "failures": failures,
            "per_second": round(len(latencies) / elapsed, 1),
            "p50_ms": round(1000 * statistics.median(ordered), 2),
            "p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 2),
            "api_cpu_ms_per_request": round(1000 * cpu / max(len(latencies), 1), 3)}


async def run(allocations: int, clients: int) -> dict[str, Any]:
    tokens = Path(tempfile.mkdtemp(prefix="bench-api-tokens-"))
    token, entry = new_static_token("bench", None)
    (tokens / "bench").write_text(json.dumps(entry))
    async with KubeSim(https_port=None, kubelet=False) as sim:
        kube = await Kube.connect(host=sim.url)
        await prepare(kube, allocations)
        await kube.close()
        port = free_port()
        api = subprocess.Popen([EXE, "api", "--server", sim.url, "--listen", f"127.0.0.1:{port}"],
                               env={**os.environ, "BKC_AUTH_TOKEN_DIR": str(tokens)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url, headers = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}
        try:
            async with httpx.AsyncClient() as http:
                for _ in range(100):
                    try:
                        await http.get(f"{url}/healthz")
                        break
                    except httpx.TransportError:
                        await asyncio.sleep(0.1)
            results = []
            for name, request, count in [("healthz (reference)", health, allocations), ("allocate", allocate,
                                                                                          allocations)]:
                before = cpu_seconds(api.pid)
                latencies, elapsed, failures = await drive(url, headers, clients, count, request)
                results.append(summary(name, latencies, elapsed, failures, cpu_seconds(api.pid) - before))
        finally:
            api.terminate()
            api.wait(timeout=30)
    return {"clients": clients, "results": results,
            "allocate_to_healthz_latency_ratio": round(results[1]["p50_ms"] / max(results[0]["p50_ms"], 1e-9), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--allocations", type=int, default=400)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report = asyncio.run(run(args.allocations, args.clients))
    for row in report["results"]:
        print(f"{row['case']:20} {row['requests']:5} requests ({row['failures']} failed)  "
              f"{row['per_second']:8.1f}/s  p50 {row['p50_ms']:7.2f} ms  p99 {row['p99_ms']:7.2f} ms  "
              f"API CPU {row['api_cpu_ms_per_request']:.2f} ms")
    print(f"allocate p50 / healthz p50: {report['allocate_to_healthz_latency_ratio']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    sys.exit(0 if report["results"][1]["failures"] == 0 else 1)


if __name__ == "__main__":
    main()
