"""TLS for both sides of the gateway, and hot reload of the mounted certificate folders.

Client side: TLS 1.2+, a client certificate is required and must chain to the pool's tenant CA
bundle (nothing else is trusted: no system CAs), ALPN offers h2 and http/1.1. Worker side: the
gateway's worker-client certificate, the worker CA bundle, and the pool's one worker DNS name is
checked (never the pod IP). Worker-side contexts are cached per (endpoint, ALPN) and each remembers
the last TLS session it saw, so reconnecting to the same worker resumes instead of doing a full
handshake (nginx's ``proxy_ssl_session_reuse``); a session never goes to another worker.
"""

from __future__ import annotations

import logging
import os
import ssl
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ALPN_PROTOCOLS", "CertificateFiles", "TLSContexts", "client_context", "server_context"]

log = logging.getLogger(__name__)

#: What the gateway offers clients; the client's choice is what it asks the worker for.
ALPN_PROTOCOLS = ("h2", "http/1.1")
_MAX_UPSTREAM_CONTEXTS = 512  # endpoints x ALPN values; workers come and go, so bound the cache
_FILES = ("tls.crt", "tls.key", "ca.crt")
_SESSION_REFRESH = 300.0  # seconds; far below ticket lifetimes (OpenSSL 2 h, Go 7 days)


@dataclass(frozen=True, slots=True)
class CertificateFiles:
    """``tls.crt``, ``tls.key`` and ``ca.crt`` in one mounted folder."""

    folder: Path

    def paths(self) -> list[Path]:
        return [self.folder / name for name in _FILES]

    def signature(self) -> tuple[tuple[int, int, int], ...]:
        """Changes when any file changes, including a kubelet ``..data`` symlink swap (stat follows
        links, so the new target's inode shows up)."""
        stats = [os.stat(path) for path in self.paths()]
        return tuple((st.st_ino, st.st_mtime_ns, st.st_size) for st in stats)


def server_context(files: CertificateFiles) -> ssl.SSLContext:
    """The client-facing context: mutual TLS against the tenant CA bundle only."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(files.folder / "tls.crt", files.folder / "tls.key")
    ctx.load_verify_locations(cafile=files.folder / "ca.crt")
    ctx.set_alpn_protocols(list(ALPN_PROTOCOLS))
    return ctx


class _ResumingContext(ssl.SSLContext):
    """Offers the last session seen on this context. asyncio's and uvloop's SSL protocols create
    their SSL objects through ``wrap_bio``, so overriding it is the one hook both honour."""

    last_session: ssl.SSLSession | None = None
    remembered_at = float("-inf")

    def wrap_bio(self, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO, server_side: bool = False,
                 server_hostname: str | bytes | None = None,
                 session: ssl.SSLSession | None = None) -> ssl.SSLObject:
        return super().wrap_bio(incoming, outgoing, server_side, server_hostname,
                                session=session or self.last_session)

    def remember(self, ssl_object: Any) -> None:
        """Keep ``ssl_object``'s session if it can be resumed (TLS 1.3: once a ticket arrived).

        Reading ``.session`` costs about 0.4 ms (CPython copies the session through DER, peer
        certificate included), so a connection that resumed the kept session does not replace it
        until it is a few minutes old; servers accept a ticket more than once (OpenSSL, Go).
        """
        now = time.monotonic()
        if ssl_object.session_reused and now - self.remembered_at < _SESSION_REFRESH:
            return
        session = ssl_object.session
        if session is not None and session.has_ticket:
            self.last_session, self.remembered_at = session, now


def client_context(files: CertificateFiles, server_name: str, alpn: str | None) -> _ResumingContext:
    """A worker-facing context: the gateway's client certificate, the worker CA bundle only."""
    ctx = _ResumingContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(files.folder / "tls.crt", files.folder / "tls.key")
    ctx.load_verify_locations(cafile=files.folder / "ca.crt")
    ctx.check_hostname = True  # against server_name, the pool's worker DNS name
    if alpn:
        ctx.set_alpn_protocols([alpn])
    return ctx


class TLSContexts:
    """The current contexts of both sides; :meth:`reload_if_changed` swaps them atomically.

    Live connections keep the contexts they were made with; only new ones see a reload. A reload
    that fails (files half-written, key not matching) keeps the old contexts and is retried.
    """

    def __init__(self, tls_dir: Path, worker_client_dir: Path, worker_server_name: str) -> None:
        self._server_files = CertificateFiles(tls_dir)
        self._client_files = CertificateFiles(worker_client_dir)
        self._server_name = worker_server_name
        self._signature = self._current_signature()
        self.server = server_context(self._server_files)
        self._check_client_files()
        self._upstream: OrderedDict[tuple[str, str | None], _ResumingContext] = OrderedDict()

    def upstream(self, endpoint: str, alpn: str | None) -> _ResumingContext:
        """The worker-facing context for ``endpoint`` (its session cache) and this ALPN value."""
        key = (endpoint, alpn)
        ctx = self._upstream.get(key)
        if ctx is None:
            ctx = client_context(self._client_files, self._server_name, alpn)
            self._upstream[key] = ctx
            if len(self._upstream) > _MAX_UPSTREAM_CONTEXTS:
                self._upstream.popitem(last=False)
        else:
            self._upstream.move_to_end(key)
        return ctx

    def reload_if_changed(self) -> bool | None:
        """Reload when any file changed: True if reloaded, False if it failed, None if unchanged."""
        try:
            signature = self._current_signature()
        except OSError as exc:  # mid-swap: a file is briefly missing
            log.warning("certificate files unreadable, keeping the current ones: %s", exc)
            return False
        if signature == self._signature:
            return None
        try:
            server = server_context(self._server_files)
            self._check_client_files()
        except (OSError, ssl.SSLError, ValueError) as exc:
            log.warning("certificate reload failed, keeping the current ones: %s", exc)
            return False
        self.server, self._signature = server, signature
        self._upstream.clear()  # old sessions were made with the old client certificate
        log.info("certificates reloaded from %s and %s", self._server_files.folder,
                 self._client_files.folder)
        return True

    def _current_signature(self) -> tuple[Any, ...]:
        return self._server_files.signature() + self._client_files.signature()

    def _check_client_files(self) -> None:
        # Built once and dropped: a broken worker-client folder fails start-up and reloads loudly
        # instead of failing every connection later.
        client_context(self._client_files, self._server_name, None)
