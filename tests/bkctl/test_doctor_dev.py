"""``bkctl doctor`` against the dev mode, where the gateway handshake is real.

Everything runs for real (operator, API, the pool's gateway pod running ``buildkit-gateway``) except the
emulated parts: kubesim plays the Kubernetes API server and kubelet (pods are local processes) and a
stand-in plays buildkitd behind the gateway. One dev mode serves the whole module (it takes seconds to
start). The pool's Service is reached at its cluster IP, which kubesim serves on the host, so doctor is
given ``--gateway-endpoint``; the certificate is still checked for the name the API returned.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from buildkit_controller.bkctl.errors import EXIT_CHECKS_FAILED

from ..devmode import free_port, running_dev
from ..test_dev_mode import service_address, wait_for_pool
from .conftest import BKCTL, clean_env

POOL = "my-buildkit-pool"  # the dev mode's example pool


@dataclass(frozen=True)
class Dev:
    workdir: Path
    env: dict[str, str]
    gateway: str

    def doctor(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([BKCTL, "doctor", "-p", POOL, *args], env=self.env, capture_output=True, text=True,
                              timeout=120, check=False)

    def kubesim_address(self) -> str:
        kubeconfig = yaml.safe_load((self.workdir / ".dev" / "kubeconfig").read_text())
        return urlsplit(kubeconfig["clusters"][0]["cluster"]["server"]).netloc


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    workdir = tmp_path_factory.mktemp("dev")
    port = free_port()
    with running_dev(workdir, port):
        wait_for_pool(workdir)
        token = (workdir / ".dev" / "token").read_text().strip()
        env = clean_env({"BKCTL_ENDPOINT": f"http://127.0.0.1:{port}", "BKCTL_TOKEN": token})
        yield Dev(workdir, env, service_address(workdir))


@pytest.mark.timeout(240)
def test_healthy_dev_mode_passes_every_check(dev: Dev) -> None:
    result = dev.doctor("--gateway-endpoint", dev.gateway, "-o", "json")
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert list(checks) == ["api", "clock", "version", "credentials", "authentication", "allocation",
                            "client certificate", "gateway", "release"]
    assert {c["status"] for c in checks.values()} == {"passed"}
    gateway = checks["gateway"]["detail"]
    assert f"TLS handshake with {dev.gateway} (as {POOL}.default.svc): TLSv1.3" in gateway
    assert gateway.endswith("ALPN h2; a BuildKit worker answered over HTTP/2 through it")
    assert checks["client certificate"]["detail"].startswith(f"signed by CN=default/{POOL} tenant CA")
    allocation_id = checks["release"]["detail"].split()[1]
    status = subprocess.run([BKCTL, "status", allocation_id], env=dev.env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert "not found (404)" in status.stderr  # doctor released what it allocated


@pytest.mark.timeout(240)
def test_gateway_with_a_certificate_from_another_ca(dev: Dev) -> None:
    """Something else answers at the gateway address (here kubesim's own TLS port, with kubesim's CA)."""
    wrong = dev.kubesim_address()
    result = dev.doctor("--gateway-endpoint", wrong)
    assert result.returncode == EXIT_CHECKS_FAILED, result.stdout + result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    failed = [i for i, line in enumerate(lines) if line.startswith("[FAIL]")]
    assert len(failed) == 1
    assert lines[failed[0]].startswith(f"[FAIL] gateway: the gateway at {wrong} presents a certificate not signed "
                                       "by the pool's CA returned with the allocation")
    assert lines[failed[0] + 1].startswith("       fix: the address is not this pool's gateway (check "
                                           "--gateway-endpoint/BKCTL_GATEWAY_ENDPOINT)")
    assert lines[-1].startswith("[ ok ] release: allocation ")


@pytest.mark.timeout(240)
def test_allocate_status_pools_and_release_against_the_dev_mode(dev: Dev) -> None:
    def bkctl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([BKCTL, *args], env=dev.env, capture_output=True, text=True, timeout=180, check=False)

    allocated = bkctl("allocate", "--pool", POOL, "--output", "json")
    assert allocated.returncode == 0, allocated.stderr
    answer = json.loads(allocated.stdout)
    assert answer.keys() >= {"workerName", "token", "endpoint", "gatewayEndpoint", "expiresAt", "caCert",
                             "clientCert", "allocationId"}
    assert "clientKey" not in answer  # the CSR path
    status = bkctl("status", answer["token"], "-o", "json")
    assert json.loads(status.stdout)["phase"] == "Allocated"
    pools = bkctl("pools")
    assert "allocated=1" in pools.stdout and POOL in pools.stdout
    assert bkctl("release", answer["token"]).returncode == 0
    env = {**os.environ, "KUBECONFIG": str(dev.workdir / ".dev" / "kubeconfig")}
    get = ["kubectl", "get", "bkw", answer["workerName"], "--ignore-not-found", "-o", "name"]
    for _ in range(60):  # the worker drains (preStop), then goes
        if not subprocess.run(get, env=env, capture_output=True, text=True, timeout=60, check=True).stdout.strip():
            break
        time.sleep(1)
    else:
        raise AssertionError(f"worker {answer['workerName']} still there a minute after the release")
    shutil.rmtree(answer["certsDir"])
