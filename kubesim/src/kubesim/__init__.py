"""kubesim: an in-memory Kubernetes API server emulator for tests.

Real clients (the official ``kubernetes`` client, ``kubernetes_asyncio``, ``kubectl``, Kopf) talk to
it over HTTP(S); tests control it through :class:`KubeSim` (state in ``.store``, fault injection in
``.faults``) or through its ``/kubesim/`` admin endpoints.
"""

from __future__ import annotations

from .errors import ApiError
from .faults import FaultRule, Faults
from .server import KubeSim
from .store import Store

__all__ = ["ApiError", "FaultRule", "Faults", "KubeSim", "Store"]
