"""allocate → status → pools → renew → release with the real bkctl against the real API (over kubesim,
the emulated Kubernetes API server)."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import shutil
import stat
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from buildkit_controller.bkctl.errors import EXIT_API, EXIT_NOT_FOUND, EXIT_UNAVAILABLE

from .conftest import BKCTL, Api, FakeServer, Reply, bkctl, clean_env

SEED_FIELDS = {"workerName", "token", "endpoint", "gatewayEndpoint", "expiresAt", "caCert", "clientCert"}


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _check_files(answer: dict[str, str]) -> None:
    directory = Path(answer["certsDir"])
    assert _mode(directory) == 0o700
    for name in ("ca.crt", "client.crt", "client.key"):
        assert _mode(directory / name) == 0o600
    key = load_pem_private_key((directory / "client.key").read_bytes(), password=None)
    cert = x509.load_pem_x509_certificate((directory / "client.crt").read_bytes())
    assert cert.public_key() == key.public_key()
    assert answer["clientKeyPath"] == str(directory / "client.key")


async def test_allocate_status_pools_release(api: Api) -> None:
    allocated = await bkctl("allocate", "-p", "builds", "--job-id", "run-7", "-o", "json", env=api.env())
    assert allocated.code == 0, allocated.err
    answer = allocated.json()
    try:
        assert answer.keys() >= SEED_FIELDS
        assert "clientKey" not in answer  # the CSR path: the key never left this machine
        assert answer["buildkitHost"] == answer["gatewayEndpoint"] == "tcp://builds.default.svc:1235"
        _check_files(answer)
    finally:
        shutil.rmtree(answer["certsDir"])

    status = await bkctl("status", answer["allocationId"], "--json", env=api.env())  # the seed's flag
    assert status.code == 0, status.err
    assert status.json()["workerName"] == answer["workerName"]
    assert status.json()["jobId"] == "run-7"

    pool = await bkctl("status", "--pool", "builds", "-o", "json", env=api.env())
    assert pool.json()["name"] == "builds"
    pools = await bkctl("pools", env=api.env())
    assert pools.code == 0 and "builds" in pools.out

    renewed = await bkctl("renew", answer["token"], "--ttl", "30m", env=api.env())
    assert renewed.code == 0 and renewed.out.startswith("Lease extended until"), renewed.err

    released = await bkctl("release", answer["token"], env=api.env())
    assert (released.code, released.out.strip()) == (0, "Worker released successfully")
    again = await bkctl("release", answer["token"], env=api.env())
    assert again.code == EXIT_NOT_FOUND
    assert again.err.count("\n") == 1 and "not found (404)" in again.err and "Traceback" not in again.err


async def test_env_and_text_outputs_write_into_certs_dir(api: Api, tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    exported = await bkctl("env", "-p", "builds", "--certs-dir", str(certs),
                           "--gateway-endpoint", "gw.example:1234", env=api.env())
    assert exported.code == 0, exported.err
    lines = dict(line.removeprefix("export ").split("=", 1) for line in exported.out.splitlines())
    assert lines["BUILDKIT_HOST"] == "tcp://gw.example:1234"
    assert lines["BKCTL_CLIENT_KEY"] == str(certs / "client.key")
    assert _mode(certs) == 0o700 and _mode(certs / "client.key") == 0o600

    text = await bkctl("allocate", "-p", "builds", "--certs-dir", str(tmp_path / "more"), env=api.env())
    assert text.code == 0, text.err
    assert text.out.startswith("Worker allocated successfully!")
    assert f"Certs:      {tmp_path / 'more'}" in text.out
    assert text.err == ""  # progress goes to stderr only on a terminal


async def test_server_generated_key_is_written(api: Api, tmp_path: Path) -> None:
    result = await bkctl("allocate", "-p", "builds", "--server-key", "--certs-dir", str(tmp_path / "c"),
                         "-o", "json", env=api.env())
    assert result.code == 0, result.err
    answer = result.json()
    assert "clientKey" in answer  # the seed's behaviour, on request
    _check_files(answer)


async def on_terminal(*args: str, env: dict[str, str]) -> tuple[int, bytes, str]:
    """Run bkctl with stderr on a pseudo-terminal: (exit code, stdout, what the terminal showed)."""
    primary, secondary = pty.openpty()
    try:
        proc = await asyncio.create_subprocess_exec(BKCTL, *args, env=clean_env(env), stdout=asyncio.subprocess.PIPE,
                                                    stderr=secondary)
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
        os.close(secondary)
        secondary = -1
        shown = os.read(primary, 1 << 16).decode()
    finally:
        os.close(primary)
        if secondary >= 0:
            os.close(secondary)
    assert proc.returncode is not None
    return proc.returncode, out, shown


async def test_progress_only_on_a_terminal(api: Api, tmp_path: Path) -> None:
    """With stderr on a pseudo-terminal, allocate says what it is doing there; stdout stays clean."""
    code, out, shown = await on_terminal("allocate", "-p", "builds", "--certs-dir", str(tmp_path / "c"), "-o", "json",
                                         env=api.env())
    assert code == 0
    assert "Allocating a worker from pool default/builds..." in shown
    assert json.loads(out)["workerName"]


async def test_a_long_wait_shows_the_elapsed_time(fake: FakeServer) -> None:
    """While the allocation waits (the pool's queue, a worker starting), a terminal sees the seconds go by."""
    def queued(_: BaseHTTPRequestHandler) -> Reply:
        time.sleep(1.5)
        return Reply(503, b'{"error": "no_capacity", "message": "still full"}', {"Retry-After": "5"})
    fake.routes["/api/v1/workers/allocate"] = queued
    code, _, shown = await on_terminal("allocate", "-p", "builds", env={"BKCTL_ENDPOINT": fake.url,
                                                                        "BKCTL_TOKEN": "t"})
    assert code == EXIT_UNAVAILABLE
    assert re.search(r"\r[|/\\-] Allocating a worker from pool default/builds\.\.\. 1s", shown), repr(shown)
    assert re.search(r"Allocating a worker from pool default/builds\.\.\. failed \(1\.[5-9]s\)", shown), repr(shown)


async def test_size_is_sent_and_an_unknown_one_is_a_one_line_error(api: Api) -> None:
    allocated = await bkctl("allocate", "-p", "builds", "--size", "xl", "-o", "json", env=api.env())
    assert allocated.code == 0, allocated.err
    answer = allocated.json()
    shutil.rmtree(answer["certsDir"])
    assert answer["size"] == "md"  # the pool sets no maxSize: its default size is the cap
    refused = await bkctl("allocate", "-p", "builds", "-o", "json", env={**api.env(), "BKCTL_SIZE": "huge"})
    assert refused.code == EXIT_API and refused.err.count("\n") == 1, refused.err
    assert "body.size: unknown size 'huge'" in refused.err and "Traceback" not in refused.err
