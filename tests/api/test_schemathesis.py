"""schemathesis, driven by the published OpenAPI document, against the real `buildkit-controller api`
process (and kubesim, the emulated API server, as a process): no 5xx, no response that breaks the
document. ``positive_data_acceptance`` is left out: some schema-valid inputs (a PEM that is not a
CSR, a size we do not offer yet) are rightly refused with 400.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from buildkit_controller.controller.crds import all_crds
from buildkit_controller.controller.reconciler.kube import Kube
from buildkit_controller.plugins.token import new_static_token
from kubesim.testing import run_kubesim

from .conftest import API_NAMESPACE, Cluster

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def prepare(url: str, tokens: Path) -> str:
    kube = await Kube.connect(host=url)
    try:
        for crd in all_crds():
            await kube.create(crd)
        await kube.create(API_NAMESPACE)
        cluster = Cluster(kube, tokens)
        pool = await cluster.pool("builds", scaling={"max": 3})
        await cluster.idle_workers(pool, 3)
    finally:
        await kube.close()
    token, entry = new_static_token("fuzzer", None)
    tokens.mkdir(exist_ok=True)
    (tokens / "fuzzer").write_text(__import__("json").dumps(entry))
    return token


@pytest.mark.timeout(300)
def test_schemathesis_finds_no_server_error_and_no_schema_violation(tmp_path: Path) -> None:
    with run_kubesim(tmp_path, "--no-https") as sim:
        token = asyncio.run(prepare(sim.url, tmp_path / "tokens"))
        port = free_port()
        env = {**os.environ, "BKC_AUTH_TOKEN_DIR": str(tmp_path / "tokens")}
        api = subprocess.Popen([str(BIN / "buildkit-controller"), "api", "--server", sim.url,
                                "--listen", f"127.0.0.1:{port}"], env=env, stdout=subprocess.DEVNULL,
                               stderr=(tmp_path / "api.log").open("w"))
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                with socket.socket() as probe:
                    if probe.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.1)
            result = subprocess.run(
                [str(BIN / "schemathesis"), "run", f"http://127.0.0.1:{port}/api/v1/openapi.json",
                 "--checks", "all", "--exclude-checks", "positive_data_acceptance",
                 "--max-examples", "25", "--seed", "20261130", "--request-timeout", "20",
                 "-H", f"Authorization: Bearer {token}"],
                capture_output=True, text=True, timeout=240, check=False, cwd=tmp_path)
        finally:
            api.terminate()
            api.wait(timeout=20)
    assert result.returncode == 0, result.stdout[-6000:]
    assert "Server error" not in result.stdout
    assert token not in (tmp_path / "api.log").read_text()
