"""`buildkit-controller dev` runs the whole system, and the README's walkthrough works against it.

Everything is real but the emulated parts: kubesim stands in for the API server and kubelet (pods
are local processes) and for buildkitd (its stand-in); the operator, API, gateway, kubectl, curl,
jq and openssl are the real programs.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from kubesim.buildkitd.proto import control_pb2, control_pb2_grpc

from .devmode import ROOT, free_port, running_dev


def walkthrough() -> str:
    """The README's two walkthrough blocks (bkctl, then the seed's curl), as one script."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.DOTALL)
    bkctl = next(block for block in blocks if "bkctl allocate" in block)
    curl = next(block for block in blocks if "workers/allocate" in block)
    return bkctl + curl


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path, int]]:
    port = free_port()
    with running_dev(tmp_path, port) as process:
        yield process, tmp_path, port


def run_shell(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=180, check=False)


@pytest.mark.timeout(300)
def test_readme_walkthrough_works_verbatim_against_dev_mode(dev: tuple[subprocess.Popen[str], Path, int]) -> None:
    process, workdir, port = dev
    assert process.poll() is None, (workdir / "dev.log").read_text()[-3000:]
    env = {**os.environ, "KUBECONFIG": str(workdir / ".dev" / "kubeconfig")}
    wait_for_pool(workdir)
    (workdir / ".venv").symlink_to(ROOT / ".venv")  # the README runs from the checkout: .venv/bin on PATH
    script = walkthrough().replace("127.0.0.1:8082", f"127.0.0.1:{port}")
    result = run_shell(script, workdir, env)
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-3000:]
    out = result.stdout
    assert "[FAIL]" not in out and out.count("[ ok ]") >= 8, out  # doctor: every check, gateway included
    worker = re.search(r"^workerName:\s+(\S+)", out, re.MULTILINE)  # bkctl status
    assert worker, out
    assert f"kubesim-{worker.group(1)}" in out  # ListWorkers through the gateway reached that worker
    assert re.search(r"^default\s+my-buildkit-pool\s+Running", out, re.MULTILINE), out  # bkctl pools
    assert "URI:buildkit://allocation/" in out  # the seed's curl recipe
    assert "Allocated" in out
    assert out.count('"released"') == 1  # curl's release; bkctl release prints text
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    assert 'buildkit_worker_allocations_total{pool="default/my-buildkit-pool",result="success"} 3.0' in metrics
    token = (workdir / ".dev" / "token").read_text().strip()
    allocation_token = __import__("json").loads((workdir / "certs.json").read_text())["token"]
    log = (workdir / "dev.log").read_text()
    assert token not in log and allocation_token not in log
    everything = run_shell("kubectl get secrets,events,configmaps,buildkitworkers,buildkitpools -A -o json",
                           workdir, env)
    assert everything.returncode == 0 and allocation_token not in everything.stdout
    pods = "kubectl get pods -l buildkit.smrt-devops.net/purpose=worker -o name"
    for _ in range(30):  # the released worker's pod drains, then goes
        if not run_shell(pods, workdir, env).stdout.strip():
            break
        time.sleep(1)
    assert run_shell(pods, workdir, env).stdout.strip() == ""


