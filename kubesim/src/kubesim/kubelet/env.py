"""A container's environment as the kubelet builds it, and ``$(VAR)`` expansion.

Emulated: ``env`` (value, ``valueFrom`` secretKeyRef / configMapKeyRef with ``optional``,
fieldRef ``metadata.name|namespace|uid``, ``metadata.labels['k']``, ``metadata.annotations['k']``,
``spec.nodeName``, ``spec.serviceAccountName``, ``status.podIP``, ``status.hostIP``), ``envFrom``
(secretRef / configMapRef with ``prefix``), ``KUBERNETES_SERVICE_HOST``/``PORT`` and ``HOSTNAME``.
``$(VAR)`` refers to variables defined earlier (or the service variables), ``$$`` escapes a ``$``, an
unknown reference stays as written — the real kubelet's rules. ``resourceFieldRef`` is not emulated.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

__all__ = ["EnvError", "build_env", "expand"]

_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
Lookup = Callable[[str, str], dict[str, Any] | None]  # (kind plural, name) → object


class EnvError(Exception):
    """A required Secret/ConfigMap (key) is missing: the container cannot start
    (``CreateContainerConfigError``)."""


def expand(text: str, env: dict[str, str]) -> str:
    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)

    return _REF.sub(sub, text)


def _field(pod: dict[str, Any], path: str) -> str:
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": status.get("podIP"),
        "status.hostIP": status.get("hostIP"),
    }
    if path in simple:
        return str(simple[path] or "")
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise EnvError(f"unsupported fieldPath {path!r}")


def _key_ref(lookup: Lookup, plural: str, ref: dict[str, Any]) -> str | None:
    obj = lookup(plural, ref.get("name", ""))
    data = (obj or {}).get("data") or {}
    if obj is None or ref.get("key") not in data:
        if ref.get("optional"):
            return None
        what = "secret" if plural == "secrets" else "configmap"
        raise EnvError(f"couldn't find key {ref.get('key')} in {what} {ref.get('name')}")
    value = data[ref["key"]]
    return base64.b64decode(value).decode() if plural == "secrets" else str(value)


def _from_sources(container: dict[str, Any], lookup: Lookup) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container.get("envFrom") or ():
        for field, plural in (("secretRef", "secrets"), ("configMapRef", "configmaps")):
            ref = source.get(field)
            if not ref:
                continue
            obj = lookup(plural, ref.get("name", ""))
            if obj is None and not ref.get("optional"):
                raise EnvError(f"{plural[:-1]} {ref.get('name')!r} not found")
            for key, value in ((obj or {}).get("data") or {}).items():
                text = base64.b64decode(value).decode() if plural == "secrets" else str(value)
                env[source.get("prefix", "") + key] = text
    return env


def build_env(pod: dict[str, Any], container: dict[str, Any], lookup: Lookup, base: dict[str, str]) -> dict[str, str]:
    """``base`` (service variables, PATH, ...) + envFrom + env, in the kubelet's order."""
    env = dict(base)
    env["HOSTNAME"] = pod["metadata"]["name"]
    env.update(_from_sources(container, lookup))
    for var in container.get("env") or ():
        name = var["name"]
        source = var.get("valueFrom")
        if not source:
            env[name] = expand(str(var.get("value", "")), env)
            continue
        value: str | None
        if "fieldRef" in source:
            value = _field(pod, source["fieldRef"].get("fieldPath", ""))
        elif "secretKeyRef" in source:
            value = _key_ref(lookup, "secrets", source["secretKeyRef"])
        elif "configMapKeyRef" in source:
            value = _key_ref(lookup, "configmaps", source["configMapKeyRef"])
        else:
            value = ""
        if value is not None:
            env[name] = value
    return env
