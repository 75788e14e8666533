"""A running pod: IP, volumes, sandbox (mount namespace), containers, status and termination."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..store import WriteOptions, now
from .containers import ContainerRunner
from .process import MARKER, SESSION, kill_group, sandbox_argv, sweep
from .volumes import SA_MOUNT, Files, Missing, token_volume, volume_files, write_atomic

if TYPE_CHECKING:
    from .kubelet import Kubelet

__all__ = ["PodWorker"]

_STATUS = WriteOptions(subresource="status")
log = logging.getLogger(__name__)
PODNET = Path(__file__).parent / "podnet"  # sitecustomize: wildcard binds → the pod IP (Python only)


class PodWorker:
    def __init__(self, kubelet: Kubelet, pod: dict[str, Any]) -> None:
        self.kubelet, self.pod = kubelet, pod
        meta = pod["metadata"]
        self.namespace, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.ip = kubelet.block.pods.allocate()
        self.dir: Path = kubelet.config.workdir / "pods" / self.uid
        spec = pod.get("spec") or {}
        self.inits = [ContainerRunner(self, c, init=True) for c in spec.get("initContainers") or ()]
        self.runners = [ContainerRunner(self, c) for c in spec.get("containers") or ()]
        self.sandbox: asyncio.subprocess.Process | None = None
        self.stopping = False
        self.initialized = not self.inits
        self.started = now()
        self._volumes_written: dict[str, Files] = {}
        self._tokens: dict[str, tuple[str, float]] = {}
        self.task = asyncio.get_running_loop().create_task(self.run(), name=f"pod {self.namespace}/{self.name}")

    # -- helpers used by containers -------------------------------------------------------------
    @property
    def sandbox_pid(self) -> int | None:
        return self.sandbox.pid if self.sandbox is not None else None

    def lookup(self, plural: str, name: str) -> dict[str, Any] | None:
        return self.kubelet.store.raw(f"/{plural}", self.namespace, name)

    def base_env(self) -> dict[str, str]:
        config = self.kubelet.config
        return {
            "PATH": config.path,
            "KUBERNETES_SERVICE_HOST": config.api_host,
            "KUBERNETES_SERVICE_PORT": str(config.api_port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(config.api_port),
            MARKER: self.uid,
            SESSION: os.environ.get(SESSION, ""),  # lets a test session find its own pods' processes
            "KUBESIM_POD_IP": self.ip,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(PODNET), os.environ.get("PYTHONPATH", "")])),
        }

    def log_path(self, container: str, previous: bool = False) -> Path:
        return self.dir / "logs" / (f"{container}.previous.log" if previous else f"{container}.log")

    def rotate_log(self, container: str) -> None:
        current = self.log_path(container)
        current.parent.mkdir(parents=True, exist_ok=True)
        if current.exists() and current.stat().st_size:
            current.replace(self.log_path(container, previous=True))

    def grace(self, seconds: Any) -> float:
        cap = self.kubelet.config.grace_cap
        value = float(seconds if seconds is not None else 30)
        return value if cap is None else min(value, cap)

    # -- lifecycle ---------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            self.publish()
            if any(r.mapped for r in [*self.inits, *self.runners]) and not await self._sandbox_or_error():
                return
            for init in self.inits:  # in order; each must succeed before the next starts
                await init.run()
                if not init.succeeded:
                    return
            self.initialized = True
            await asyncio.gather(*(r.run() for r in self.runners))
        except Exception:  # a kubesim bug: visible in the log, the pod stays as it is
            log.exception("pod %s/%s failed", self.namespace, self.name)
            raise

    async def _sandbox_or_error(self) -> bool:
        """Start the sandbox once the volumes' sources exist; a failure shows as CreateContainerError."""
        try:
            while not await self._start_sandbox():
                await asyncio.sleep(1.0)
        except (OSError, RuntimeError) as exc:
            for runner in self.runners:
                if runner.mapped:
                    runner.state = {"waiting": {"reason": "CreateContainerError", "message": str(exc)}}
            self.publish()
            return False
        return True

    async def _start_sandbox(self) -> bool:
        mounts = self.refresh_volumes()
        if mounts is None:
            return False
        spec_file = self.dir / "sandbox.json"
        root = self.dir / "rootfs"
        root.mkdir(parents=True, exist_ok=True)
        spec_file.write_text(
            json.dumps({"root": str(root), "stage": str(self.dir / "stage"), "mounts": mounts, "uid": self.uid})
        )
        self.sandbox = await asyncio.create_subprocess_exec(
            *sandbox_argv(spec_file),
            env={"PATH": self.kubelet.config.path, MARKER: self.uid, SESSION: os.environ.get(SESSION, "")},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        assert self.sandbox.stdout is not None
        line = await self.sandbox.stdout.readline()
        if line.strip() != b"READY":
            raise RuntimeError(f"pod sandbox for {self.namespace}/{self.name} failed: {line!r}")
        return True

    def _mounts(self) -> list[tuple[dict[str, Any], str, bool, str]]:
        """(volume, mountPath, readOnly, subPath) for every container mount, plus the SA token."""
        spec = self.pod.get("spec") or {}
        volumes = {v["name"]: v for v in spec.get("volumes") or ()}
        found = []
        for container in [*(spec.get("initContainers") or ()), *(spec.get("containers") or ())]:
            for mount in container.get("volumeMounts") or ():
                volume = volumes.get(mount["name"])
                if volume is not None:
                    found.append((volume, mount["mountPath"], bool(mount.get("readOnly")), mount.get("subPath", "")))
        if self.kubelet.automount(self.pod) and not any(m[1] == SA_MOUNT for m in found):
            found.append(({"name": "kube-api-access", "kubesim-token": True}, SA_MOUNT, True, ""))
        return found

    def refresh_volumes(self) -> list[dict[str, Any]] | None:
        """Write volume contents (again); the sandbox's mounts, or None while a source is missing."""
        mounts = []
        try:
            for volume, path, read_only, sub_path in self._mounts():
                source = self._volume_dir(volume)
                if sub_path:
                    source = source / sub_path
                mounts.append({"source": str(source), "target": path, "readOnly": read_only})
        except Missing as exc:
            for runner in [*self.inits, *self.runners]:
                if runner.mapped and "running" not in runner.state:
                    runner.state = {"waiting": {"reason": "ContainerCreating", "message": str(exc)}}
            self.publish()
            return None
        return mounts

    def _volume_dir(self, volume: dict[str, Any]) -> Path:
        directory: Path = self.dir / "volumes" / volume["name"]
        if "hostPath" in volume:
            host = Path(volume["hostPath"]["path"])
            kind = volume["hostPath"].get("type", "")
            if kind == "DirectoryOrCreate":
                host.mkdir(parents=True, exist_ok=True)
            elif kind == "FileOrCreate" and not host.exists():
                host.parent.mkdir(parents=True, exist_ok=True)
                host.touch()
            return host
        if volume.get("kubesim-token"):
            files: Files | None = token_volume(self.pod, self._token, self.kubelet.config.ca_pem)
        else:
            files = volume_files(self.pod, volume, self.lookup, self._token, self.kubelet.config.ca_pem)
        if files is None:  # emptyDir and kinds without content
            directory.mkdir(parents=True, exist_ok=True)
        elif self._volumes_written.get(volume["name"]) != files:
            write_atomic(directory, files)
            self._volumes_written[volume["name"]] = files
        return directory

    def _token(self, account: str, seconds: int) -> str:
        loop = asyncio.get_running_loop()
        cached = self._tokens.get(account)
        if cached and loop.time() < cached[1]:
            return cached[0]
        token = self.kubelet.issue_token(self.namespace, account, seconds)
        self._tokens[account] = (token, loop.time() + 0.8 * max(seconds, 600))
        return token

    def _phase(self) -> str:
        states = [r.state for r in self.runners]
        if any("terminated" in r.state and not r.succeeded for r in self.inits):
            return "Failed"  # an init container failed and will not be retried (restartPolicy Never)
        if any("running" in s for s in states):
            return "Running"
        if states and all("terminated" in s for s in states):
            return "Failed" if any(s["terminated"].get("exitCode") for s in states) else "Succeeded"
        return "Pending"

    def publish(self) -> None:
        """Write the pod's status from the containers' states."""
        statuses = [r.status() for r in self.runners]
        phase = self._phase()
        ready = phase == "Running" and all(r.ready for r in self.runners) and not self.stopping
        status = {
            "phase": phase,
            "podIP": self.ip,
            "podIPs": [{"ip": self.ip}],
            "hostIP": self.kubelet.config.host_ip,
            "hostIPs": [{"ip": self.kubelet.config.host_ip}],
            "startTime": self.started,
            "conditions": _conditions(ready, all(r.ready for r in self.runners), phase, self.initialized),
            "containerStatuses": statuses,
        }
        if self.inits:
            status["initContainerStatuses"] = [r.status() for r in self.inits]
        self.kubelet.write_status(self.namespace, self.name, status)

    async def terminate(self, grace: float) -> None:
        """Graceful deletion: preStop hooks, SIGTERM, SIGKILL after ``grace``; then the object goes."""
        if self.stopping:
            return
        self.stopping = True
        self.publish()
        deadline = asyncio.get_running_loop().time() + grace
        await asyncio.gather(*(r.stop(deadline) for r in [*self.inits, *self.runners]))
        await self.teardown()
        self.kubelet.store.finish_deletion("/pods", self.namespace, self.name)

    async def teardown(self) -> None:
        """Kill whatever is left (processes, sandbox, strays), remove the pod's files, free the IP."""
        self.stopping = True
        for runner in [*self.inits, *self.runners]:
            runner.force_kill()
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task
        for runner in [*self.inits, *self.runners]:
            await runner.wait_stopped()
        if self.sandbox is not None:
            kill_group(self.sandbox)
            with contextlib.suppress(ProcessLookupError):
                await self.sandbox.wait()
        sweep(self.uid)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.kubelet.block.pods.release(self.ip)


def _conditions(ready: bool, containers_ready: bool, phase: str, initialized: bool) -> list[dict[str, Any]]:
    stamp = now()

    def cond(kind: str, ok: bool, reason: str | None = None) -> dict[str, Any]:
        found = {"type": kind, "status": "True" if ok else "False", "lastTransitionTime": stamp}
        if reason and not ok:
            found["reason"] = reason
        return found

    reason = "PodCompleted" if phase in ("Succeeded", "Failed") else "ContainersNotReady"
    return [
        cond("PodScheduled", True),
        cond("Initialized", initialized, "ContainersNotInitialized"),
        cond("ContainersReady", containers_ready and phase == "Running", reason),
        cond("Ready", ready, reason),
    ]
