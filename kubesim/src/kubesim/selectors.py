"""Label and field selectors, parsed once per request and matched against stored objects."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import BadRequest

__all__ = ["FieldSelector", "LabelSelector", "Selector"]

_SET_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")
_EQ_RE = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|!=|=)\s*([A-Za-z0-9_.-]*)\s*$")


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside ``in (...)`` value lists."""
    terms, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        terms.append(current)
    return terms


Requirement = Callable[[dict[str, str]], bool]


def _requirement(term: str) -> Requirement:
    eq = _EQ_RE.match(term)
    if eq:
        key, op, value = eq.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    match = _SET_RE.match(term)
    if not match:
        raise BadRequest(f"unable to parse requirement: {term!r}")
    negate, key, op, values = match.groups()
    if op:
        allowed = {v.strip() for v in values.split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in allowed
        return lambda labels: labels.get(key) not in allowed
    if negate:
        return lambda labels: key not in labels
    return lambda labels: key in labels


@dataclass(frozen=True)
class LabelSelector:
    """``=``, ``==``, ``!=``, ``in``, ``notin``, ``key`` and ``!key`` requirements, all ANDed."""

    requirements: tuple[Requirement, ...]

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        return cls(tuple(_requirement(term) for term in _split_terms(text or "")))

    def matches(self, obj: dict[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(req(labels) for req in self.requirements)


def _involved(key: str) -> Callable[[dict[str, Any]], Any]:
    return lambda obj: (obj.get("involvedObject") or {}).get(key, "")


_FIELD_GETTERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "metadata.name": lambda o: o.get("metadata", {}).get("name"),
    "metadata.namespace": lambda o: o.get("metadata", {}).get("namespace", ""),
    "status.phase": lambda o: (o.get("status") or {}).get("phase", ""),
    "spec.nodeName": lambda o: (o.get("spec") or {}).get("nodeName", ""),
    "spec.serviceAccountName": lambda o: (o.get("spec") or {}).get("serviceAccountName", ""),
    "type": lambda o: o.get("type", ""),
    "reason": lambda o: o.get("reason", ""),
    "reportingComponent": lambda o: o.get("reportingComponent", ""),
    "source": lambda o: (o.get("source") or {}).get("component", ""),
    **{  # kubectl describe finds an object's events with these
        f"involvedObject.{key}": _involved(key)
        for key in ("name", "namespace", "uid", "kind", "apiVersion", "resourceVersion", "fieldPath")
    },
}


@dataclass(frozen=True)
class FieldSelector:
    """Equality and inequality on the handful of fields real servers index."""

    terms: tuple[tuple[str, bool, str], ...]

    @classmethod
    def parse(cls, text: str | None) -> FieldSelector:
        terms = []
        for term in _split_terms(text or ""):
            match = _EQ_RE.match(term)
            if not match:
                raise BadRequest(f"invalid selector: {term!r}; can't understand {term!r}")
            path, op, value = match.groups()
            if path not in _FIELD_GETTERS:
                raise BadRequest(f"field label not supported: {path}")
            terms.append((path, op != "!=", value))
        return cls(tuple(terms))

    def matches(self, obj: dict[str, Any]) -> bool:
        return all(
            (str(_FIELD_GETTERS[path](obj) or "") == value) == equal for path, equal, value in self.terms
        )


@dataclass(frozen=True)
class Selector:
    """Namespace + label + field selection, as a list or watch request asks for it."""

    namespace: str | None = None
    labels: LabelSelector = LabelSelector(())
    fields: FieldSelector = FieldSelector(())

    @classmethod
    def parse(cls, namespace: str | None, labels: str | None, fields: str | None) -> Selector:
        return cls(namespace, LabelSelector.parse(labels), FieldSelector.parse(fields))

    def matches(self, obj: dict[str, Any]) -> bool:
        if self.namespace is not None and obj.get("metadata", {}).get("namespace") != self.namespace:
            return False
        return self.labels.matches(obj) and self.fields.matches(obj)
