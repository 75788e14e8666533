"""kubesim: an in-memory Kubernetes API server emulator for tests.

Real clients (the official ``kubernetes`` client, ``kubernetes_asyncio``, ``kubectl``, Kopf) talk to
it over HTTP(S); tests control it through :class:`KubeSim` (state in ``.store``, fault injection in
``.faults``) or through its ``/kubesim/`` admin endpoints. Exports load lazily, so the small programs
kubesim runs inside pods (sandbox, stand-in buildctl) start without the server's imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import ApiError
    from .faults import FaultRule, Faults
    from .kubelet.images import ImageMap
    from .scheduling import node_object
    from .server import KubeSim
    from .store import Store

__all__ = ["ApiError", "FaultRule", "Faults", "ImageMap", "KubeSim", "Store", "node_object"]

_LAZY = {
    "ApiError": ".errors",
    "FaultRule": ".faults",
    "Faults": ".faults",
    "ImageMap": ".kubelet.images",
    "KubeSim": ".server",
    "Store": ".store",
    "node_object": ".scheduling",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
