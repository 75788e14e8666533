"""Services: the Endpoints controller, a userspace proxy on each cluster IP, and the name table.

The Endpoints controller keeps one Endpoints object per Service with a selector: ready pods under
``addresses``, running-but-unready ones under ``notReadyAddresses`` (terminating pods are dropped),
ports resolved from ``targetPort`` by number or by container port name (pods resolving a name to
different numbers land in different subsets). Services without a selector keep hand-written
Endpoints. The proxy (kube-proxy's old userspace mode) listens on ``clusterIP:port`` for every
Service whose cluster IP is in 127/8 and forwards each TCP connection to a ready endpoint, round
robin; with none ready the connection is accepted and closed. DNS is not emulated: the name table
(``<svc>.<ns>.svc`` and ``<svc>.<ns>.svc.cluster.local`` → cluster IP) is available from
:meth:`ServiceProxy.names` and ``GET /kubesim/names``. UDP, NodePort, LoadBalancer, session
affinity and EndpointSlices are not emulated. A deleted Service's cluster IP is reused later.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
from collections.abc import Callable
from typing import Any

from .controllers import Controller
from .events import Event
from .kubelet.probes import resolve_port
from .labels import is_ready
from .relay import pipe
from .store import Store

__all__ = ["EndpointsController", "ServiceProxy"]


def _service_pods(store: Store, svc: dict[str, Any]) -> list[dict[str, Any]]:
    selector = (svc.get("spec") or {}).get("selector") or {}
    namespace = svc["metadata"]["namespace"]
    return [
        pod
        for pod in store.items("/pods")
        if pod["metadata"].get("namespace") == namespace
        and all((pod["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())
    ]


def _pod_ports(svc: dict[str, Any], pod: dict[str, Any]) -> tuple[tuple[str, int, str], ...] | None:
    found = []
    containers = (pod.get("spec") or {}).get("containers") or []
    for port in (svc.get("spec") or {}).get("ports") or ():
        target = port.get("targetPort", port.get("port"))
        number = None
        for container in containers:
            with contextlib.suppress(ValueError):
                number = resolve_port(target, container)
                break
        if number is None:
            continue
        found.append((port.get("name", ""), number, port.get("protocol", "TCP")))
    return tuple(found) or None


def endpoint_subsets(store: Store, svc: dict[str, Any]) -> list[dict[str, Any]]:
    groups: dict[tuple[tuple[str, int, str], ...], dict[str, list[dict[str, Any]]]] = {}
    for pod in _service_pods(store, svc):
        ip = (pod.get("status") or {}).get("podIP")
        ports = _pod_ports(svc, pod)
        if not ip or ports is None or pod["metadata"].get("deletionTimestamp"):
            continue
        address = {
            "ip": ip,
            "nodeName": pod["spec"].get("nodeName"),
            "targetRef": {
                "kind": "Pod",
                "namespace": pod["metadata"]["namespace"],
                "name": pod["metadata"]["name"],
                "uid": pod["metadata"]["uid"],
            },
        }
        group = groups.setdefault(ports, {"addresses": [], "notReadyAddresses": []})
        group["addresses" if is_ready(pod) else "notReadyAddresses"].append(address)
    subsets = []
    for ports, group in sorted(groups.items()):
        subset: dict[str, Any] = {k: sorted(v, key=lambda a: a["ip"]) for k, v in group.items() if v}
        subset["ports"] = [{"name": n, "port": p, "protocol": proto} for n, p, proto in ports]
        subsets.append(subset)
    return subsets


class EndpointsController(Controller):
    def __init__(self, store: Store) -> None:
        super().__init__(store)
        found = store.registry.by_key("/endpoints")
        assert found
        self.ep_type = found[0]

    def handle(self, event: Event) -> None:
        meta = event.obj["metadata"]
        if event.key == "/services":
            if event.type != "DELETED":
                self.sync(meta["namespace"], meta["name"])
            elif (event.obj.get("spec") or {}).get("selector") and self.store.find(
                self.ep_type, meta["namespace"], meta["name"]
            ):
                self.store.delete(self.ep_type, meta["namespace"], meta["name"])
        elif event.key == "/pods":
            # Only Services selecting this pod (before or after the change) need a new look.
            labels = [meta.get("labels") or {}, ((event.old or {}).get("metadata") or {}).get("labels") or {}]
            for svc in self.store.items("/services"):
                selector = (svc.get("spec") or {}).get("selector") or {}
                if svc["metadata"]["namespace"] == meta.get("namespace") and any(
                    selector and all(lab.get(k) == v for k, v in selector.items()) for lab in labels
                ):
                    self.sync(meta["namespace"], svc["metadata"]["name"])

    def sync(self, namespace: str, name: str) -> None:
        svc = self.store.raw("/services", namespace, name)
        if svc is None or not (svc.get("spec") or {}).get("selector"):
            return
        subsets = endpoint_subsets(self.store, svc)
        current = self.store.find(self.ep_type, namespace, name)
        labels = svc["metadata"].get("labels") or {}
        if current is None:
            body = {"metadata": {"name": name, "labels": labels}, "subsets": subsets}
            self.store.create(self.ep_type, namespace, body)
        elif (current.get("subsets") or []) != subsets:
            self.store.patch(self.ep_type, namespace, name, lambda o: {**o, "subsets": subsets})


class ServiceProxy(Controller):
    """Listens on every 127/8 cluster IP and port; forwards connections to ready endpoints."""

    def __init__(self, store: Store, release: Callable[[str], None] | None = None) -> None:
        super().__init__(store)
        self.release = release  # gives a deleted Service's cluster IP back to the pool
        self.listeners: dict[tuple[str, str], list[asyncio.Server]] = {}
        self._wanted: dict[tuple[str, str], tuple[str, tuple[int, ...]]] = {}
        self._rr = itertools.count()
        self.connections = 0

    def handle(self, event: Event) -> None:
        if event.key != "/services":
            return
        meta = event.obj["metadata"]
        ident = (meta["namespace"], meta["name"])
        if event.type == "DELETED":
            self._close(ident)
            if self.release is not None:
                self.release((event.obj.get("spec") or {}).get("clusterIP") or "")
            return
        spec = event.obj.get("spec") or {}
        ip = spec.get("clusterIP") or ""
        ports = tuple(int(p["port"]) for p in spec.get("ports") or ())
        if not ip.startswith("127.") or self._wanted.get(ident) == (ip, ports):
            return
        self._close(ident)
        self._wanted[ident] = (ip, ports)
        asyncio.get_running_loop().create_task(self._listen(ident, ip, ports))

    async def _listen(self, ident: tuple[str, str], ip: str, ports: tuple[int, ...]) -> None:
        servers = []
        for port in ports:
            try:
                server = await asyncio.start_server(
                    functools.partial(self._forward, ident, port), ip, port, reuse_address=True
                )
            except OSError:
                continue
            servers.append(server)
        if self._wanted.get(ident) == (ip, ports):
            self.listeners[ident] = servers
        else:
            for server in servers:
                server.close()

    def _close(self, ident: tuple[str, str]) -> None:
        self._wanted.pop(ident, None)
        for server in self.listeners.pop(ident, []):
            server.close()

    def close_all(self) -> None:
        for ident in list(self.listeners):
            self._close(ident)

    def pick(self, namespace: str, name: str, port: int) -> tuple[str, int] | None:
        """A ready endpoint for ``port`` of the Service, round robin."""
        svc = self.store.raw("/services", namespace, name)
        eps = self.store.raw("/endpoints", namespace, name)
        if svc is None or eps is None:
            return None
        port_name = next((p.get("name", "") for p in svc["spec"].get("ports") or () if int(p["port"]) == port), "")
        choices = []
        for subset in eps.get("subsets") or ():
            number = next((p["port"] for p in subset.get("ports") or () if p.get("name", "") == port_name), None)
            if number is not None:
                choices += [(a["ip"], int(number)) for a in subset.get("addresses") or ()]
        return choices[next(self._rr) % len(choices)] if choices else None

    async def _forward(
        self, ident: tuple[str, str], port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        target = self.pick(*ident, port)
        if target is None:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*target)
        except OSError:
            writer.close()
            return
        self.connections += 1
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True)
        for end in (writer, up_writer):
            end.close()

    def names(self) -> dict[str, str]:
        table = {}
        for svc in self.store.items("/services"):
            ip = (svc.get("spec") or {}).get("clusterIP")
            if ip and ip != "None":
                base = f"{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc"
                table[base] = table[f"{base}.cluster.local"] = ip
        return table
