"""Known fields of the built-in kinds, read from the official client's model classes.

The ``kubernetes`` package generates one class per OpenAPI definition, each with ``openapi_types``
(attribute → type name) and ``attribute_map`` (attribute → JSON key). Walking them recursively gives
exactly the field set a real server's strict decoder knows, without a hand-written copy.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import kubernetes.client as k8s_models

__all__ = ["drop_fields", "unknown_fields"]

_LIST_RE = re.compile(r"^List\[(.+)\]$|^list\[(.+)\]$")
_DICT_RE = re.compile(r"^Dict\[str, (.+)\]$|^dict\(str, (.+)\)$")
_OPAQUE = frozenset({"object", "str", "int", "float", "bool", "datetime", "date", "bytes"})


@cache
def _model_fields(model: str) -> dict[str, str]:
    """JSON key → type name for one model class."""
    cls = getattr(k8s_models, model)
    return {cls.attribute_map[attr]: type_name for attr, type_name in cls.openapi_types.items()}


def _container(value: Any, type_name: str, path: str, out: list[str]) -> bool:
    """Descend into ``List[X]`` and ``Dict[str, X]`` values; False when the type is neither."""
    list_match = _LIST_RE.match(type_name)
    dict_match = None if list_match else _DICT_RE.match(type_name)
    if list_match and isinstance(value, list):
        inner = list_match.group(1) or list_match.group(2)
        for index, item in enumerate(value):
            _walk(item, inner, f"{path}[{index}]", out)
    elif dict_match and isinstance(value, dict):
        inner = dict_match.group(1) or dict_match.group(2)
        for key, item in value.items():
            _walk(item, inner, f"{path}[{key}]", out)
    return bool(list_match or dict_match)


def _walk(value: Any, type_name: str, path: str, out: list[str]) -> None:
    if type_name in _OPAQUE or value is None or _container(value, type_name, path, out):
        return
    if not isinstance(value, dict) or not hasattr(k8s_models, type_name):
        return
    known = _model_fields(type_name)
    for key, item in value.items():
        child = f"{path}.{key}" if path else key
        if key not in known:
            out.append(child)
        else:
            _walk(item, known[key], child, out)


def unknown_fields(obj: dict[str, Any], model: str) -> list[str]:
    """Dotted paths of the fields in ``obj`` that the ``model`` class (recursively) does not declare."""
    found: list[str] = []
    _walk(obj, model, "", found)
    return found


def drop_fields(obj: dict[str, Any], paths: list[str]) -> None:
    """Remove fields named by :func:`unknown_fields` paths (what non-strict decoding does)."""
    for path in paths:
        parts = re.findall(r"[^.\[\]]+", path)
        node: Any = obj
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node.get(part)
            if node is None:
                break
        if isinstance(node, dict):
            node.pop(parts[-1], None)
