"""The in-memory object store: one dict per resource, one global resourceVersion, one event log.

All methods are synchronous and run on the server's event loop, so a write is atomic with respect to
every other request without locks. Stored objects are never mutated in place: a write builds a new
dict, so readers (lists, watch streams, the log) can hold references without copying.
Controllers (garbage collector, namespace finalizer, later a kubelet) are asyncio tasks that read
:meth:`Store.subscribe` like any watch.
"""

from __future__ import annotations

import copy
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .errors import AlreadyExists, BadRequest, Conflict, Forbidden, Invalid, NotFound
from .events import Event, EventLog, Subscription
from .resources import Registry, ResourceType
from .selectors import Selector

__all__ = ["Store", "WriteOptions", "now"]

Hook = Callable[[Event], None]


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, kw_only=True)
class WriteOptions:
    """Per-request write options (query parameters)."""

    field_validation: str = ""  # Strict | Warn | Ignore | "" (server default)
    dry_run: bool = False
    subresource: str = ""
    warnings: list[str] = field(default_factory=list)  # filled by admission, sent as Warning headers


class Store:
    """Objects by storage key and (namespace, name); see the module docstring for the invariants."""

    def __init__(self, *, history: int = 10_000) -> None:
        self.registry = Registry()
        self.log = EventLog(history)
        self._objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        self._uids: dict[str, tuple[str, str, str]] = {}
        self._dependents: dict[str, set[tuple[str, str, str]]] = {}
        self._rv = 0
        self.hooks: list[Hook] = []  # run synchronously after each commit (e.g. CRD registration)
        self.admission: Any = None  # set by the server: validation, defaulting, pruning

    # -- reading ------------------------------------------------------------------------------
    @property
    def resource_version(self) -> int:
        return self._rv

    def get(self, rtype: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        obj = self._objects.get(rtype.key, {}).get((namespace if rtype.namespaced else "", name))
        if obj is None:
            raise NotFound.of(rtype.plural, name, rtype.group)
        return obj

    def find(self, rtype: ResourceType, namespace: str, name: str) -> dict[str, Any] | None:
        return self._objects.get(rtype.key, {}).get((namespace if rtype.namespaced else "", name))

    def items(self, key: str, selector: Selector | None = None) -> list[dict[str, Any]]:
        """Objects of one storage key in (namespace, name) order."""
        bucket = self._objects.get(key, {})
        found = [bucket[k] for k in sorted(bucket)]
        return found if selector is None else [o for o in found if selector.matches(o)]

    def by_uid(self, uid: str) -> tuple[str, str, str] | None:
        return self._uids.get(uid)

    def dependents(self, owner_uid: str) -> list[tuple[str, str, str]]:
        return sorted(self._dependents.get(owner_uid, ()))

    def raw(self, key: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self._objects.get(key, {}).get((namespace, name))

    def subscribe(self, key: str | None = None) -> Subscription:
        return self.log.subscribe(key)

    # -- writing ------------------------------------------------------------------------------
    def create(
        self, rtype: ResourceType, namespace: str, body: dict[str, Any], opts: WriteOptions = WriteOptions()
    ) -> dict[str, Any]:
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise Invalid.fields(rtype.kind, "", [("metadata", "Invalid value: must be an object")])
        if meta.get("resourceVersion"):
            raise BadRequest("resourceVersion should not be set on objects to be created")
        if rtype.namespaced:
            self._check_namespace(namespace, meta)
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind
        for stale in (
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "generation",
            "deletionGracePeriodSeconds",
            "selfLink",
        ):
            meta.pop(stale, None)
        if self.admission is not None:
            self.admission.on_create(rtype, obj, opts)
        name = meta.get("name", "")
        ident = (namespace if rtype.namespaced else "", name)
        if ident in self._objects.get(rtype.key, {}):
            raise AlreadyExists.of(rtype.plural, name, rtype.group)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now())
        if rtype.has_generation:
            meta["generation"] = 1
        if opts.dry_run:
            return obj
        return self._commit(rtype, obj, None, "ADDED")

    def _check_namespace(self, namespace: str, meta: dict[str, Any]) -> None:
        if meta.get("namespace") and meta["namespace"] != namespace:
            raise BadNamespace(
                f"the namespace of the provided object ({meta['namespace']}) does not "
                f"match the namespace sent on the request ({namespace})"
            )
        ns = self._objects.get("/namespaces", {}).get(("", namespace))
        if ns is None:
            raise NotFound.of("namespaces", namespace)
        if ns["metadata"].get("deletionTimestamp"):
            raise Forbidden(
                f"unable to create new content in namespace {namespace} because it is being terminated"
            )

    def update(
        self,
        rtype: ResourceType,
        namespace: str,
        name: str,
        body: dict[str, Any],
        opts: WriteOptions = WriteOptions(),
    ) -> dict[str, Any]:
        """PUT semantics: ``body`` replaces the object, guarded by its ``resourceVersion`` if given."""
        old = self.get(rtype, namespace, name)
        meta = body.get("metadata") or {}
        if meta.get("name", name) != name:
            raise Invalid.fields(rtype.kind, name, [("metadata.name", "Invalid value: field is immutable")])
        if meta.get("resourceVersion") and meta["resourceVersion"] != old["metadata"]["resourceVersion"]:
            raise Conflict.stale(rtype.plural, name, rtype.group)
        if meta.get("uid") and meta["uid"] != old["metadata"]["uid"]:
            raise Conflict(
                f"Precondition failed: UID in precondition: {meta['uid']}, UID in object meta: "
                f"{old['metadata']['uid']}"
            )
        return self._write(rtype, old, copy.deepcopy(body), opts)

    def _write(
        self, rtype: ResourceType, old: dict[str, Any], new: dict[str, Any], opts: WriteOptions
    ) -> dict[str, Any]:
        new = self._split_status(rtype, old, new, opts.subresource)
        meta = new.setdefault("metadata", {})
        old_meta = old["metadata"]
        for fixed in (
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ):
            if fixed in old_meta:
                meta[fixed] = old_meta[fixed]
            else:
                meta.pop(fixed, None)
        new["apiVersion"], new["kind"] = old["apiVersion"], old["kind"]
        self._check_finalizers(rtype, old, new)
        if self.admission is not None:
            self.admission.on_update(rtype, old, new, opts)
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if new == old:
            return old  # no-op writes do not bump the resourceVersion, as on a real server
        if rtype.has_generation and _spec_of(new) != _spec_of(old):
            meta["generation"] = old_meta.get("generation", 1) + 1
        if opts.dry_run:
            return new
        if (
            meta.get("deletionTimestamp")
            and not _blocks_deletion(new)
            and not meta.get("deletionGracePeriodSeconds")
        ):
            # The last finalizer went: the object goes (graceful pods wait for their timer instead).
            return self._remove(rtype.key, new)
        return self._commit(rtype, new, old, "MODIFIED")

    def _split_status(
        self, rtype: ResourceType, old: dict[str, Any], new: dict[str, Any], subresource: str
    ) -> dict[str, Any]:
        """The status subresource split: the main resource ignores status, /status ignores the rest."""
        if "status" not in rtype.subresources:
            return new
        if subresource == "status":
            merged = copy.deepcopy(old)
            if "status" in new:
                merged["status"] = new["status"]
            else:
                merged.pop("status", None)
            return merged
        if "status" in old:
            new["status"] = old["status"]
        else:
            new.pop("status", None)
        return new

    def _check_finalizers(self, rtype: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> None:
        if not old["metadata"].get("deletionTimestamp"):
            return
        added = set(new["metadata"].get("finalizers") or ()) - set(old["metadata"].get("finalizers") or ())
        if added:
            name = old["metadata"]["name"]
            raise Invalid.fields(
                rtype.kind,
                name,
                [
                    (
                        "metadata.finalizers",
                        "Forbidden: no new finalizers "
                        "can be added if the object is being deleted, found new finalizers "
                        f"{sorted(added)}",
                    )
                ],
                rtype.group,
            )

    def patch(
        self,
        rtype: ResourceType,
        namespace: str,
        name: str,
        patcher: Callable[[dict[str, Any]], dict[str, Any]],
        opts: WriteOptions = WriteOptions(),
    ) -> dict[str, Any]:
        """Apply ``patcher`` to a copy of the current object; a resourceVersion the patch sets is a
        precondition (as ``kubectl``'s and Kopf's patches use it)."""
        old = self.get(rtype, namespace, name)
        new = patcher(copy.deepcopy(old))
        rv = (new.get("metadata") or {}).get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise Conflict.stale(rtype.plural, name, rtype.group)
        return self._write(rtype, old, new, opts)

    def delete(
        self,
        rtype: ResourceType,
        namespace: str,
        name: str,
        *,
        grace: int | None = None,
        preconditions: dict[str, str] | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Delete now, or mark with ``deletionTimestamp`` while finalizers remain."""
        old = self.get(rtype, namespace, name)
        for key, value in (preconditions or {}).items():
            if value and old["metadata"].get(key) != value:
                raise Conflict(
                    f"Precondition failed: {key} in precondition: {value}, {key} in "
                    f"object meta: {old['metadata'].get(key)}"
                )
        if dry_run:
            return old
        if _blocks_deletion(old) or (grace or 0) > 0:
            if old["metadata"].get("deletionTimestamp"):
                return old
            new = copy.deepcopy(old)
            new["metadata"].update(deletionTimestamp=now(), deletionGracePeriodSeconds=grace or 0)
            if rtype.kind == "Namespace":
                new["status"] = {**new.get("status", {}), "phase": "Terminating"}
            return self._commit(rtype, new, old, "MODIFIED")
        return self._remove(rtype.key, old)

    def finish_deletion(self, key: str, namespace: str, name: str, *, force: bool = False) -> None:
        """Remove an object marked for deletion once its grace period ended or (namespaces) it is
        empty; objects with finalizers stay."""
        obj = self.raw(key, namespace, name)
        if obj is None or not obj["metadata"].get("deletionTimestamp"):
            return
        if not obj["metadata"].get("finalizers") and (force or not _blocks_deletion(obj) or key == "/pods"):
            self._remove(key, obj)

    # -- committing ---------------------------------------------------------------------------
    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _commit(
        self, rtype: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None, kind: str
    ) -> dict[str, Any]:
        obj["metadata"]["resourceVersion"] = self._next_rv()
        meta = obj["metadata"]
        ident = (meta.get("namespace", ""), meta["name"])
        self._objects.setdefault(rtype.key, {})[ident] = obj
        self._uids[meta["uid"]] = (rtype.key, *ident)
        self._index_owners(rtype.key, ident, old, obj)
        self._emit(Event(self._rv, kind, rtype.key, obj, old))
        return obj

    def purge(self, key: str) -> None:
        """Remove every object of a storage key, finalizers or not (a deleted CRD takes its objects)."""
        for obj in list(self._objects.get(key, {}).values()):
            self._remove(key, obj)
        self._objects.pop(key, None)

    def _remove(self, key: str, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        ident = (meta.get("namespace", ""), meta["name"])
        current = self._objects.get(key, {}).pop(ident, None)
        gone = copy.deepcopy(obj)
        gone["metadata"]["resourceVersion"] = self._next_rv()
        self._uids.pop(meta["uid"], None)
        self._index_owners(key, ident, current, None)
        self._emit(Event(self._rv, "DELETED", key, gone, current))
        return gone

    def _index_owners(
        self, key: str, ident: tuple[str, str], old: dict[str, Any] | None, new: dict[str, Any] | None
    ) -> None:
        for obj, add in ((old, False), (new, True)):
            for ref in (obj or {}).get("metadata", {}).get("ownerReferences") or ():
                deps = self._dependents.setdefault(ref.get("uid", ""), set())
                if add:
                    deps.add((key, *ident))
                else:
                    deps.discard((key, *ident))

    def _emit(self, event: Event) -> None:
        self.log.append(event)
        for hook in list(self.hooks):
            hook(event)


class BadNamespace(Invalid):
    """Namespace in the body differs from the URL (a 400 on real servers)."""

    code, reason = 400, "BadRequest"


def _blocks_deletion(obj: dict[str, Any]) -> bool:
    """Finalizers keep an object; a namespace's spec.finalizers keep it until it is empty."""
    return bool(
        obj["metadata"].get("finalizers")
        or (obj.get("kind") == "Namespace" and (obj.get("spec") or {}).get("finalizers"))
    )


def _spec_of(obj: dict[str, Any]) -> dict[str, Any]:
    """Everything except metadata and status: what a generation bump tracks."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}
