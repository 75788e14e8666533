"""The simulated kubelet: schedules pods onto simulated nodes and runs them.

Every pod is scheduled (``spec.nodeName`` is bound, ``PodScheduled``), given a distinct
``127.B.x.y`` IP and run by a :class:`~kubesim.kubelet.pods.PodWorker`: containers whose image is
in the :class:`ImageMap` run as local processes in the pod's own mount namespace; the others are
Running and Ready without a process. Graceful deletion runs the termination sequence before the
object goes; Secret/ConfigMap volumes are refreshed when those objects change and every
``sync_period`` seconds (tokens too), like the kubelet's periodic sync.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..controllers import Controller
from ..errors import ApiError
from ..events import Event, Subscription
from ..ipam import AddressBlock
from ..scheduling import DEFAULT_NODE, fits, node_object, node_status, unschedulable_message
from ..store import Store, WriteOptions, now
from ..tokens import TokenIssuer
from .images import ImageMap
from .pods import PodWorker

__all__ = ["Kubelet", "KubeletConfig"]

_STATUS = WriteOptions(subresource="status")


@dataclass(kw_only=True)
class KubeletConfig:
    workdir: Path
    api_host: str = "127.0.0.1"
    api_port: int = 0
    ca_pem: bytes = b""
    host_ip: str = "127.0.0.1"
    grace_cap: float | None = 1.0
    restart_backoff: float = 0.25
    sync_period: float = 1.0
    probe_period_cap: float | None = None
    bin_dirs: list[str] = field(default_factory=list)

    @property
    def path(self) -> str:
        return os.pathsep.join([*self.bin_dirs, os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")])


class Kubelet(Controller):
    def __init__(
        self,
        store: Store,
        *,
        config: KubeletConfig,
        images: ImageMap,
        block: AddressBlock,
        tokens: TokenIssuer,
        nodes: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(store)
        self.config, self.images, self.block, self.tokens = config, images, block, tokens
        self.workers: dict[tuple[str, str], PodWorker] = {}
        self.initial_nodes = nodes if nodes is not None else [node_object(DEFAULT_NODE)]
        self.pod_type = self._type("/pods")
        self.node_type = self._type("/nodes")

    def _type(self, key: str) -> Any:
        found = self.store.registry.by_key(key)
        assert found
        return found[0]

    def register_nodes(self) -> None:
        for body in self.initial_nodes:
            if self.store.find(self.node_type, "", body["metadata"]["name"]) is None:
                created = self.store.create(self.node_type, "", body)
                name = created["metadata"]["name"]
                self.store.patch(
                    self.node_type,
                    "",
                    name,
                    lambda o: {**o, "status": node_status(self.config.host_ip)},
                    _STATUS,
                )

    async def run(self, sub: Subscription) -> None:
        sync = asyncio.create_task(self._periodic_sync())
        try:
            await super().run(sub)
        finally:
            sync.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sync

    async def _periodic_sync(self) -> None:
        while True:
            await asyncio.sleep(self.config.sync_period)
            for worker in list(self.workers.values()):
                if worker.sandbox is not None and not worker.stopping:
                    worker.refresh_volumes()

    # -- events ------------------------------------------------------------------------------
    def handle(self, event: Event) -> None:
        if event.key == "/nodes":
            for pod in self.store.items("/pods"):
                if not (pod.get("spec") or {}).get("nodeName"):
                    self._schedule(pod)
        elif event.key == "/pods":
            self._on_pod(event)
        elif event.key in ("/secrets", "/configmaps"):
            namespace = event.obj["metadata"].get("namespace")
            for (ns, _), worker in list(self.workers.items()):
                if ns == namespace and worker.sandbox is not None and not worker.stopping:
                    worker.refresh_volumes()

    def _on_pod(self, event: Event) -> None:
        pod = event.obj
        meta = pod["metadata"]
        ident = (meta["namespace"], meta["name"])
        worker = self.workers.get(ident)
        if worker is not None and worker.uid != meta["uid"]:
            worker = None
        if event.type == "DELETED":
            if worker is not None:
                self._forget(ident, worker)
            return
        if worker is not None:
            worker.pod = pod
            if meta.get("deletionTimestamp") and not worker.stopping:
                grace = worker.grace(meta.get("deletionGracePeriodSeconds"))
                asyncio.get_running_loop().create_task(worker.terminate(grace))
            return
        node = (pod.get("spec") or {}).get("nodeName")
        if meta.get("deletionTimestamp"):  # not ours to run: the grace period (capped), then gone
            delay = float(meta.get("deletionGracePeriodSeconds") or 0) if node else 0.0
            if self.config.grace_cap is not None:
                delay = min(delay, self.config.grace_cap)
            asyncio.get_running_loop().call_later(delay, self.store.finish_deletion, "/pods", *ident)
        elif not node:
            self._schedule(pod)
        elif self.store.find(self.node_type, "", node) is not None:
            self.workers[ident] = PodWorker(self, pod)

    def _forget(self, ident: tuple[str, str], worker: PodWorker) -> None:
        self.workers.pop(ident, None)
        asyncio.get_running_loop().create_task(worker.teardown())

    def _schedule(self, pod: dict[str, Any]) -> None:
        nodes = self.store.items("/nodes")
        reasons = []
        for node in nodes:
            reason = fits(pod, node)
            if reason is None:
                self._bind(pod, node["metadata"]["name"])
                return
            reasons.append(reason)
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": unschedulable_message(reasons, len(nodes)),
            "lastTransitionTime": now(),
        }
        meta = pod["metadata"]
        self.write_status(meta["namespace"], meta["name"], {"phase": "Pending", "conditions": [condition]})

    def _bind(self, pod: dict[str, Any], node: str) -> None:
        meta = pod["metadata"]

        def bind(obj: dict[str, Any]) -> dict[str, Any]:
            obj["spec"]["nodeName"] = node
            return obj

        self.store.patch(self.pod_type, meta["namespace"], meta["name"], bind)

    # -- used by pod workers -----------------------------------------------------------------
    def write_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Replace the pod's status, keeping each condition's lastTransitionTime while it holds."""
        current = self.store.raw("/pods", namespace, name)
        if current is None:
            return
        old = current.get("status") or {}
        previous = {c.get("type"): c for c in old.get("conditions") or ()}
        for cond in status.get("conditions") or ():
            before = previous.get(cond["type"])
            if before is not None and before.get("status") == cond["status"]:
                cond["lastTransitionTime"] = before.get("lastTransitionTime", cond["lastTransitionTime"])
        merged = {**old, **status}
        if merged == old:
            return
        with contextlib.suppress(ApiError):
            self.store.patch(self.pod_type, namespace, name, lambda o: {**o, "status": merged}, _STATUS)

    def automount(self, pod: dict[str, Any]) -> bool:
        spec = pod.get("spec") or {}
        if "automountServiceAccountToken" in spec:
            return bool(spec["automountServiceAccountToken"])
        account = self.store.raw(
            "/serviceaccounts", pod["metadata"]["namespace"], spec.get("serviceAccountName") or "default"
        )
        return bool((account or {}).get("automountServiceAccountToken", True))

    def issue_token(self, namespace: str, account: str, seconds: int) -> str:
        sa = self.store.raw("/serviceaccounts", namespace, account)
        uid = sa["metadata"]["uid"] if sa else ""
        token, _ = self.tokens.issue(namespace=namespace, name=account, uid=uid, expiration_seconds=seconds)
        return token

    def worker(self, namespace: str, name: str) -> PodWorker | None:
        return self.workers.get((namespace, name))

    async def shutdown(self) -> None:
        """Kill every pod's processes (kubesim is stopping)."""
        workers = list(self.workers.values())
        self.workers.clear()
        await asyncio.gather(*(w.teardown() for w in workers), return_exceptions=True)
