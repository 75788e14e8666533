"""Starting and stopping processes inside a pod's mount namespace.

Every process kubesim starts for a pod (sandbox, containers, exec probes, preStop hooks) runs under
``setpriv --pdeathsig KILL`` (it dies with kubesim, even on SIGKILL), in its own session/process
group (so its children are signalled with it), and carries ``KUBESIM_POD_UID`` in its environment
so a final sweep of ``/proc`` finds and kills anything that escaped its process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import IO

__all__ = ["MARKER", "SESSION", "enter_argv", "kill_group", "run_in_pod", "sandbox_argv", "spawn", "sweep", "tools"]

MARKER = "KUBESIM_POD_UID"
SESSION = "KUBESIM_SESSION"  # copied from kubesim's own environment into every pod process


def tools() -> dict[str, str]:
    """Absolute paths of the util-linux programs the runtime needs (Debian package ``util-linux``)."""
    found = {name: shutil.which(name) for name in ("setpriv", "unshare", "nsenter")}
    missing = [name for name, path in found.items() if not path]
    if missing:
        raise RuntimeError(f"kubesim's process runtime needs {missing} (Debian package util-linux)")
    return {name: str(path) for name, path in found.items()}


def sandbox_argv(spec_file: Path) -> list[str]:
    """The sandbox gets SIGTERM when kubesim dies, and then kills the pod's other processes."""
    t = tools()
    return [
        t["setpriv"], "--pdeathsig", "TERM",
        t["unshare"], "--mount", "--propagation", "private", "--",
        sys.executable, "-m", "kubesim.kubelet.sandbox", str(spec_file),
    ]  # fmt: skip


def enter_argv(sandbox_pid: int, argv: list[str], working_dir: str | None = None) -> list[str]:
    t = tools()
    wd = f"--wdns={working_dir}" if working_dir else "--wd"
    return [
        t["setpriv"], "--pdeathsig", "KILL",
        t["nsenter"], "--target", str(sandbox_pid), "--mount", "--root", wd, "--", *argv,
    ]  # fmt: skip


async def spawn(
    argv: list[str], env: dict[str, str], output: IO[bytes] | int | None = None
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=output if output is not None else asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.STDOUT if output is not None else asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )


def kill_group(proc: asyncio.subprocess.Process, sig: int = signal.SIGKILL) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)


async def run_in_pod(sandbox_pid: int, argv: list[str], env: dict[str, str], timeout: float) -> tuple[int, bytes]:
    """Run a command in the pod's namespace (exec probe, preStop hook); ``(-1, b"")`` on timeout."""
    proc = await asyncio.create_subprocess_exec(
        *enter_argv(sandbox_pid, argv),
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        return proc.returncode or 0, out
    except TimeoutError:
        return -1, b""
    finally:
        kill_group(proc)
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                await proc.wait()


def sweep(pod_uid: str) -> list[int]:
    """SIGKILL every process (but this one) whose environment carries this pod's marker."""
    if not pod_uid:
        return []
    needle = f"{MARKER}={pod_uid}".encode()
    found = []
    for pid in pids_with(needle):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
            found.append(pid)
    return found


def pids_with(needle: bytes) -> list[int]:
    """PIDs (other than ours) whose environment contains ``needle`` (e.g. ``KUBESIM_POD_UID=``)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if any(var.startswith(needle) for var in environ.split(b"\0")):
            found.append(int(entry))
    return found
