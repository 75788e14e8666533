"""The simulated kubelet (:mod:`kubesim.kubelet.kubelet`) and its process runtime.

Exports are loaded lazily: pod processes (the sandbox, ``buildctl``) import submodules of this
package and must start fast, without the API server's modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .images import ImageMap
    from .kubelet import Kubelet, KubeletConfig

__all__ = ["ImageMap", "Kubelet", "KubeletConfig"]

_LAZY = {"ImageMap": ".images", "Kubelet": ".kubelet", "KubeletConfig": ".kubelet"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
