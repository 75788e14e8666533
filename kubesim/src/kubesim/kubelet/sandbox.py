"""The pod sandbox: a small process that owns the pod's mount namespace, like the real ``pause``.

Run as ``unshare --mount --propagation private -- python -m kubesim.kubelet.sandbox SPEC.json`` (as
root). It builds a new root on a tmpfs whose top-level entries are recursive bind mounts of the host's
(so the host's programs, Python and /proc stay visible) except ``/run``, which is a private tmpfs
per pod (as a container's own /run would be), bind-mounts each volume at its mountPath and
``chroot``\\ s into that root. A mountPath under a host directory (``/etc/gateway/tls``) is made by
"shadowing" the parent inside the namespace: the host directory is bound aside, a tmpfs covers it, and
its entries are bound back — so nothing is created on the host and other processes never see the
path. Containers, exec probes and preStop hooks join with ``nsenter --target PID --mount --root``.
Prints ``READY`` once set up and then sleeps until SIGTERM/SIGKILL (it dies with kubesim: pdeathsig).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from kubesim.kubelet.process import sweep

MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC = 1, 32, 4096, 16384
_libc = ctypes.CDLL(None, use_errno=True)


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    rc = _libc.mount(
        source.encode(),
        target.encode(),
        fstype.encode() if fstype else None,
        flags,
        data.encode() if data else None,
    )
    if rc != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {source} on {target}: {os.strerror(errno)}")


class RootBuilder:
    """Builds the pod's root under ``root`` (a tmpfs), staging shadowed host dirs under ``stage``."""

    def __init__(self, root: Path, stage: Path) -> None:
        self.root, self.stage = root, stage
        self.owned: set[Path] = {root}  # directories on our own tmpfs: writable without touching the host
        self._staged = 0

    def build(self) -> None:
        _mount("tmpfs", str(self.root), "tmpfs", 0, "mode=755")
        self._populate(Path("/"), self.root)
        private = self.root / "run"  # each pod gets its own /run (sockets like /run/user/1000/buildkit)
        if private.is_dir() and not private.is_symlink():
            _mount("tmpfs", str(private), "tmpfs", 0, "mode=755")
            self.owned.add(private)

    def _populate(self, source: Path, target: Path) -> None:
        for entry in sorted(os.listdir(source)):
            src, dst = source / entry, target / entry
            if src.is_symlink():
                dst.symlink_to(os.readlink(src))
            elif src.is_dir():
                dst.mkdir()
                _mount(str(src), str(dst), None, MS_BIND | MS_REC)
            elif src.exists():
                dst.touch()
                _mount(str(src), str(dst), None, MS_BIND)

    def _shadow(self, directory: Path) -> None:
        """Cover a bind-mounted host directory with a tmpfs holding binds of its entries."""
        self._staged += 1
        aside = self.stage / str(self._staged)
        aside.mkdir(parents=True)
        _mount(str(directory), str(aside), None, MS_BIND | MS_REC)
        _mount("tmpfs", str(directory), "tmpfs", 0, "mode=755")
        self._populate(aside, directory)
        self.owned.add(directory)

    def resolve_dir(self, path: str) -> Path:
        """The directory for absolute ``path`` inside the root, created (shadowing) as needed;
        symlinks are followed relative to the root, as they would be after chroot."""
        current = self.root
        parts = [p for p in path.split("/") if p]
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                current = current.parent if current != self.root else current
                continue
            nxt = current / part
            if nxt.is_symlink():
                hops += 1
                if hops > 40:
                    raise OSError(f"too many symlinks resolving {path}")
                link = os.readlink(nxt)
                parts = [p for p in link.split("/") if p] + parts
                current = self.root if link.startswith("/") else current
                continue
            if not nxt.exists():
                if current not in self.owned:
                    self._shadow(current)
                nxt.mkdir()
                self.owned.add(nxt)
            current = nxt
        return current

    def bind(self, source: str, target: str, read_only: bool) -> None:
        parent, name = target.rstrip("/").rsplit("/", 1)
        base = self.resolve_dir(parent or "/")
        dst = base / name
        if dst.is_symlink():
            dst = self.resolve_dir(target)
        elif not dst.exists():
            if base not in self.owned:
                self._shadow(base)
            if os.path.isdir(source):
                dst.mkdir()
                self.owned.add(dst)
            else:
                dst.touch()
        _mount(source, str(dst), None, MS_BIND | MS_REC)
        if read_only:
            _mount("none", str(dst), None, MS_BIND | MS_REMOUNT | MS_RDONLY)


def setup(spec: dict[str, Any]) -> None:
    builder = RootBuilder(Path(spec["root"]), Path(spec["stage"]))
    builder.build()
    for mount in sorted(spec["mounts"], key=lambda m: m["target"].count("/")):
        builder.bind(mount["source"], mount["target"], bool(mount.get("readOnly")))
    os.chroot(spec["root"])
    os.chdir("/")


def _guard(pod_uid: str) -> None:
    """On SIGTERM (also sent when kubesim dies: ``--pdeathsig TERM``) kill every process of the pod,
    including children that left their container's process group, then exit."""

    def stop(*_: object) -> None:
        sweep(pod_uid)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    _guard(spec.get("uid", ""))
    try:
        setup(spec)
    except OSError as exc:
        print(f"FAILED {exc}", flush=True)
        return 1
    print("READY", flush=True)
    while True:
        signal.pause()


if __name__ == "__main__":
    sys.exit(main())
