"""CustomResourceDefinitions: serving custom resources as soon as their CRD is stored."""

from __future__ import annotations

from typing import Any

from .events import Event
from .resources import ResourceType
from .store import Store, now

__all__ = ["CRD_KEY", "crd_defaults", "register_crd_hook", "types_from_crd"]

CRD_KEY = "apiextensions.k8s.io/customresourcedefinitions"


def types_from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """One :class:`ResourceType` per served version of the CRD."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    found = []
    for version in spec.get("versions") or ():
        if not version.get("served", True):
            continue
        subresources = frozenset((version.get("subresources") or {}).keys())
        found.append(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                kind=names["kind"],
                namespaced=spec.get("scope") == "Namespaced",
                singular=names.get("singular", ""),
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=subresources & {"status"},
                schema=(version.get("schema") or {}).get("openAPIV3Schema"),
                printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
                custom=True,
            )
        )
    return found


def crd_defaults(_: Any, crd: dict[str, Any]) -> None:
    """Status a real server reports once names are accepted and the CRD is established."""
    spec = crd.setdefault("spec", {})
    names = dict(spec.get("names") or {})
    names.setdefault("singular", str(names.get("kind", "")).lower())
    names.setdefault("listKind", f"{names.get('kind')}List")
    spec["names"] = names
    for version in spec.get("versions") or ():
        version.setdefault("served", True)
    spec.setdefault("conversion", {"strategy": "None"})
    stamp = now()
    crd["status"] = {
        "acceptedNames": names,
        "storedVersions": [v["name"] for v in spec.get("versions") or () if v.get("storage")],
        "conditions": [
            {"type": t, "status": "True", "reason": r, "message": m, "lastTransitionTime": stamp}
            for t, r, m in (
                ("NamesAccepted", "NoConflicts", "no conflicts found"),
                ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
            )
        ],
    }


def register_crd_hook(store: Store) -> None:
    """Keep the registry in step with stored CRDs; deleting a CRD deletes its custom resources."""

    def on_event(event: Event) -> None:
        if event.key != CRD_KEY:
            return
        crd = event.obj
        old_types = types_from_crd(event.old) if event.old else []
        for rtype in old_types:
            store.registry.remove_key(rtype.key)
        if event.type == "DELETED":
            if old_types:
                store.purge(old_types[0].key)
            return
        for rtype in types_from_crd(crd):
            store.registry.add(rtype)

    store.hooks.append(on_event)
