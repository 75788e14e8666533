"""``token`` auth: static bearer tokens, stored only as hashes, each mapped to a subject and pools.

Tokens look like ``bkct_<43 characters>`` (``buildkit-controller tokens create`` makes them), so
this method abstains at once on any other credential. The hashes live in a directory — in a
cluster, a Secret mounted read-only — with one JSON file per token::

    {"tokenHash": "sha256:…", "subject": "ci-bot", "pools": ["ci/*"]}

``BKC_AUTH_TOKEN_DIR`` names the directory (default ``/etc/buildkit-controller/tokens``). It is
re-read when it changes, so rotating a token needs no restart.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from buildkit_controller.core import hookimpl, tokens
from buildkit_controller.core.errors import AuthenticationError, ConfigError
from buildkit_controller.core.models import AuthRequest, Identity, Runtime

__all__ = ["DEFAULT_DIR", "PREFIX", "TokenAuth", "new_static_token"]

PREFIX = "bkct_"
DEFAULT_DIR = "/etc/buildkit-controller/tokens"


@dataclass(frozen=True, kw_only=True)
class _Entry:
    subject: str
    pools: tuple[str, ...] | None


def new_static_token(subject: str, pools: list[str] | None) -> tuple[str, dict[str, Any]]:
    """A new token and the JSON entry (hash only) to store for it."""
    token = PREFIX + tokens.new_token()
    entry: dict[str, Any] = {"tokenHash": tokens.hash_token(token), "subject": subject}
    if pools is not None:
        entry["pools"] = pools
    return token, entry


def _parse(path: Path) -> tuple[str, _Entry]:
    try:
        data = json.loads(path.read_text())
        pools = data.get("pools")
        entry = _Entry(subject=str(data["subject"]), pools=tuple(pools) if pools is not None else None)
        return str(data["tokenHash"]), entry
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"token entry {path.name} is not valid: {type(exc).__name__}") from None


class TokenAuth:
    """The built-in ``token`` auth method."""

    def __init__(self) -> None:
        self._directory = Path(DEFAULT_DIR)
        self._stamp: tuple[tuple[str, float], ...] | None = None
        self._entries: Mapping[str, _Entry] = {}

    @hookimpl
    def bkc_configure(self, runtime: Runtime) -> None:
        self._directory = Path(runtime.environ.get("BKC_AUTH_TOKEN_DIR", DEFAULT_DIR))

    def _files(self) -> list[Path]:
        if not self._directory.is_dir():
            return []
        return sorted(p for p in self._directory.iterdir() if p.is_file() and not p.name.startswith("."))

    def _load(self) -> Mapping[str, _Entry]:
        files = self._files()
        stamp = tuple((p.name, os.stat(p).st_mtime) for p in files)  # names too: renames count
        if stamp != self._stamp:
            self._entries, self._stamp = dict(_parse(p) for p in files), stamp
        return self._entries

    @hookimpl
    def bkc_authenticate(self, request: AuthRequest) -> Identity | None:
        if not request.bearer or not request.bearer.startswith(PREFIX):
            return None
        entry = self._load().get(tokens.hash_token(request.bearer))
        if entry is None:
            raise AuthenticationError("unknown or revoked static token", method="token", reason="unknown")
        return Identity(subject=entry.subject, method="token", pools=entry.pools)
