"""Starting and stopping ``buildkit-controller dev`` for tests that need the whole system running."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXE = Path(sys.executable).parent / "buildkit-controller"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def running_dev(directory: Path, port: int, *args: str) -> Iterator[subprocess.Popen[str]]:
    """Dev mode with its state in ``directory/.dev`` and its log in ``directory/dev.log``, serving
    the API on ``port``; yields once it says it is running, and stops it (Ctrl-C, then SIGKILL)."""
    with (directory / "dev.log").open("w") as log:
        process = subprocess.Popen([str(EXE), "dev", "--workdir", str(directory / ".dev"), "--api-listen",
                                    f"127.0.0.1:{port}", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=log,
                                   text=True, start_new_session=True)
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        for line in process.stdout:
            if "is running" in line or time.monotonic() > deadline:
                break
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)  # the dev mode stops its pods on Ctrl-C
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
