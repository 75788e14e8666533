"""CRD structural schemas: pruning, defaulting and validation, in the order a real server applies them.

Validation goes through ``jsonschema``'s Draft 4 validator because OpenAPI v3.0 keeps Draft 4's
boolean ``exclusiveMinimum``/``exclusiveMaximum``; the Kubernetes extensions (``nullable``,
``x-kubernetes-int-or-string``, ``x-kubernetes-preserve-unknown-fields``) are translated first.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from typing import Any

import jsonschema

__all__ = ["apply_defaults", "prune", "validate"]

_ROOT_KEPT = ("apiVersion", "kind", "metadata")


def prune(obj: Any, schema: dict[str, Any], path: str = "", *, root: bool = False) -> list[str]:
    """Drop fields the schema does not declare (in place); returns the dropped paths."""
    dropped: list[str] = []
    if isinstance(obj, dict):
        if schema.get("x-kubernetes-preserve-unknown-fields") and "properties" not in schema:
            return dropped
        props: dict[str, Any] = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key in list(obj):
            if (root or schema.get("x-kubernetes-embedded-resource")) and key in _ROOT_KEPT:
                continue
            child = f"{path}.{key}" if path else key
            if key in props:
                dropped += prune(obj[key], props[key], child)
            elif isinstance(extra, dict):
                dropped += prune(obj[key], extra, child)
            elif extra is True or schema.get("x-kubernetes-preserve-unknown-fields"):
                continue
            else:
                del obj[key]
                dropped.append(child)
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(obj):
            dropped += prune(item, schema["items"], f"{path}[{index}]")
    return dropped


def apply_defaults(obj: Any, schema: dict[str, Any]) -> None:
    """Fill ``default`` values for absent properties of objects that are present (in place)."""
    if isinstance(obj, dict):
        for key, prop in (schema.get("properties") or {}).items():
            if key not in obj and "default" in prop:
                obj[key] = copy.deepcopy(prop["default"])
            if key in obj:
                apply_defaults(obj[key], prop)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key, value in obj.items():
                if key not in (schema.get("properties") or {}):
                    apply_defaults(value, extra)
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for item in obj:
            apply_defaults(item, schema["items"])


def _to_jsonschema(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_to_jsonschema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {
        k: _to_jsonschema(v)
        for k, v in schema.items()
        if not k.startswith("x-kubernetes-") and k not in ("nullable", "default", "example")
    }
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}, *out.get("anyOf", [])]
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


@lru_cache(maxsize=256)
def _validator(schema_json: str) -> jsonschema.Draft4Validator:
    return jsonschema.Draft4Validator(_to_jsonschema(json.loads(schema_json)))


def _field_path(error: jsonschema.ValidationError) -> str:
    parts = ""
    for part in error.absolute_path:
        parts += f"[{part}]" if isinstance(part, int) else (f".{part}" if parts else str(part))
    if error.validator == "required":
        missing = str(error.message).split("'")[1]
        parts = f"{parts}.{missing}" if parts else missing
    return parts or "<root>"


def _message(error: jsonschema.ValidationError, field: str) -> str:
    """Phrase the error as kube-apiserver does, e.g. ``Invalid value: "x": spec.size in body ...``."""
    value = json.dumps(error.instance)
    kind = error.validator
    if kind == "required":
        return "Required value"
    if kind == "type":
        return (
            f'Invalid value: "{_json_type(error.instance)}": {field} in body must be of type '
            f'{_type_text(error.validator_value)}: "{_json_type(error.instance)}"'
        )
    if kind == "enum":
        allowed = ", ".join(json.dumps(v) for v in error.validator_value)
        return f"Unsupported value: {value}: supported values: {allowed}"
    if kind in ("minimum", "maximum"):
        word = "greater" if kind == "minimum" else "less"
        return (
            f"Invalid value: {value}: {field} in body should be {word} than or equal to "
            f"{error.validator_value}"
        )
    if kind == "pattern":
        return f"Invalid value: {value}: {field} in body should match '{error.validator_value}'"
    return f"Invalid value: {value}: {field} in body {error.message}"


def _type_text(expected: Any) -> str:
    return ",".join(expected) if isinstance(expected, list) else str(expected)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return {float: "number", str: "string", list: "array", dict: "object", type(None): "null"}[type(value)]


def validate(obj: dict[str, Any], schema: dict[str, Any]) -> list[tuple[str, str]]:
    """``(field, message)`` for every violation; metadata is not validated against the schema."""
    body = {k: v for k, v in obj.items() if k not in _ROOT_KEPT}
    trimmed = dict(schema)
    trimmed["properties"] = {k: v for k, v in (schema.get("properties") or {}).items() if k not in _ROOT_KEPT}
    validator = _validator(json.dumps(trimmed, sort_keys=True))
    causes = []
    for error in sorted(validator.iter_errors(body), key=lambda e: list(map(str, e.absolute_path))):
        field = _field_path(error)
        causes.append((field, _message(error, field)))
    return causes
