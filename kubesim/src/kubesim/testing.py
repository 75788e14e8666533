"""Helpers for pytest: an in-process server fixture and a ``kubesim serve`` subprocess runner.

Import the fixture into a ``conftest.py``::

    from kubesim.testing import kubesim  # noqa: F401 - a pytest fixture
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest_asyncio

from .server import KubeSim

__all__ = ["KubeSimProcess", "kubesim", "run_kubesim"]


@pytest_asyncio.fixture
async def kubesim() -> AsyncIterator[KubeSim]:
    """A fresh in-process server per test, on 127.0.0.1 with ephemeral ports."""
    async with KubeSim() as sim:
        yield sim


@dataclass(frozen=True)
class KubeSimProcess:
    """A running ``kubesim serve`` subprocess."""

    process: subprocess.Popen[str]
    url: str
    https_url: str
    kubeconfig: Path
    startup_seconds: float

    def admin(self, path: str, body: object = None, method: str = "POST") -> Any:
        """Call a ``/kubesim/...`` admin endpoint (fault injection) and return its JSON answer."""
        data = json.dumps(body).encode() if body is not None else b""
        # S310: the URL is this server's own http://127.0.0.1 address, never user input.
        request = urllib.request.Request(  # noqa: S310
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return json.loads(response.read())


@contextmanager
def run_kubesim(workdir: Path, *extra: str, timeout: float = 10.0) -> Iterator[KubeSimProcess]:
    """Start ``kubesim serve`` and wait for its ``READY`` line; stopped with SIGTERM by PID on exit."""
    kubeconfig = workdir / "kubeconfig"
    command = [
        sys.executable,
        "-m",
        "kubesim",
        "serve",
        "--port",
        "0",
        "--kubeconfig",
        str(kubeconfig),
        *extra,
    ]
    started = time.monotonic()
    process = subprocess.Popen(  # noqa: S603 - runs this package's own CLI
        command,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("READY "):
            raise RuntimeError(f"kubesim did not start: {line!r}")
        urls = [*line.split()[1:], ""]
        yield KubeSimProcess(process, urls[0], urls[1], kubeconfig, time.monotonic() - started)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()
