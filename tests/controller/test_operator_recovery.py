"""Recovery: the operator process killed mid-creation, injected API errors, dropped watches.

kubesim is the emulated API server; the operator is the real ``buildkit-controller operator``
process (or the in-process Kopf operator for fault injection).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from buildkit_controller.controller.manifests.names import API_VERSION, POOL_LABEL
from buildkit_controller.controller.reconciler.kube import Kube
from kubesim import KubeSim

from .test_operator import eventually, pool_body, worker_pods
from .test_operator import operator as operator  # noqa: PLC0414 - a fixture, used by name

EXE = str(Path(sys.executable).parent / "buildkit-controller")


async def start_operator(url: str, log: Path, *flags: str) -> asyncio.subprocess.Process:
    with log.open("a") as sink:  # the child keeps its own copy of the descriptor
        return await asyncio.create_subprocess_exec(
            EXE, "operator", "--server", url, "--resync", "0.5", *(flags or ("--standalone",)),
            stdout=asyncio.subprocess.DEVNULL, stderr=sink)


@pytest.fixture
async def processes() -> AsyncIterator[list[asyncio.subprocess.Process]]:
    started: list[asyncio.subprocess.Process] = []
    yield started
    for process in started:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def converged(kube: Kube, workers: int) -> bool:
    secrets = await kube.list("v1", "Secret", "default", {POOL_LABEL: "my-buildkit-pool"})
    found = await kube.list(API_VERSION, "BuildKitWorker", "default")
    pods = await worker_pods(kube)
    deployments = await kube.list("apps/v1", "Deployment", "default")
    return len(secrets) == 5 and len(found) == workers and len(pods) == workers and len(deployments) == 1


async def test_sigkill_mid_creation_then_restart_converges_without_duplicates(
        kubesim: KubeSim, kube: Kube, processes: list[asyncio.subprocess.Process], tmp_path: Path) -> None:
    await kube.create(pool_body({"scaling": {"min": 3, "max": 5}}))
    log = tmp_path / "operator.log"  # kept by pytest for a failing run
    first = await start_operator(kubesim.url, log)
    processes.append(first)

    async def some_secret() -> bool:
        return bool(await kube.list("v1", "Secret", "default", {POOL_LABEL: "my-buildkit-pool"}))

    await eventually(some_secret, timeout=30)
    os.kill(first.pid, signal.SIGKILL)
    await first.wait()
    processes.append(await start_operator(kubesim.url, log))
    await eventually(lambda: converged(kube, 3), timeout=40)
    await asyncio.sleep(2)  # several resyncs later: still no duplicates
    assert await converged(kube, 3)


async def test_injected_errors_and_dropped_watches_are_recovered(kubesim: KubeSim,
                                                                 operator: Kube) -> None:
    rules = [kubesim.faults.fail_next(3, 500, verb="create", resource="secrets"),
             kubesim.faults.fail_next(2, 409, verb="patch", resource="buildkitworkers/status"),
             kubesim.faults.fail_next(2, 500, verb="create", resource="pods")]
    await operator.create(pool_body({"scaling": {"min": 2, "max": 4}}))
    await asyncio.sleep(0.5)
    assert kubesim.drop_watches() > 0
    kubesim.faults.fail_next(1, 410, verb="watch", resource="buildkitworkers")
    await eventually(lambda: converged(operator, 2), timeout=40)

    async def workers_provisioning() -> Any:
        workers = await operator.list(API_VERSION, "BuildKitWorker", "default")
        return all((w.get("status") or {}).get("phase") == "Provisioning" for w in workers)

    await eventually(workers_provisioning)
    assert [rule.hits for rule in rules] == [3, 2, 2], "every injected failure was really served"


async def test_peering_lets_one_replica_work_and_fails_over(
        kubesim: KubeSim, kube: Kube, processes: list[asyncio.subprocess.Process], tmp_path: Path) -> None:
    """Two real operator processes with Kopf peering: only the higher priority acts; when it dies,
    the other takes over once the dead one's peering entry expires."""
    low, high = tmp_path / "low.log", tmp_path / "high.log"
    processes.append(await start_operator(kubesim.url, low, "--priority", "10", "--peering-lifetime", "8"))
    leader = await start_operator(kubesim.url, high, "--priority", "20", "--peering-lifetime", "8")
    processes.append(leader)

    async def low_stands_by() -> bool:
        peering = await kube.get("kopf.dev/v1", "ClusterKopfPeering", "buildkit-controller", None) or {}
        text = low.read_text()
        # Started first, it pauses (and says so); started second, it never resumes from its start-up pause.
        paused = "Pausing operations in favour of" in text or "Resuming operations" not in text
        return len(peering.get("status") or {}) == 2 and paused

    await eventually(low_stands_by, timeout=30)
    await kube.create(pool_body({"scaling": {"min": 1, "max": 3}}))
    await eventually(lambda: converged(kube, 1), timeout=30)
    assert "WorkerCreated" in high.read_text()
    assert "WorkerCreated" not in low.read_text()
    os.kill(leader.pid, signal.SIGKILL)
    await leader.wait()
    await kube.patch(API_VERSION, "BuildKitPool", "my-buildkit-pool", "default",
                     {"spec": {"scaling": {"min": 2}}})
    await eventually(lambda: converged(kube, 2), timeout=30)
    assert "WorkerCreated" in low.read_text()
