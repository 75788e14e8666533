"""One container of a running pod: its process, restarts, probes and status.

A container whose image is in the :class:`~kubesim.kubelet.images.ImageMap` runs as a local process
inside the pod's mount namespace, with output appended to ``logs/NAME.log`` (the previous run's log is
kept as ``NAME.previous.log`` for ``kubectl logs --previous``). Restarts follow the pod's
``restartPolicy`` with a short exponential back-off (``CrashLoopBackOff`` while waiting).
``securityContext`` (runAsUser, capabilities, read-only root, seccomp) is NOT applied: processes run
as kubesim's user (root) — only the mount namespace isolates them.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import TYPE_CHECKING, Any

from ..store import now
from .env import EnvError, build_env, expand
from .probes import Prober, run_handler
from .process import enter_argv, kill_group, spawn

if TYPE_CHECKING:
    from .pods import PodWorker

__all__ = ["ContainerRunner"]


class ContainerRunner:
    def __init__(self, worker: PodWorker, spec: dict[str, Any], *, init: bool = False) -> None:
        self.worker, self.spec, self.init = worker, spec, init
        self.name: str = spec["name"]
        self.entrypoint = worker.kubelet.images.lookup(spec.get("image", ""))
        self.state: dict[str, Any] = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state: dict[str, Any] = {}
        self.restarts = 0
        self.ready = False
        self.env: dict[str, str] = {}
        self.proc: asyncio.subprocess.Process | None = None
        self.started_at = ""
        self._liveness_failed = False

    @property
    def mapped(self) -> bool:
        return self.entrypoint is not None

    def status(self) -> dict[str, Any]:
        image = self.spec.get("image", "")
        status = {
            "name": self.name,
            "image": image,
            "imageID": f"kubesim://{image}",
            "ready": self.ready,
            "started": "running" in self.state,
            "restartCount": self.restarts,
            "state": self.state,
        }
        if "running" in self.state or "terminated" in self.state:
            status["containerID"] = f"kubesim://{self.worker.uid}/{self.name}/{self.restarts}"
        if self.last_state:
            status["lastState"] = self.last_state
        return status

    def _set(self, state: dict[str, Any], ready: bool | None = None) -> None:
        self.state = state
        if ready is not None:
            self.ready = ready
        self.worker.publish()

    async def run(self) -> None:
        if not self.mapped:
            if self.init:  # an init container without a process completes at once
                stamp = now()
                done = {"exitCode": 0, "reason": "Completed", "startedAt": stamp, "finishedAt": stamp}
                self._set({"terminated": done})
            elif self.worker.kubelet.images.unmapped == "ready":
                self._set({"running": {"startedAt": now()}}, ready=True)
            return
        backoff = self.worker.kubelet.config.restart_backoff
        while not self.worker.stopping:
            code = await self._run_once()
            if code is None:  # could not start yet (missing Secret key, ...): retry
                await asyncio.sleep(1.0)
                continue
            if self.worker.stopping or not self._restarts_after(code):
                return
            self.last_state, self.restarts = self.state, self.restarts + 1
            reason = "CrashLoopBackOff" if code else "Completed"
            self._set({"waiting": {"reason": reason}}, ready=False)
            await asyncio.sleep(min(backoff * 2 ** (self.restarts - 1), 5.0))

    def _restarts_after(self, code: int) -> bool:
        policy = (self.worker.pod.get("spec") or {}).get("restartPolicy", "Always")
        if self.init:  # init containers are retried until they succeed, unless the policy is Never
            return code != 0 and policy != "Never"
        return policy == "Always" or (policy == "OnFailure" and code != 0)

    @property
    def succeeded(self) -> bool:
        return bool(self.state.get("terminated", {}).get("exitCode") == 0)

    def _argv(self) -> list[str]:
        assert self.entrypoint is not None
        command = self.spec.get("command") or self.entrypoint
        argv = [expand(str(word), self.env) for word in [*command, *(self.spec.get("args") or [])]]
        if not argv:
            raise EnvError("no command specified")
        return argv

    async def _run_once(self) -> int | None:
        worker = self.worker
        try:
            self.env = build_env(worker.pod, self.spec, worker.lookup, worker.base_env())
            argv = self._argv()
        except EnvError as exc:
            self._set({"waiting": {"reason": "CreateContainerConfigError", "message": str(exc)}})
            return None
        assert worker.sandbox_pid is not None
        worker.rotate_log(self.name)
        with worker.log_path(self.name).open("ab") as log:
            self.proc = await spawn(enter_argv(worker.sandbox_pid, argv, self.spec.get("workingDir")), self.env, log)
        self.started_at = now()
        self._liveness_failed = False
        self._set({"running": {"startedAt": self.started_at}}, ready="readinessProbe" not in self.spec)
        probes = [] if self.init else [asyncio.create_task(t) for t in self._probe_tasks()]
        try:
            code = await self.proc.wait()
        finally:
            for task in probes:
                task.cancel()
        self._record_exit(code)
        return code

    def _record_exit(self, code: int) -> None:
        if code < 0:  # killed by a signal: the runtime reports 128 + signal number
            code = 128 - code
        reason = "Completed" if code == 0 else "Error"
        terminated = {"exitCode": code, "reason": reason, "startedAt": self.started_at, "finishedAt": now()}
        self._set({"terminated": terminated}, ready=False)

    def _probe_tasks(self) -> list[Any]:
        tasks = []
        if "readinessProbe" in self.spec:
            cap = self.worker.kubelet.config.probe_period_cap
            prober = Prober(self.spec["readinessProbe"], self._attempt(self.spec["readinessProbe"]), cap)
            tasks.append(prober.run(self._on_readiness))
        if "livenessProbe" in self.spec:
            cap = self.worker.kubelet.config.probe_period_cap
            prober = Prober(self.spec["livenessProbe"], self._attempt(self.spec["livenessProbe"]), cap)
            tasks.append(prober.run(self._on_liveness))
        return tasks

    def _attempt(self, probe: dict[str, Any]) -> Any:
        async def attempt(timeout: float) -> bool:
            return await run_handler(
                probe,
                container=self.spec,
                pod_ip=self.worker.ip,
                sandbox_pid=self.worker.sandbox_pid,
                env=self.env,
                timeout=timeout,
            )

        return attempt

    def _on_readiness(self, ok: bool) -> None:
        if ok != self.ready and "running" in self.state:
            self.ready = ok
            self.worker.publish()

    def _on_liveness(self, ok: bool) -> None:
        if not ok and self.proc is not None and not self._liveness_failed:
            self._liveness_failed = True
            grace = self.worker.grace((self.worker.pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30))
            asyncio.get_running_loop().create_task(self._kill(grace))

    async def _kill(self, grace: float) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        kill_group(proc, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            kill_group(proc, signal.SIGKILL)
            await proc.wait()

    async def stop(self, deadline: float) -> None:
        """The termination sequence: preStop hook, SIGTERM, SIGKILL once the grace period is over."""
        loop = asyncio.get_running_loop()
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        pre_stop = ((self.spec.get("lifecycle") or {}).get("preStop")) or None
        if pre_stop:
            await run_handler(
                pre_stop,
                container=self.spec,
                pod_ip=self.worker.ip,
                sandbox_pid=self.worker.sandbox_pid,
                env=self.env,
                timeout=max(0.0, deadline - loop.time()),
            )
        await self._kill(max(0.0, deadline - loop.time()))

    def force_kill(self) -> None:
        if self.proc is not None:
            kill_group(self.proc)

    async def wait_stopped(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                await self.proc.wait()
