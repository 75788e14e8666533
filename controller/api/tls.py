"""TLS for the API: the server context, the CAs client certificates may chain to, and the one place
where the verified client certificate is handed from hypercorn to the app.

Client certificates are optional (``CERT_OPTIONAL``), so bearer clients keep working; one that is
presented must chain to a trusted CA or the handshake fails — the app never trusts a header. The
trusted CAs: the operator's ``--client-ca`` bundle, the API's identity CA (identity certificates)
and every pool's worker CA as the operator publishes it in the pool's ConfigMap (gateways'
worker-client certificates, for ``/api/v1/workers/lookup``).
No system CA is trusted. CAs are *added* to the live context as they appear (OpenSSL cannot remove
them); the app checks each certificate again against the one CA its route accepts, so a CA that
left (a deleted pool) only passes the handshake.

hypercorn 0.18 does not put the peer certificate into the ASGI scope, and its only per-connection
hook with the SSL object is ``TCPServer.run``. :func:`install` wraps that method once (verified in
research/test-infra.md, Appendix A) to fill the ASGI TLS extension, ``scope["extensions"]["tls"]
["client_cert_chain"]`` (PEM strings, leaf first). Remove it when hypercorn exposes the extension.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import hypercorn.asyncio.tcp_server as _tcp
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import load_pem_x509_certificates
from hypercorn.config import Config

from buildkit_controller.core.errors import ConfigError

__all__ = ["ClientTrust", "TLSConfig", "install", "peer_chain", "server_context"]

log = logging.getLogger(__name__)
ALPN = ["h2", "http/1.1"]


def server_context(certfile: str, keyfile: str, client_ca: str | None) -> ssl.SSLContext:
    """TLS 1.2+, our certificate, client certificates optional and checked against our CAs only."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION
    ctx.set_alpn_protocols(ALPN)
    try:
        ctx.load_cert_chain(certfile, keyfile)
        if client_ca:
            ctx.load_verify_locations(cafile=client_ca)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the API's TLS files: {exc}") from None
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


class ClientTrust:
    """The CAs of a live server context; :meth:`add` trusts new ones for the next handshakes."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self._seen: set[bytes] = set()

    def add(self, bundles: Iterable[bytes | str]) -> int:
        """Trust every CA of these PEM bundles not trusted yet; return how many were new."""
        added = 0
        for bundle in bundles:
            data = bundle.encode() if isinstance(bundle, str) else bundle
            try:
                certificates = load_pem_x509_certificates(data) if data.strip() else []
            except ValueError:
                log.warning("ignoring an unreadable CA bundle")
                continue
            added += sum(self._trust(certificate.public_bytes(Encoding.DER)) for certificate in certificates)
        return added

    def _trust(self, der: bytes) -> bool:
        if der in self._seen:
            return False
        try:
            self.context.load_verify_locations(cadata=der)
        except ssl.SSLError as exc:
            log.warning("ignoring a CA OpenSSL refused: %s", exc)
            return False
        self._seen.add(der)
        return True


class TLSConfig(Config):
    """hypercorn's Config with our own server context (hypercorn's would trust the system CAs)."""

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__()
        self._context = context
        self.certfile = self.keyfile = "(in the context)"  # hypercorn serves TLS when both are set

    def create_ssl_context(self) -> ssl.SSLContext:
        return self._context


class _TLSScope:
    """Wraps hypercorn's app for one TLS connection and adds the ASGI TLS extension to each scope."""

    def __init__(self, inner: Any, ssl_object: Any) -> None:
        self.inner, self.ssl_object = inner, ssl_object

    async def __call__(self, scope: dict[str, Any], *args: Any) -> Any:
        if scope.get("type") in ("http", "websocket"):
            der = self.ssl_object.getpeercert(binary_form=True)  # only ever a verified certificate
            scope.setdefault("extensions", {})["tls"] = {
                "server_cert": None, "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
                "client_cert_name": None, "client_cert_error": None,
                "tls_version": self.ssl_object.version(), "cipher_suite": (self.ssl_object.cipher() or (None,))[0]}
        return await self.inner(scope, *args)


def install() -> None:
    """Wrap ``TCPServer.run`` once so that TLS connections fill the ASGI TLS extension."""
    original: Callable[[Any], Awaitable[None]] = _tcp.TCPServer.run
    if getattr(original, "_buildkit_tls", False):
        return

    async def run(self: Any) -> None:
        ssl_object = self.writer.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.app = _TLSScope(self.app, ssl_object)
        await original(self)

    run._buildkit_tls = True  # type: ignore[attr-defined]
    _tcp.TCPServer.run = run  # type: ignore[method-assign]


def peer_chain(scope: Mapping[str, Any]) -> tuple[bytes, ...]:
    """The verified client certificate chain of a request (DER, leaf first); empty without one."""
    tls = (scope.get("extensions") or {}).get("tls") or {}
    return tuple(ssl.PEM_cert_to_DER_cert(pem) for pem in tls.get("client_cert_chain") or ())
