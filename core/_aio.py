"""Awaiting hook results: pluggy is synchronous, so may-await hooks return awaitables.

The kernel awaits them one at a time, in call order (the datasette ``await_me_maybe`` idea), so a
chain stops at the first answer without starting the work of the methods after it.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable
from typing import Any, TypeVar

from buildkit_controller.core._loader import PluginHost

__all__ = ["first_answer", "resolve", "resolve_all"]

T = TypeVar("T")


async def resolve(value: T | Awaitable[T]) -> T:
    """Return ``value``, awaiting it first if it is awaitable."""
    if inspect.isawaitable(value):
        return await value
    return value


async def resolve_all(values: list[Any]) -> list[Any]:
    """Resolve every hook result in call order (never concurrently: order is part of the contract)."""
    return [await resolve(value) for value in values]


async def first_answer(host: PluginHost, group: str, hook: str, **kwargs: Any) -> tuple[str, Any] | None:
    """Walk the enabled plugins of ``group`` in configured order; return the first non-``None``
    answer with the plugin's name. Exceptions (rejections) propagate and end the chain."""
    for name in host.names(group):
        answer = await resolve(host.call(group, name, hook, **kwargs))
        if answer is not None:
            return name, answer
    return None
