"""Fault injection: make matching requests fail or slow down, drop watch streams, expire history.

Rules are matched in the order they were added; each fires ``count`` times (``None``: until cleared).
The same operations are reachable over HTTP under ``/kubesim/`` so tests of subprocesses can use them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError, Conflict, Gone

__all__ = ["FaultRule", "Faults"]

_REASONS = {409: Conflict, 410: Gone}
_OTHER = {429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout"}


@dataclass(kw_only=True)
class FaultRule:
    """Fail (``status``) and/or delay (``delay`` seconds) the next ``count`` matching requests.

    ``verb``: get, list, watch, create, update, patch, delete, deletecollection or ``*``;
    ``resource``: a plural (``configmaps``), ``plural/subresource`` (``widgets/status``) or ``*``;
    ``namespace`` and ``name`` narrow it further when set.
    """

    verb: str = "*"
    resource: str = "*"
    namespace: str | None = None
    name: str | None = None
    status: int | None = None
    message: str = "injected by kubesim"
    delay: float = 0.0
    count: int | None = 1
    retry_after: int = 1
    hits: int = field(default=0)

    def matches(self, verb: str, resource: str, namespace: str, name: str) -> bool:
        return (
            (self.verb in ("*", verb))
            and self.resource in ("*", resource, resource.split("/", maxsplit=1)[0])
            and self.namespace in (None, namespace)
            and self.name in (None, name)
        )

    def error(self) -> ApiError:
        assert self.status is not None
        if self.status in _REASONS:
            return _REASONS[self.status](self.message)
        headers = {"Retry-After": str(self.retry_after)} if self.status == 429 else {}
        exc = ApiError(self.message, headers=headers)
        exc.code, exc.reason = self.status, _OTHER.get(self.status, "InternalError")
        return exc

    def to_json(self) -> dict[str, Any]:
        return {
            k: getattr(self, k)
            for k in ("verb", "resource", "namespace", "name", "status", "message", "delay", "count", "hits")
        }


class Faults:
    """The server's active fault rules."""

    def __init__(self) -> None:
        self.rules: list[FaultRule] = []

    def add(self, rule: FaultRule) -> FaultRule:
        self.rules.append(rule)
        return rule

    def fail_next(
        self, count: int = 1, status: int = 500, *, verb: str = "*", resource: str = "*", **narrow: Any
    ) -> FaultRule:
        """The next ``count`` matching requests fail with ``status`` (409, 410, 429, 500, ...)."""
        return self.add(FaultRule(count=count, status=status, verb=verb, resource=resource, **narrow))

    def delay(
        self, seconds: float, *, count: int | None = None, verb: str = "*", resource: str = "*", **narrow: Any
    ) -> FaultRule:
        """Delay matching requests by ``seconds`` (all of them until cleared, unless ``count``)."""
        return self.add(FaultRule(delay=seconds, count=count, verb=verb, resource=resource, **narrow))

    def clear(self) -> None:
        self.rules.clear()

    def take(self, verb: str, resource: str, namespace: str, name: str) -> list[FaultRule]:
        """Rules that fire for this request (consuming one of their counts)."""
        fired = []
        for rule in list(self.rules):
            if rule.matches(verb, resource, namespace, name):
                rule.hits += 1
                fired.append(rule)
                if rule.count is not None and rule.hits >= rule.count:
                    self.rules.remove(rule)
        return fired

    async def apply(self, verb: str, resource: str, namespace: str, name: str) -> None:
        """Sleep for delays, then raise the first failure among the fired rules."""
        fired = self.take(verb, resource, namespace, name)
        for rule in fired:
            if rule.delay:
                await asyncio.sleep(rule.delay)
        for rule in fired:
            if rule.status is not None:
                raise rule.error()
