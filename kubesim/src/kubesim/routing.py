"""Parse Kubernetes REST paths into what they address."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Target", "parse_path"]

_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})


@dataclass(frozen=True, kw_only=True)
class Target:
    """``/api/v1/namespaces/NS/PLURAL/NAME/SUB`` and its cluster-scoped and ``/apis/G/V`` forms.

    ``plural`` is empty for discovery paths (``/api/v1``, ``/apis/G``, ``/apis/G/V``).
    """

    group: str
    legacy: bool = False  # under /api (core group) rather than /apis
    version: str = ""
    plural: str = ""
    namespace: str = ""
    name: str = ""
    subresource: str = ""
    watch: bool = False  # the deprecated /watch/ path prefix


def parse_path(path: str) -> Target | None:
    parts = [p for p in path.split("/") if p]
    if not parts or parts[0] not in ("api", "apis"):
        return None
    legacy = parts[0] == "api"
    if legacy:
        group, rest = "", parts[1:]
    else:
        if len(parts) == 1:
            return Target(group="")
        group, rest = parts[1], parts[2:]
    if not rest:
        return Target(group=group, legacy=legacy)
    version, rest = rest[0], rest[1:]
    watch = bool(rest) and rest[0] == "watch"
    if watch:
        rest = rest[1:]
    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in _NAMESPACE_SUBRESOURCES:
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 3:
        return None
    plural, name, sub = ([*rest, "", "", ""])[:3]
    return Target(
        group=group,
        legacy=legacy,
        version=version,
        plural=plural,
        namespace=namespace,
        name=name,
        subresource=sub,
        watch=watch,
    )
