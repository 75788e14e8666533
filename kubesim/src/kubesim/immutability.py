"""Fields a real server refuses to change after creation (422 Invalid on update)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

__all__ = ["update_causes"]

Causes = list[tuple[str, str]]

_POD_MUTABLE = ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds", "schedulingGates")
_POD_MESSAGE = (
    "Forbidden: pod updates may not change fields other than `spec.containers[*].image`, "
    "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to "
    "existing tolerations), `spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
    "previously negative)"
)


def _pod_frozen_part(spec: dict[str, Any], bound: bool) -> dict[str, Any]:
    frozen = copy.deepcopy(spec)
    for key in _POD_MUTABLE:
        frozen.pop(key, None)
    for field in ("containers", "initContainers"):
        for container in frozen.get(field) or ():
            container.pop("image", None)
    if not bound:
        frozen.pop("nodeName", None)  # binding (scheduling) sets it once
    return frozen


def _pod(old: dict[str, Any], new: dict[str, Any]) -> Causes:
    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    bound = bool(old_spec.get("nodeName"))
    if _pod_frozen_part(old_spec, bound) != _pod_frozen_part(new_spec, bound):
        return [("spec", _POD_MESSAGE)]
    return []


def _selector(old: dict[str, Any], new: dict[str, Any]) -> Causes:
    before, after = (old.get("spec") or {}).get("selector"), (new.get("spec") or {}).get("selector")
    if before != after:
        return [("spec.selector", f"Invalid value: {after!r}: field is immutable")]
    return []


def _immutable_data(old: dict[str, Any], new: dict[str, Any]) -> Causes:
    if not old.get("immutable"):
        return []
    causes = [
        (field, "Forbidden: field is immutable when `immutable` is set")
        for field in ("data", "binaryData")
        if old.get(field) != new.get(field)
    ]
    if not new.get("immutable"):
        causes.append(("immutable", "Forbidden: field is immutable when `immutable` is set"))
    return causes


def _service(old: dict[str, Any], new: dict[str, Any]) -> Causes:
    before, after = (old.get("spec") or {}).get("clusterIP"), (new.get("spec") or {}).get("clusterIP")
    if before and after != before:
        return [("spec.clusterIPs[0]", f'Invalid value: "{after}": may not change once set')]
    return []


_RULES: dict[str, Callable[[dict[str, Any], dict[str, Any]], Causes]] = {
    "Pod": _pod,
    "Deployment": _selector,
    "ReplicaSet": _selector,
    "ConfigMap": _immutable_data,
    "Secret": _immutable_data,
    "Service": _service,
}


def update_causes(kind: str, old: dict[str, Any], new: dict[str, Any]) -> Causes:
    """Why an update of ``old`` to ``new`` is invalid; empty when it is allowed."""
    rule = _RULES.get(kind)
    return rule(old, new) if rule else []
