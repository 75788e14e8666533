"""In-process controllers: asyncio tasks that watch the store the way real controllers watch the API.

This is where a kubelet or Deployment controller plugs in later: subscribe, react, write through
the same :class:`Store` methods the HTTP handlers use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from .errors import ApiError
from .events import Event, Subscription
from .store import Store

__all__ = ["Controller", "GarbageCollector", "NamespaceController", "PodTerminator", "run_controllers"]

log = logging.getLogger(__name__)


class Controller:
    """Reads every event from one subscription and calls :meth:`handle`; errors are logged, not fatal."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def run(self, sub: Subscription) -> None:
        try:
            while (event := await sub.next()) is not None:
                try:
                    self.handle(event)
                except ApiError as exc:  # the object changed under us; the next event retries
                    log.debug("%s: %s", type(self).__name__, exc)
                except Exception:  # a kubesim bug must not stop every controller: log it, go on
                    log.exception("%s failed on %s %s", type(self).__name__, event.type, event.key)
        finally:
            sub.close()

    def handle(self, event: Event) -> None:
        raise NotImplementedError


class GarbageCollector(Controller):
    """Background cascading deletion: an object whose owners are all gone is deleted.

    ``orphaned`` holds owner uids deleted with ``propagationPolicy=Orphan``; their dependents lose
    the ownerReference instead.
    """

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.orphaned: set[str] = set()

    def handle(self, event: Event) -> None:
        if event.type == "DELETED":
            uid = event.obj["metadata"]["uid"]
            for key, ns, name in self.store.dependents(uid):
                self._collect(key, ns, name, uid)
            self.orphaned.discard(uid)
        elif event.obj["metadata"].get("ownerReferences"):
            meta = event.obj["metadata"]
            self._collect(event.key, meta.get("namespace", ""), meta["name"], None)

    def _collect(self, key: str, namespace: str, name: str, deleted_uid: str | None) -> None:
        obj = self.store.raw(key, namespace, name)
        types = self.store.registry.by_key(key)
        if obj is None or not types or obj["metadata"].get("deletionTimestamp"):
            return
        refs = obj["metadata"].get("ownerReferences") or []
        if deleted_uid in self.orphaned:
            kept = [r for r in refs if r.get("uid") != deleted_uid]
            self.store.patch(types[0], namespace, name, lambda o: _with_refs(o, kept))
        elif refs and all(self.store.by_uid(r.get("uid", "")) is None for r in refs):
            spec = obj.get("spec") or {}
            grace = (
                int(spec.get("terminationGracePeriodSeconds", 30)) if key == "/pods" and spec.get("nodeName") else None
            )
            self.store.delete(types[0], namespace, name, grace=grace)  # bound pods: gracefully


def _with_refs(obj: dict[str, Any], refs: list[dict[str, Any]]) -> dict[str, Any]:
    obj["metadata"]["ownerReferences"] = refs
    if not refs:
        del obj["metadata"]["ownerReferences"]
    return obj


class NamespaceController(Controller):
    """Gives each namespace its ``default`` ServiceAccount and (with HTTPS) the ``kube-root-ca.crt``
    ConfigMap in-cluster clients verify the server with; empties terminating namespaces, then
    removes them."""

    def __init__(self, store: Store, *, ca_pem: bytes | None = None) -> None:
        super().__init__(store)
        self.ca_pem = ca_pem

    def handle(self, event: Event) -> None:
        if event.key == "/namespaces" and event.type == "ADDED":
            self._default_service_account(event.obj["metadata"]["name"])
            self._root_ca(event.obj["metadata"]["name"])
        namespace = (
            event.obj["metadata"]["name"] if event.key == "/namespaces" else event.obj["metadata"].get("namespace")
        )
        if namespace:
            self._sweep(namespace)

    def _default_service_account(self, namespace: str) -> None:
        sa_type = self.store.registry.get("", "v1", "serviceaccounts")
        if sa_type and self.store.find(sa_type, namespace, "default") is None:
            self.store.create(sa_type, namespace, {"metadata": {"name": "default"}})

    def _root_ca(self, namespace: str) -> None:
        cm_type = self.store.registry.get("", "v1", "configmaps")
        if self.ca_pem and cm_type and self.store.find(cm_type, namespace, "kube-root-ca.crt") is None:
            body = {"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": self.ca_pem.decode()}}
            self.store.create(cm_type, namespace, body)

    def _sweep(self, namespace: str) -> None:
        ns = self.store.raw("/namespaces", "", namespace)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        left = False
        for rtype in {t.key: t for t in self.store.registry if t.namespaced}.values():
            for obj in self.store.items(rtype.key):
                if obj["metadata"].get("namespace") == namespace:
                    left = True
                    if not obj["metadata"].get("deletionTimestamp"):
                        self.store.delete(rtype, namespace, obj["metadata"]["name"])
        if not left:  # the DELETED events of what was deleted above bring us back here
            self.store.finish_deletion("/namespaces", "", namespace, force=True)


class PodTerminator(Controller):
    """Ends graceful pod deletion after the grace period (capped), standing in for a kubelet."""

    def __init__(self, store: Store, *, grace_cap: float = 1.0) -> None:
        super().__init__(store)
        self.grace_cap = grace_cap

    def handle(self, event: Event) -> None:
        meta = event.obj["metadata"]
        if event.key != "/pods" or event.type != "MODIFIED" or not meta.get("deletionTimestamp"):
            return
        delay = min(float(meta.get("deletionGracePeriodSeconds") or 0), self.grace_cap)
        asyncio.get_running_loop().call_later(
            delay, self.store.finish_deletion, "/pods", meta.get("namespace", ""), meta["name"]
        )


async def run_controllers(controllers: list[Controller]) -> None:
    """Run until cancelled. Subscriptions are taken before the first await, so no event is missed."""
    subs = [c.store.subscribe(None) for c in controllers]
    tasks = [asyncio.create_task(c.run(sub), name=type(c).__name__) for c, sub in zip(controllers, subs, strict=True)]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
