"""Operator reconcile throughput and memory with many pools and workers, on kubesim.

Usage (about 2-4 minutes on 2 cores; not part of the test suite)::

    .venv/bin/python benchmarks/bench_operator.py --pools 200 --workers-per-pool 10 --json out.json

kubesim (the emulated API server and kubelet) runs in this process; its pods use images that are not
mapped to a command, so they become Ready without a process (this measures the operator, not
buildkitd). The operator is the real ``buildkit-controller operator`` process, so its CPU time and
peak RSS are its own. A run at a tenth of the size comes first, in the same invocation, as the
reference: the report gives per-worker costs of both and their ratio (1.0 = linear scaling).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from buildkit_controller.controller.crds import all_crds
from buildkit_controller.controller.manifests.names import API_VERSION
from buildkit_controller.controller.reconciler.kube import Kube
from kubesim import KubeSim

sys.path.insert(0, str(Path(__file__).parent))
from _proc import cpu_seconds, peak_rss_mib

EXE = str(Path(sys.executable).parent / "buildkit-controller")






def pool(index: int, workers: int) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "BuildKitPool",
            "metadata": {"name": f"bench-{index:04d}", "namespace": "default"},
            "spec": {"scaling": {"min": workers, "max": workers + 2},
                     "buildkitImage": "bench/not-mapped:1", "gatewayImage": "bench/not-mapped-gateway:1"}}


async def idle_workers(kube: Kube) -> int:
    workers = await kube.list(API_VERSION, "BuildKitWorker", None)
    return sum((w.get("status") or {}).get("phase") == "Idle" for w in workers)


async def measure(pools: int, per_pool: int, timeout: float) -> dict[str, Any]:
    async with KubeSim(https_port=None, sync_period=5.0) as sim:
        kube = await Kube.connect(host=sim.url)
        for crd in all_crds():
            await kube.create(crd)
        operator = subprocess.Popen([EXE, "operator", "--server", sim.url, "--standalone", "--resync", "30"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            await asyncio.sleep(2)
            started, cpu_before = time.monotonic(), cpu_seconds(operator.pid)
            for index in range(pools):
                await kube.create(pool(index, per_pool))
            target, idle = pools * per_pool, 0
            while idle < target and time.monotonic() - started < timeout:
                await asyncio.sleep(1)
                idle = await idle_workers(kube)
            elapsed = time.monotonic() - started
            cpu = cpu_seconds(operator.pid) - cpu_before
            rss = peak_rss_mib(operator.pid)
        finally:
            operator.terminate()
            operator.wait(timeout=30)
            await kube.close()
    return {"pools": pools, "workers": target, "idle_reached": idle, "seconds": round(elapsed, 2),
            "workers_per_second": round(idle / elapsed, 1), "operator_cpu_seconds": round(cpu, 2),
            "operator_cpu_ms_per_worker": round(1000 * cpu / max(idle, 1), 2),
            "operator_peak_rss_mib": round(rss, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pools", type=int, default=200)
    parser.add_argument("--workers-per-pool", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    reference = asyncio.run(measure(max(1, args.pools // 10), args.workers_per_pool, args.timeout))
    full = asyncio.run(measure(args.pools, args.workers_per_pool, args.timeout))
    ratio = full["operator_cpu_ms_per_worker"] / max(reference["operator_cpu_ms_per_worker"], 1e-9)
    report = {"reference": reference, "full": full, "cpu_per_worker_ratio_full_to_reference": round(ratio, 2)}
    for name in ("reference", "full"):
        row = report[name]
        print(f"{name:9} {row['pools']:4} pools {row['idle_reached']:5}/{row['workers']} idle workers in "
              f"{row['seconds']:7.1f}s  {row['workers_per_second']:6.1f} workers/s  operator CPU "
              f"{row['operator_cpu_ms_per_worker']:6.2f} ms/worker  peak RSS {row['operator_peak_rss_mib']:.0f} MiB")
    print(f"CPU per worker, full / reference: {report['cpu_per_worker_ratio_full_to_reference']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    sys.exit(0 if full["idle_reached"] == full["workers"] else 1)


if __name__ == "__main__":
    main()
