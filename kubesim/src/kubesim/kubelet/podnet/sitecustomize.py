"""Per-pod "network namespace" for Python programs run by kubesim's process runtime.

kubesim has no network namespaces: all pods share the host's. A server binding the wildcard
address (``0.0.0.0:9090``, as the operator's manifests do) would take that port on every address and
collide with the next pod of the same Deployment. kubesim puts this directory on ``PYTHONPATH`` of
every container process and sets ``KUBESIM_POD_IP``; Python then rewrites wildcard IPv4 binds
(``socket.bind``, grpc ``add_insecure_port``/``add_secure_port``) to the pod's own IP, so each pod
listens on its IP only — what a pod's network namespace gives a real pod. Non-Python programs are
not affected (they should bind ``$(POD_IP)``).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import socket
import sys
from typing import Any

_POD_IP = os.environ.get("KUBESIM_POD_IP", "")
_WILDCARDS = ("", "0.0.0.0", "[::]", "::", "*")  # noqa: S104 - these are the binds being rewritten


def _bind(self: socket.socket, address: Any, _orig: Any = socket.socket.bind) -> None:
    if self.family == socket.AF_INET and isinstance(address, tuple) and address[0] in _WILDCARDS:
        address = (_POD_IP, *address[1:])
    _orig(self, address)


def _grpc_address(address: str) -> str:
    host, sep, port = address.rpartition(":")
    if sep and host in _WILDCARDS:
        return f"{_POD_IP}:{port}"
    return address


def _patch_grpc(module: Any) -> None:
    cls = getattr(module, "Server", None) or getattr(module, "_Server", None)
    for name in ("add_insecure_port", "add_secure_port"):
        original = getattr(cls, name, None)
        if original is None:
            continue

        def patched(self: Any, address: str, *args: Any, _orig: Any = original) -> Any:
            return _orig(self, _grpc_address(address), *args)

        setattr(cls, name, patched)


class _GrpcFinder(importlib.abc.MetaPathFinder):
    """Patches grpc's server classes right after their modules are imported."""

    targets = ("grpc._server", "grpc.aio._server")

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in self.targets:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        loader = spec.loader
        original = loader.exec_module

        def exec_module(module: Any) -> None:
            original(module)
            _patch_grpc(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


if _POD_IP:
    socket.socket.bind = _bind  # type: ignore[method-assign,assignment]
    sys.meta_path.insert(0, _GrpcFinder())
