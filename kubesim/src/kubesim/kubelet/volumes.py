"""Volume contents on the host side: each pod volume is a directory under the pod's work dir,
bind-mounted into the pod's mount namespace by the sandbox.

Secret, ConfigMap, projected (secret / configMap / serviceAccountToken / downwardAPI sources) and
downwardAPI volumes are written like the kubelet's atomic writer: files live in a timestamped
``..TIMESTAMP`` directory, ``..data`` points at it, and each top-level name is a symlink through
``..data`` — so a refresh after the object changed swaps ``..data`` atomically and readers never see
a half-written set. ``items`` (key → path, mode), ``defaultMode`` and ``optional`` are honoured.
emptyDir is a plain directory (``medium: Memory`` included). hostPath binds the host path.
"""

from __future__ import annotations

import base64
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .env import _field

__all__ = ["SA_MOUNT", "Files", "Missing", "token_volume", "volume_files", "write_atomic"]

SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
Files = dict[str, tuple[bytes, int]]  # relative path → (content, mode)
Lookup = Callable[[str, str], dict[str, Any] | None]
TokenSource = Callable[[str, int], str]  # (service account, expirationSeconds) → token


class Missing(Exception):
    """A non-optional source object or key is absent: the pod waits (``FailedMount``)."""


def _object_files(obj: dict[str, Any] | None, source: dict[str, Any], plural: str, default_mode: int) -> Files:
    if obj is None:
        if source.get("optional"):
            return {}
        raise Missing(f"{plural[:-1]} {source.get('name') or source.get('secretName')!r} not found")
    data = dict(obj.get("data") or {})
    decoded = {k: (base64.b64decode(v) if plural == "secrets" else str(v).encode()) for k, v in data.items()}
    if plural == "configmaps":
        decoded.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    items = source.get("items")
    if not items:
        return {k: (v, default_mode) for k, v in decoded.items()}
    files: Files = {}
    for item in items:
        if item["key"] not in decoded:
            if source.get("optional"):
                continue
            raise Missing(f"key {item['key']!r} not found in {plural[:-1]} {obj['metadata']['name']!r}")
        files[item["path"]] = (decoded[item["key"]], int(item.get("mode", default_mode)))
    return files


def volume_files(
    pod: dict[str, Any], volume: dict[str, Any], lookup: Lookup, tokens: TokenSource, ca_pem: bytes
) -> Files | None:
    """The files of a Secret/ConfigMap/projected/downwardAPI volume; None for other kinds."""
    if "secret" in volume:
        src = volume["secret"]
        mode = int(src.get("defaultMode", 0o644))
        return _object_files(lookup("secrets", src.get("secretName", "")), src, "secrets", mode)
    if "configMap" in volume:
        src = volume["configMap"]
        mode = int(src.get("defaultMode", 0o644))
        return _object_files(lookup("configmaps", src.get("name", "")), src, "configmaps", mode)
    if "downwardAPI" in volume:
        return _downward(pod, volume["downwardAPI"], int(volume["downwardAPI"].get("defaultMode", 0o644)))
    if "projected" in volume:
        return _projected(pod, volume["projected"], lookup, tokens, ca_pem)
    return None


def _downward(pod: dict[str, Any], source: dict[str, Any], mode: int) -> Files:
    files: Files = {}
    for item in source.get("items") or ():
        path = (item.get("fieldRef") or {}).get("fieldPath", "")
        if path in ("metadata.labels", "metadata.annotations"):
            values = pod["metadata"].get(path.split(".")[1]) or {}
            text = "\n".join(f'{k}="{v}"' for k, v in sorted(values.items()))
        else:
            text = _field(pod, path)
        files[item["path"]] = (text.encode(), int(item.get("mode", mode)))
    return files


def _projected(
    pod: dict[str, Any], source: dict[str, Any], lookup: Lookup, tokens: TokenSource, ca_pem: bytes
) -> Files:
    mode = int(source.get("defaultMode", 0o644))
    files: Files = {}
    for part in source.get("sources") or ():
        if "secret" in part:
            src = part["secret"]
            files.update(_object_files(lookup("secrets", src.get("name", "")), src, "secrets", mode))
        elif "configMap" in part:
            src = part["configMap"]
            files.update(_object_files(lookup("configmaps", src.get("name", "")), src, "configmaps", mode))
        elif "downwardAPI" in part:
            files.update(_downward(pod, part["downwardAPI"], mode))
        elif "serviceAccountToken" in part:
            src = part["serviceAccountToken"]
            account = (pod.get("spec") or {}).get("serviceAccountName") or "default"
            token = tokens(account, int(src.get("expirationSeconds", 3600)))
            files[src.get("path", "token")] = (token.encode(), mode)
    return files


def token_volume(pod: dict[str, Any], tokens: TokenSource, ca_pem: bytes) -> Files:
    """The automounted ServiceAccount volume: ``token``, ``ca.crt`` (kubesim's CA), ``namespace``."""
    account = (pod.get("spec") or {}).get("serviceAccountName") or "default"
    return {
        "token": (tokens(account, 3607).encode(), 0o644),
        "ca.crt": (ca_pem, 0o644),
        "namespace": (pod["metadata"]["namespace"].encode(), 0o644),
    }


def write_atomic(directory: Path, files: Files) -> None:
    """Make ``directory`` hold exactly ``files``, switching ``..data`` in one rename."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = directory / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns()}"
    stamp.mkdir()
    for rel, (content, mode) in files.items():
        target = stamp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        target.chmod(mode)
    data = directory / "..data"
    old = os.readlink(data) if data.is_symlink() else None
    tmp = directory / "..data_tmp"
    if tmp.is_symlink():
        tmp.unlink()
    tmp.symlink_to(stamp.name)
    tmp.rename(data)
    tops = {rel.split("/", 1)[0] for rel in files}
    for entry in directory.iterdir():
        if not entry.name.startswith("..") and entry.name not in tops:
            entry.unlink()
    for top in tops:
        link = directory / top
        if not link.is_symlink():
            link.symlink_to(f"..data/{top}")
    if old and old != stamp.name:
        shutil.rmtree(directory / old, ignore_errors=True)
