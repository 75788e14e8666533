"""Server-side ``Table`` output, which ``kubectl get`` asks for (``Accept: ...;as=Table;g=meta.k8s.io``).

Custom resources get their CRD's ``additionalPrinterColumns``; built-in kinds get the columns kubectl
users expect for the few kinds tests print, and NAME/AGE otherwise.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .resources import ResourceType

__all__ = ["jsonpath", "table", "wants_table"]

_TOKEN_RE = re.compile(
    r"\.([A-Za-z0-9_\-/]+)|\[(\d+)\]|\[\?\(@\.([A-Za-z0-9_.\-]+)\s*==\s*['\"]([^'\"]*)['\"]\)\]"
)


def wants_table(accept: str) -> bool:
    return "as=Table" in accept


def jsonpath(obj: Any, path: str) -> Any:
    """The JSONPath subset printer columns use: ``.a.b``, ``[0]``, ``[?(@.type=="Ready")]``."""
    values = [obj]
    for match in _TOKEN_RE.finditer(path.strip().lstrip("{").rstrip("}")):
        key, index, filter_key, filter_value = match.groups()
        found = []
        for value in values:
            if key is not None and isinstance(value, dict) and key in value:
                found.append(value[key])
            elif index is not None and isinstance(value, list) and int(index) < len(value):
                found.append(value[int(index)])
            elif filter_key is not None and isinstance(value, list):
                found += [
                    item
                    for item in value
                    if isinstance(item, dict) and str(jsonpath(item, "." + filter_key)) == filter_value
                ]
        values = found
    return values[0] if values else None


def age(timestamp: str | None) -> str:
    """kubectl's short duration form (``45s``, ``3m``, ``2h``, ``5d``)."""
    if not timestamp:
        return "<unknown>"
    then = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    seconds = max(0, int((datetime.now(UTC) - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit != "d" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


Column = tuple[dict[str, Any], Callable[[dict[str, Any]], Any]]


def _col(name: str, kind: str, getter: Callable[[dict[str, Any]], Any], priority: int = 0) -> Column:
    return {
        "name": name,
        "type": kind,
        "format": "name" if name == "Name" else "",
        "description": name,
        "priority": priority,
    }, getter


def _name(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["name"])


def _age(obj: dict[str, Any]) -> str:
    return age(obj["metadata"].get("creationTimestamp"))


def _pod_ready(obj: dict[str, Any]) -> str:
    statuses = (obj.get("status") or {}).get("containerStatuses") or []
    total = len((obj.get("spec") or {}).get("containers") or [])
    return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"


def _deploy_ready(obj: dict[str, Any]) -> str:
    status = obj.get("status") or {}
    return f"{status.get('readyReplicas', 0)}/{(obj.get('spec') or {}).get('replicas', 0)}"


_BUILTIN: dict[str, list[Column]] = {
    "Pod": [
        _col("Ready", "string", _pod_ready),
        _col("Status", "string", lambda o: (o.get("status") or {}).get("phase", "")),
        _col(
            "Restarts",
            "string",
            lambda o: str(
                sum(s.get("restartCount", 0) for s in (o.get("status") or {}).get("containerStatuses") or [])
            ),
        ),
        _col("IP", "string", lambda o: (o.get("status") or {}).get("podIP", "<none>"), 1),
        _col("Node", "string", lambda o: (o.get("spec") or {}).get("nodeName", "<none>"), 1),
    ],
    "Deployment": [
        _col("Ready", "string", _deploy_ready),
        _col("Up-to-date", "integer", lambda o: (o.get("status") or {}).get("updatedReplicas", 0)),
        _col("Available", "integer", lambda o: (o.get("status") or {}).get("availableReplicas", 0)),
    ],
    "ConfigMap": [
        _col("Data", "integer", lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {}))
    ],
    "Secret": [
        _col("Type", "string", lambda o: o.get("type", "")),
        _col("Data", "integer", lambda o: len(o.get("data") or {})),
    ],
    "Namespace": [_col("Status", "string", lambda o: (o.get("status") or {}).get("phase", ""))],
    "Service": [
        _col("Type", "string", lambda o: (o.get("spec") or {}).get("type", "")),
        _col("Cluster-IP", "string", lambda o: (o.get("spec") or {}).get("clusterIP", "")),
    ],
}


def _custom_columns(rtype: ResourceType) -> list[Column]:
    columns = []
    for spec in rtype.printer_columns:
        path, kind = spec.get("jsonPath", ""), spec.get("type", "string")
        getter = _date_getter(path) if kind == "date" else _path_getter(path)
        column = {
            "name": spec["name"],
            "type": "string" if kind == "date" else kind,
            "format": spec.get("format", ""),
            "description": spec.get("description", ""),
            "priority": spec.get("priority", 0),
        }
        columns.append((column, getter))
    return columns


def _path_getter(path: str) -> Callable[[dict[str, Any]], Any]:
    def get(obj: dict[str, Any]) -> Any:
        value = jsonpath(obj, path)
        return json.dumps(value) if isinstance(value, dict | list) else value

    return get


def _date_getter(path: str) -> Callable[[dict[str, Any]], Any]:
    return lambda obj: age(jsonpath(obj, path))


def columns_for(rtype: ResourceType) -> list[Column]:
    if rtype.custom and rtype.printer_columns:
        return [_col("Name", "string", _name), *_custom_columns(rtype)]
    return [_col("Name", "string", _name), *_BUILTIN.get(rtype.kind, []), _col("Age", "string", _age)]


def _row_object(obj: dict[str, Any], include: str) -> dict[str, Any] | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}


def table(
    rtype: ResourceType,
    objects: list[dict[str, Any]],
    *,
    include: str = "Metadata",
    resource_version: str = "",
    continue_token: str = "",
    headers: bool = True,
) -> dict[str, Any]:
    """A ``meta.k8s.io/v1 Table``; watch events after the first omit the column definitions."""
    columns = columns_for(rtype)
    rows = [
        {"cells": [getter(obj) for _, getter in columns], "object": _row_object(obj, include)}
        for obj in objects
    ]
    meta: dict[str, Any] = {"resourceVersion": resource_version}
    if continue_token:
        meta["continue"] = continue_token
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": [c for c, _ in columns] if headers else [],
        "rows": rows,
    }
