"""Process hygiene of kubesim's pod runtime: nothing started for a pod outlives it.

Every process of a pod carries ``KUBESIM_POD_UID`` in its environment; these tests look for such
processes in /proc after the pod is deleted, after kubesim stops, and after a ``kubesim serve``
process is killed outright (the pod sandbox, told by pdeathsig, takes the pod's processes with it).
Also: ``kubectl logs``-style log reads, restarts with exit codes, exec liveness probes.
"""

from __future__ import annotations

import asyncio
import json
import signal
import urllib.request
from pathlib import Path

from kubernetes_asyncio import client

from kubesim import KubeSim
from kubesim.kubelet.process import pids_with
from kubesim.testing import run_kubesim

SHELL = {"example.com/shell": []}  # no entrypoint: the pod's own command runs as is


def shell_pod(name: str, script: str, **spec) -> dict:
    container = {"name": "main", "image": "example.com/shell:1", "command": ["/bin/sh", "-c", script]}
    body = {"containers": [container], "terminationGracePeriodSeconds": 1, **spec}
    return {"metadata": {"name": name}, "spec": body}


async def _wait(predicate, timeout: float = 10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := await predicate()):
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)
    return result


def _pod_pids(uid: str) -> list[int]:
    return pids_with(f"KUBESIM_POD_UID={uid}".encode())


async def test_processes_end_with_the_pod_and_with_kubesim():
    """Acceptance 5 (in-process): a pod's children are gone after deletion and after shutdown."""
    async with (
        KubeSim(images=SHELL) as sim,
        client.ApiClient(client.Configuration(host=sim.url)) as api,
    ):
        core = client.CoreV1Api(api)
        uids = []
        for name in ("one", "two"):
            created = await core.create_namespaced_pod("default", shell_pod(name, "sleep 300 & sleep 300"))
            uids.append(created.metadata.uid)
        await _wait(lambda: _async(len(_pod_pids(uids[0])) >= 3 and len(_pod_pids(uids[1])) >= 3))
        await core.delete_namespaced_pod("one", "default")
        await _wait(lambda: _async(not _pod_pids(uids[0])))
        assert _pod_pids(uids[1])
    assert not _pod_pids(uids[1])


async def _async(value):
    return value


async def test_processes_end_when_a_kubesim_process_is_killed(tmp_path: Path):
    """Acceptance 5 (subprocess): SIGKILL on ``kubesim serve`` still takes every pod process along."""
    with run_kubesim(tmp_path, "--image", "example.com/shell=") as proc:
        body = json.dumps(shell_pod("p", "sleep 300 & sleep 300")).encode()
        request = urllib.request.Request(  # noqa: S310 - our own loopback server
            f"{proc.url}/api/v1/namespaces/default/pods",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            uid = json.loads(response.read())["metadata"]["uid"]
        await _wait(lambda: _async(len(_pod_pids(uid)) >= 3))
        proc.process.send_signal(signal.SIGKILL)
        proc.process.wait()
        await _wait(lambda: _async(not _pod_pids(uid)), timeout=5)


async def test_exit_codes_restarts_and_logs(kubesim_images):
    """restartPolicy OnFailure restarts a failing container (restartCount, lastState exit code);
    its output is served by the pods/log endpoint, the previous run's with ``previous=true``."""
    _, core = kubesim_images
    script = "echo run; exit 3"
    await core.create_namespaced_pod("default", shell_pod("crash", script, restartPolicy="OnFailure"))

    async def restarted():
        pod = await core.read_namespaced_pod("crash", "default")
        statuses = pod.status.container_statuses or []
        return statuses and statuses[0].restart_count >= 1 and statuses[0]

    status = await _wait(restarted)
    assert status.last_state.terminated.exit_code == 3 and status.last_state.terminated.reason == "Error"
    log = await core.read_namespaced_pod_log("crash", "default", container="main")
    assert log.startswith("run")
    previous = await core.read_namespaced_pod_log("crash", "default", previous=True)
    assert previous.startswith("run")

    await core.create_namespaced_pod("default", shell_pod("done", "echo finished", restartPolicy="Never"))

    async def succeeded():
        pod = await core.read_namespaced_pod("done", "default")
        return pod.status.phase == "Succeeded" and pod

    pod = await _wait(succeeded)
    assert pod.status.container_statuses[0].state.terminated.exit_code == 0
    assert await core.read_namespaced_pod_log("done", "default") == "finished\n"


async def test_failing_exec_liveness_probe_restarts_the_container(kubesim_images):
    _, core = kubesim_images
    probe = {
        "exec": {"command": ["/bin/sh", "-c", "test -e /run/alive"]},
        "periodSeconds": 1,
        "failureThreshold": 1,
    }
    body = shell_pod("live", "sleep 300")
    body["spec"]["containers"][0]["livenessProbe"] = probe
    await core.create_namespaced_pod("default", body)

    async def restarted():
        pod = await core.read_namespaced_pod("live", "default")
        statuses = pod.status.container_statuses or []
        return statuses and statuses[0].restart_count >= 1 and statuses[0]

    status = await _wait(restarted)
    assert status.last_state.terminated.exit_code == 128 + signal.SIGTERM
