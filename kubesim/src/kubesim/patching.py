"""The PATCH content types: JSON merge patch, JSON patch and strategic merge patch."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

from .errors import BadRequest, Invalid, UnsupportedMediaType

__all__ = ["MERGE_KEYS", "apply_patch", "json_patch", "merge_patch", "strategic_merge"]

# patchMergeKey of the list fields in the built-in kinds (from the Kubernetes OpenAPI); a list field
# not named here is replaced wholesale, which is what `patchStrategy` absent means.
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "imagePullSecrets": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "conditions": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "secrets": "name",
}
# Port lists merge on the port number: containerPort in containers, port in Services.
_PORT_KEYS = ("containerPort", "port")
# Primitive lists with patchStrategy merge (union instead of replace).
_MERGED_PRIMITIVE_LISTS = frozenset({"finalizers"})


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: dict[str, Any], ops: Any, kind: str, name: str) -> dict[str, Any]:
    """RFC 6902 via ``jsonpatch``; a failed ``test`` op is 422 as on a real server (Kopf relies on it)."""
    if not isinstance(ops, list):
        raise BadRequest("json patch must be a list of operations")
    try:
        return jsonpatch.apply_patch(target, ops)  # type: ignore[no-any-return]
    except jsonpatch.JsonPatchTestFailed as exc:
        raise Invalid(
            f'{kind} "{name}" is invalid: the server rejected our request due to an error '
            f"in our request: testing value failed: {exc}"
        ) from exc
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise Invalid(f"the server rejected our request due to an error in our request: {exc}") from exc


def _merge_key(field: str, items: list[Any]) -> str | None:
    if field in MERGE_KEYS:
        return MERGE_KEYS[field]
    if field == "ports":
        sample = next((item for item in items if isinstance(item, dict)), {})
        return next((key for key in _PORT_KEYS if key in sample), None)
    return None


def _merge_list(field: str, target: list[Any], patch: list[Any]) -> list[Any]:
    key = _merge_key(field, patch + target)
    if field in _MERGED_PRIMITIVE_LISTS:
        return target + [item for item in patch if item not in target]
    if key is None:
        return [_strip_directives(item) for item in patch]
    result = list(target)
    for item in patch:
        if not isinstance(item, dict):
            continue
        index = next(
            (i for i, old in enumerate(result) if isinstance(old, dict) and old.get(key) == item.get(key)),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                result.pop(index)
        elif index is None:
            result.append(_strip_directives(item))
        else:
            result[index] = strategic_merge(result[index], item)
    return result


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


def strategic_merge(target: Any, patch: Any) -> Any:
    """Strategic merge patch for the built-in kinds: named lists merge on their merge key.

    Directives kubectl sends are honoured (``$patch: replace|delete``,
    ``$deleteFromPrimitiveList/``) or ignored when they only order output (``$setElementOrder/``,
    ``$retainKeys``).
    """
    if not isinstance(patch, dict) or not isinstance(target, dict):
        return _strip_directives(patch)
    if patch.get("$patch") == "replace":
        return _strip_directives(patch)
    result = dict(target)
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [v for v in result.get(field, []) if v not in value]
        elif key.startswith("$"):
            continue
        elif value is None:
            result.pop(key, None)
        elif isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _merge_list(key, result[key], value)
        elif isinstance(value, dict) and value.get("$patch") == "delete":
            result.pop(key, None)
        else:
            result[key] = strategic_merge(result.get(key), value)
    return result


def apply_patch(
    content_type: str, target: dict[str, Any], patch: Any, *, custom: bool, kind: str, name: str
) -> dict[str, Any]:
    """Dispatch on the PATCH ``Content-Type``."""
    base = content_type.split(";", maxsplit=1)[0].strip()
    if base == "application/json-patch+json":
        return json_patch(target, patch, kind, name)
    if not isinstance(patch, dict):
        raise BadRequest("patch body must be a JSON object")
    if base == "application/merge-patch+json":
        return merge_patch(target, patch)  # type: ignore[no-any-return]
    if base == "application/strategic-merge-patch+json":
        if custom:
            # Real servers refuse it for custom resources, and kubectl then falls back to merge patch.
            raise UnsupportedMediaType(
                f"the body of the request was in an unknown format - accepted media types include: "
                f"application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
                f" (strategic merge patch is not supported for {kind})"
            )
        return strategic_merge(target, patch)  # type: ignore[no-any-return]
    if base == "application/apply-patch+yaml":
        # Server-side apply, approximated: fields in the applied config win; no managedFields.
        merged = merge_patch(target, patch) if custom else strategic_merge(target, patch)
        return merged  # type: ignore[no-any-return]
    raise UnsupportedMediaType(f"unsupported patch content type {base!r}")