def descendants(root: int) -> set[int]:
    """Every process below ``root`` (pods run in sessions of their own, so walk parent links)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    return {pid for pid in pids if Path(f"/proc/{pid}").exists()
            and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()}


@pytest.mark.timeout(120)
def test_ctrl_c_stops_everything(dev: tuple[subprocess.Popen[str], Path, int]) -> None:
    process = dev[0]
    time.sleep(3)
    children = descendants(process.pid)
    assert len(children) >= 2, "the gateway pod (sandbox and process) should be running"
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0
    time.sleep(1)
    assert alive(children) == set(), "processes left behind after Ctrl-C"


def wait_for_pool(workdir: Path) -> None:
    env = {**os.environ, "KUBECONFIG": str(workdir / ".dev" / "kubeconfig")}
    ready = "kubectl get bkp my-buildkit-pool -o jsonpath='{.status.phase}'"
    for _ in range(60):
        if run_shell(ready, workdir, env).stdout == "ScaledToZero":
            return
        time.sleep(1)
    raise AssertionError("the example pool never became ready")


def service_address(workdir: Path) -> str:
    env = {**os.environ, "KUBECONFIG": str(workdir / ".dev" / "kubeconfig")}
    ip = run_shell("kubectl get svc my-buildkit-pool -o jsonpath='{.spec.clusterIP}'", workdir, env).stdout
    return f"{ip}:1235"


def allocate(port: int, workdir: Path) -> dict[str, Any]:
    token = (workdir / ".dev" / "token").read_text().strip()
    response = httpx.post(f"http://127.0.0.1:{port}/api/v1/workers/allocate", timeout=120,
                          json={"poolName": "my-buildkit-pool", "ttl": "10m"},
                          headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def channel(address: str, answer: dict[str, Any]) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(base64.b64decode(answer["caCert"]),
                                               base64.b64decode(answer["clientKey"]),
                                               base64.b64decode(answer["clientCert"]))
    return grpc.secure_channel(address, credentials,
                               options=[("grpc.ssl_target_name_override", "my-buildkit-pool.default.svc")])


@pytest.mark.timeout(300)
def test_grpc_through_the_gateway_service_reaches_the_allocated_worker_until_release(
        dev: tuple[subprocess.Popen[str], Path, int]) -> None:
    """Issue 7's end-to-end path: API → certificate → gateway Service → the allocated worker only."""
    process, workdir, port = dev
    assert process.poll() is None
    wait_for_pool(workdir)
    answer = allocate(port, workdir)
    address = service_address(workdir)
    with channel(address, answer) as ch:
        stub = control_pb2_grpc.ControlStub(ch)
        workers = stub.ListWorkers(control_pb2.ListWorkersRequest(), timeout=20)
        assert [w.ID for w in workers.record] == [f"kubesim-{answer['workerName']}"]
        chunk = os.urandom(1 << 20)
        echoed = b"".join(m.data for m in stub.Session(iter([control_pb2.BytesMessage(data=chunk)] * 8),
                                                       timeout=60))
        assert echoed == chunk * 8  # 8 MiB up and back down through the gateway
        stream = stub.Session(iter(lambda: (time.sleep(0.2), control_pb2.BytesMessage(data=b"x"))[1], None),
                              timeout=60)
        assert next(stream).data == b"x"  # a live stream
        token = (workdir / ".dev" / "token").read_text().strip()
        released_at = time.monotonic()
        httpx.post(f"http://127.0.0.1:{port}/api/v1/workers/release", json={"token": answer["token"]},
                   headers={"Authorization": f"Bearer {token}"}, timeout=30).raise_for_status()
        with pytest.raises(grpc.RpcError):
            for _ in stream:
                pass
        assert time.monotonic() - released_at < 3  # closed about a second after the release
    with channel(address, answer) as ch, pytest.raises(grpc.RpcError):
        control_pb2_grpc.ControlStub(ch).ListWorkers(control_pb2.ListWorkersRequest(), timeout=10)


IDLE_POOL = """
apiVersion: buildkit.smrt-devops.net/v1alpha1
kind: BuildKitPool
metadata:
  name: my-buildkit-pool
spec:
  scaling: {min: 0, max: 2, idleTimeout: 6s}
"""


@pytest.fixture
def idle_pool(tmp_path: Path) -> list[str]:
    path = tmp_path / "idle-pool.yaml"
    path.write_text(IDLE_POOL)
    return [str(path)]


@pytest.mark.timeout(300)
def test_idle_timeout_deletes_a_worker_only_after_its_connections_are_gone(
        tmp_path: Path, idle_pool: list[str]) -> None:
    """Real traffic through the gateway moves the worker's activity; the pool's Connections column
    counts it; the worker outlives idleTimeout while connected, and goes once it is quiet."""
    port = free_port()
    with running_dev(tmp_path, port, "--pool", idle_pool[0]):
        wait_for_pool(tmp_path)
        env = {**os.environ, "KUBECONFIG": str(tmp_path / ".dev" / "kubeconfig")}
        answer = allocate(port, tmp_path)
        with channel(service_address(tmp_path), answer) as ch:
            stub = control_pb2_grpc.ControlStub(ch)
            stream = stub.Session(iter(lambda: (time.sleep(0.5), control_pb2.BytesMessage(data=b"."))[1], None),
                                  timeout=120)
            started = time.monotonic()
            connections = ""
            while time.monotonic() - started < 12:  # twice idleTimeout, connected the whole time
                next(stream)
                connections = run_shell("kubectl get bkp my-buildkit-pool -o jsonpath='{.status.connections.active}'",
                                        tmp_path, env).stdout or connections
            assert connections == "1", "the Connections column counts the live connection"
            worker = run_shell(f"kubectl get bkw {answer['workerName']} -o json", tmp_path, env)
            assert worker.returncode == 0, "deleted while still connected"
            assert json.loads(worker.stdout)["status"]["activeConnections"] == 1
            stream.cancel()
        closed = time.monotonic()
        gone = f"kubectl get bkw {answer['workerName']} -o name"
        while time.monotonic() - closed < 60 and run_shell(gone, tmp_path, env).returncode == 0:
            time.sleep(0.5)
        quiet_for = time.monotonic() - closed
        assert run_shell(gone, tmp_path, env).returncode != 0, "never deleted after going quiet"
        assert quiet_for >= 5, f"deleted {quiet_for:.1f}s after the last connection closed (idleTimeout 6s)"
