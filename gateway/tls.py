"""TLS for both sides of the gateway, and hot reload of the mounted certificate folders.

Client side: TLS 1.2+, a client certificate is required and must chain to the pool's tenant CA
bundle (nothing else is trusted: no system CAs), ALPN offers h2 and http/1.1. Worker side: the
gateway's worker-client certificate, the worker CA bundle, and the pool's one worker DNS name is
checked (never the pod IP). Worker-side contexts are cached per (endpoint, ALPN) and each remembers
the last TLS session it saw, so reconnecting to the same worker resumes instead of doing a full
handshake (nginx's ``proxy_ssl_session_reuse``); a session never goes to another worker.
"""

from __future__ import annotations

import _ssl
import ctypes
import logging
import os
import socket
import ssl
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ALPN_PROTOCOLS", "CertificateFiles", "TLSContexts", "accept", "client_context", "server_context"]

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
    _tune(ctx)
    return ctx


#: ``SSL_CTX_set_mode`` and ``SSL_CTX_set_read_ahead`` are macros over ``SSL_CTX_ctrl``; values
#: from OpenSSL's ``ssl.h``.
_SSL_CTRL_MODE, _SSL_MODE_NO_AUTO_CHAIN, _SSL_CTRL_SET_READ_AHEAD = 33, 0x8, 41


class _Native:
    """The few OpenSSL calls the stdlib does not offer, on the objects CPython wraps.

    - ``SSL_set_session`` without CPython's copy: the stdlib's ``session=`` first duplicates the
      session through DER (``i2d``/``d2i``, a workaround for an OpenSSL 1.1.0 bug), re-parsing the
      worker's certificate: about 0.2 ms of OpenSSL 3.0 per resumed worker connection, as much as
      the rest of its resumption. nginx and HAProxy hand the same ``SSL_SESSION`` to
      ``SSL_set_session``.
    - ``SSL_MODE_NO_AUTO_CHAIN`` (nginx sets it on every context): without it, a certificate file
      holding just the leaf makes OpenSSL build the chain from the trust store at *every*
      handshake (a full ``X509_verify_cert`` of our own certificate) and send the CA certificate
      along, which the peer then parses for nothing.
    - read-ahead: OpenSSL reads the socket a buffer at a time instead of each record's 5-byte
      header and then its body (two system calls per record, a dozen per handshake). The relay
      reads until OpenSSL says it wants more, so nothing waits unseen in its buffer.

    Calls go through the libssl ``_ssl`` itself is linked against. Three pointers are read where
    CPython keeps them, right after the object header (``SSL_CTX *`` of an ``_ssl._SSLContext``,
    ``SSL *`` after ``PyObject *Socket`` in an ``_ssl._SSLSocket``, ``SSL_SESSION *`` of an
    ``SSLSession``: the layout tools such as sslkeylog rely on, unchanged since Python 3.6), and
    each is checked against OpenSSL before use (options, owning context, session time). If
    anything does not match, :func:`_openssl` returns None and the stdlib paths are used.
    """

    def __init__(self) -> None:
        if sys.implementation.name != "cpython":
            raise RuntimeError("not CPython")
        lib = ctypes.CDLL(_ssl.__file__)  # its symbols resolve through _ssl's own libssl
        vp = ctypes.c_void_p
        self._set = _function(lib, "SSL_set_session", ctypes.c_int, vp, vp)
        self._ssl_ctx = _function(lib, "SSL_get_SSL_CTX", vp, vp)
        self._ctx_options = _function(lib, "SSL_CTX_get_options", ctypes.c_uint64, vp)
        self._ctx_ctrl = _function(lib, "SSL_CTX_ctrl", ctypes.c_long, vp, ctypes.c_int, ctypes.c_long, vp)
        self._session_time = _function(lib, "SSL_SESSION_get_time", ctypes.c_long, vp)
        self._session_timeout = _function(lib, "SSL_SESSION_get_timeout", ctypes.c_long, vp)
        self._offset = object.__basicsize__  # the first field after PyObject_HEAD
        self._ssl_offset = self._offset + ctypes.sizeof(vp)  # after ``PyObject *Socket``
        for kind, least in ((_ssl._SSLContext, self._offset), (getattr(_ssl, "_SSLSocket"), self._ssl_offset),  # noqa: B009
                            (ssl.SSLSession, self._offset)):
            if kind.__basicsize__ < least + ctypes.sizeof(vp):
                raise RuntimeError(f"unexpected layout of {kind.__name__}")
        probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        with socket.socket() as sock:
            tls = probe._wrap_socket(sock, False, "probe.invalid")  # type: ignore[attr-defined]
            if self._ssl_ctx(self._field(tls, self._ssl_offset)) != self.ctx(probe):
                raise RuntimeError("_SSLSocket layout not recognised")

    def _field(self, obj: object, offset: int) -> int:
        return ctypes.c_void_p.from_address(id(obj) + offset).value or 0

    def ctx(self, context: ssl.SSLContext) -> int:
        """The ``SSL_CTX *`` of ``context``, checked: OpenSSL reads back the same options."""
        pointer = self._field(context, self._offset)
        if not pointer or self._ctx_options(pointer) != int(context.options):
            raise RuntimeError("SSLContext layout not recognised")
        return pointer

    def set_mode(self, context: ssl.SSLContext, mode: int) -> bool:
        return bool(self._ctx_ctrl(self.ctx(context), _SSL_CTRL_MODE, mode, None) & mode == mode)

    def set_read_ahead(self, context: ssl.SSLContext) -> None:
        self._ctx_ctrl(self.ctx(context), _SSL_CTRL_SET_READ_AHEAD, 1, None)

    def session(self, session: ssl.SSLSession) -> int:
        """The ``SSL_SESSION *`` of ``session``, or 0 if it does not read back as that session."""
        pointer = self._field(session, self._offset)
        if (pointer and self._session_time(pointer) == session.time
                and self._session_timeout(pointer) == session.timeout):
            return pointer
        return 0

    def offer(self, tls: Any, session: int) -> bool:
        """Offer the session at ``session`` on a new, not yet started ``_ssl._SSLSocket``."""
        return bool(self._set(self._field(tls, self._ssl_offset), session) == 1)


def _function(lib: ctypes.CDLL, name: str, restype: Any, *argtypes: Any) -> Any:
    function = getattr(lib, name)
    function.restype, function.argtypes = restype, list(argtypes)
    return function


_native: list[_Native | None] = []  # decided once per process: [] until then


def _openssl() -> _Native | None:
    if not _native:
        native: _Native | None
        try:
            native = _Native()
        except (OSError, AttributeError, RuntimeError, ValueError) as exc:
            log.warning("OpenSSL extras unavailable (full chain per handshake, a session copy per "
                        "worker connection): %s", exc)
            native = None
        _native.append(native)
    return _native[0]


def _tune(context: ssl.SSLContext) -> None:
    """Send the certificate file's chain as it is, read ahead (see :class:`_Native`); best effort."""
    native = _openssl()
    if native is not None:
        try:
            native.set_mode(context, _SSL_MODE_NO_AUTO_CHAIN)
            native.set_read_ahead(context)
        except RuntimeError as exc:
            log.warning("OpenSSL extras unavailable for a context: %s", exc)


def accept(context: ssl.SSLContext, sock: socket.socket) -> Any:
    """The server-side TLS object (``_ssl._SSLSocket``) for an accepted, non-blocking socket:
    OpenSSL reads and writes the socket itself. The stdlib's ``SSLSocket`` wraps the same object in
    Python code (timeouts, ``makefile``, ``sendfile``) that a relay never calls."""
    return context._wrap_socket(sock, True)  # type: ignore[attr-defined]


class _ResumingContext(ssl.SSLContext):
    """A worker-facing context that offers the last session seen on it (see :meth:`remember`)."""

    last_session: ssl.SSLSession | None = None
    _last_pointer = 0  # its SSL_SESSION * when offered natively
    _native: _Native | None = None
    remembered_at = float("-inf")

    def connect(self, sock: socket.socket, server_hostname: str) -> Any:
        """The client-side TLS object for ``sock`` (not yet connected), offering the kept session."""
        if not self._last_pointer:
            return self._wrap_socket(sock, False, server_hostname,  # type: ignore[attr-defined]
                                     session=self.last_session)
        tls = self._wrap_socket(sock, False, server_hostname)  # type: ignore[attr-defined]
        assert self._native is not None  # a pointer is only kept with it
        self._native.offer(tls, self._last_pointer)  # refused: a full handshake, no harm
        return tls

    def wants(self, ssl_object: Any) -> bool:
        """Whether :meth:`remember` would keep anything from this connection (cheap)."""
        return not (ssl_object.session_reused and time.monotonic() - self.remembered_at < _SESSION_REFRESH)

    def remember(self, ssl_object: Any) -> None:
        """Keep ``ssl_object``'s session if it can be resumed (TLS 1.3: once a ticket arrived).

        Reading ``.session`` costs about 0.2-0.4 ms (CPython copies the session through DER, peer
        certificate included), so a connection that resumed the kept session does not replace it
        until it is a few minutes old; servers accept a ticket more than once (OpenSSL, Go).
        """
        if not self.wants(ssl_object):
            return
        session = ssl_object.session
        if session is not None and session.has_ticket:
            self._native = _openssl()
            # The kept SSLSession owns the SSL_SESSION the pointer names: they go together.
            pointer = self._native.session(session) if self._native is not None else 0
            self.last_session, self._last_pointer = session, pointer
            self.remembered_at = time.monotonic()


def client_context(files: CertificateFiles, server_name: str, alpn: str | None) -> _ResumingContext:
    """A worker-facing context: the gateway's client certificate, the worker CA bundle only."""
    ctx = _ResumingContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(files.folder / "tls.crt", files.folder / "tls.key")
    ctx.load_verify_locations(cafile=files.folder / "ca.crt")
    ctx.check_hostname = True  # against server_name, the pool's worker DNS name
    if alpn:
        ctx.set_alpn_protocols([alpn])
    _tune(ctx)
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
