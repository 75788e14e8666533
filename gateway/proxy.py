"""Per connection: TLS handshake, identity, allocation check, worker connection, then the relay.

Each accepted connection gets the loop's own SSL protocol around a client half, built here rather
than by ``create_server(ssl=...)`` so that a failed handshake is seen, counted by reason and logged.
Once the handshake is done, the allocation id and serial are read from the verified client
certificate, the cache is asked, and a short task connects to the worker. After that the two
:class:`.relay.Half` objects carry the bytes and no task or coroutine is involved. Live links are
re-checked against the cache on every cache change and every ``revalidate_interval`` (expiry
needs no event), and closed when refused.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import ssl
import time
from asyncio.sslproto import SSLProtocol as _AsyncioSSLProtocol
from datetime import UTC, datetime
from typing import Any

from cryptography import x509

from buildkit_controller.core import pki
from buildkit_controller.core.errors import CertificateVerificationError
from buildkit_controller.gateway.activity import ActivityReporter
from buildkit_controller.gateway.cache import Refused, Route, WorkerCache
from buildkit_controller.gateway.config import GatewayConfig
from buildkit_controller.gateway.metrics import GatewayMetrics
from buildkit_controller.gateway.relay import Half, Link
from buildkit_controller.gateway.tls import TLSContexts

__all__ = ["Proxy", "handshake_reason"]

log = logging.getLogger(__name__)


class Proxy:
    """Owns live links; the server object wires it to a listening socket."""

    def __init__(self, config: GatewayConfig, *, tls: TLSContexts, cache: WorkerCache,
                 metrics: GatewayMetrics, activity: ActivityReporter) -> None:
        self._config, self._tls, self._cache = config, tls, cache
        self._metrics, self._activity = metrics, activity
        self.links: set[Link] = set()
        self._per_allocation: collections.Counter[str] = collections.Counter()  # links and connects
        self._tasks: set[asyncio.Task[None]] = set()
        self._revalidate_soon = False
        cache.on_change(self._schedule_revalidate)

    def protocol(self) -> Any:
        """A server-side TLS protocol for one new connection, wrapping a fresh client :class:`Half`.

        Built by hand (as ``create_server(ssl=...)`` does inside) to get at the handshake waiter:
        that is the only place a failed handshake shows up, and it must be counted and logged.
        """
        loop = asyncio.get_running_loop()
        client = Half(on_connected=self._accepted)
        waiter = loop.create_future()
        waiter.add_done_callback(self._handshake_done)
        return _ssl_protocol_class(loop)(loop, client, self._tls.server, waiter, server_side=True,
                                          ssl_handshake_timeout=self._config.handshake_timeout)

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _handshake_done(self, waiter: asyncio.Future[None]) -> None:
        exc = None if waiter.cancelled() else waiter.exception()
        if exc is not None:
            reason = handshake_reason(exc)
            self._metrics.reject(reason)
            log.info("refused a client: TLS handshake failed (%s)", reason)

    def _accepted(self, client: Half) -> None:
        """Handshake done, client certificate verified by OpenSSL: now the allocation check."""
        transport = client.transport
        transport.pause_reading()  # nothing goes anywhere until the worker connection is up
        try:
            route = self._identify(transport)
        except Refused as refusal:
            self._metrics.reject(refusal.reason)
            log.info("refused %s: %s", _peer(transport), refusal)
            transport.close()
            return
        self.spawn(self._connect(client, transport, route))

    def _identify(self, transport: Any) -> Route:
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        if not der:  # cannot happen with CERT_REQUIRED; refuse rather than assume
            raise Refused("no-certificate", "no client certificate")
        allocation_id, serial = _identity(der)
        route = self._cache.lookup(allocation_id, serial, datetime.now(UTC))
        if self._per_allocation[allocation_id] >= self._config.max_connections_per_allocation:
            raise Refused("too-many-connections", f"allocation {allocation_id} already has "
                                                  f"{self._per_allocation[allocation_id]} connections")
        self._per_allocation[allocation_id] += 1  # counted from here: connects in flight count too
        return route

    async def _connect(self, client: Half, transport: Any, route: Route) -> None:
        alpn = transport.get_extra_info("ssl_object").selected_alpn_protocol()
        context = self._tls.upstream(route.endpoint, alpn)
        upstream = Half()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._config.connect_timeout):  # no extra task, unlike wait_for
                await loop.create_connection(
                    lambda: upstream, route.host, route.port, ssl=context,
                    server_hostname=self._config.worker_server_name,
                    ssl_handshake_timeout=self._config.connect_timeout)
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as exc:
            self._release(route.allocation_id)
            self._metrics.connection("error")
            log.warning("worker %s at %s unreachable for allocation %s: %s", route.worker,
                        route.endpoint, route.allocation_id, exc or type(exc).__name__)
            transport.close()
            return
        self._link(client, upstream, route, context)

    def _link(self, client: Half, upstream: Half, route: Route, context: Any) -> None:
        ssl_object = upstream.transport.get_extra_info("ssl_object") if upstream.transport else None
        if ssl_object is not None and ssl_object.session_reused:
            self._metrics.resumed.inc()
        if self._config.worker_session_reuse and ssl_object is not None and context.wants(ssl_object):
            # TLS 1.3 tickets arrive just after the handshake: keep one for the next connection.
            asyncio.get_running_loop().call_later(0.05, context.remember, ssl_object)
        link = Link(client=client, upstream=upstream, worker=route.worker,
                    allocation_id=route.allocation_id, cert_serial=route.cert_serial,
                    on_closed=self._closed)
        self.links.add(link)
        self._metrics.active.inc()
        self._activity.opened(route.worker)
        link.start()

    def _release(self, allocation_id: str) -> None:
        self._per_allocation[allocation_id] -= 1
        if self._per_allocation[allocation_id] <= 0:
            del self._per_allocation[allocation_id]

    def _closed(self, link: Link) -> None:
        self._release(link.allocation_id)
        self.links.discard(link)
        self._count_bytes(link)
        self._metrics.active.dec()
        self._metrics.duration.observe(time.monotonic() - link.started)
        self._metrics.connection("success")
        self._activity.closed(link.worker)

    def _schedule_revalidate(self) -> None:
        if not self._revalidate_soon and self.links:
            self._revalidate_soon = True
            asyncio.get_running_loop().call_soon(self.revalidate)

    def revalidate(self) -> None:
        """Close links whose allocation is no longer live for them; count bytes; idle timeouts."""
        self._revalidate_soon = False
        now, mono = datetime.now(UTC), time.monotonic()
        for link in list(self.links):
            self._count_bytes(link)
            try:
                route = self._cache.lookup(link.allocation_id, link.cert_serial, now)
                if route.worker != link.worker:
                    raise Refused("moved", f"allocation {link.allocation_id} moved to {route.worker}")
            except Refused as refusal:
                log.info("closing a connection of allocation %s on worker %s: %s",
                         link.allocation_id, link.worker, refusal)
                self._metrics.revoked(refusal.reason)
                link.close()
                continue
            self._close_if_idle(link, mono)

    def _close_if_idle(self, link: Link, mono: float) -> None:
        if link.client.nbytes + link.upstream.nbytes != link.idle_bytes:
            link.idle_bytes, link.idle_since = link.client.nbytes + link.upstream.nbytes, mono
        elif self._config.idle_timeout and mono - link.idle_since >= self._config.idle_timeout:
            log.info("closing an idle connection of allocation %s", link.allocation_id)
            link.close()

    def _count_bytes(self, link: Link) -> None:
        got_in, got_out = link.client.nbytes, link.upstream.nbytes
        self._metrics.bytes_in.inc(got_in - link.last_bytes[0])
        self._metrics.bytes_out.inc(got_out - link.last_bytes[1])
        link.last_bytes = (got_in, got_out)

    def close_all(self) -> None:
        for link in list(self.links):
            link.close()


@functools.lru_cache(maxsize=4096)
def _identity(der: bytes) -> tuple[str, str]:
    """(allocation id, decimal serial) of a verified client certificate, or Refused.

    Cached by the DER bytes (the chain was verified by OpenSSL for this very connection, so only
    the parsing is skipped): clients reconnect with the same certificate, and parsing X.509 is
    the largest Python cost of a connection after the handshakes.
    """
    certificate = x509.load_der_x509_certificate(der)
    try:
        allocation_id = pki.allocation_id_from_certificate(certificate)
    except CertificateVerificationError as exc:
        raise Refused("bad-identity", str(exc)) from None
    return allocation_id, pki.serial_decimal(certificate)


#: Words of OpenSSL's verify message → reason label, first match wins.
_VERIFY_REASONS = (("expired", "certificate-expired"), ("not yet valid", "certificate-not-yet-valid"),
                   ("issuer", "unknown-issuer"), ("self-signed", "unknown-issuer"),
                   ("self signed", "unknown-issuer"))


def handshake_reason(exc: BaseException) -> str:
    """A metric label for a failed client handshake (no secrets, few distinct values)."""
    if isinstance(exc, TimeoutError) or "taking longer" in str(exc):  # asyncio's and uvloop's words
        return "handshake-timeout"
    if isinstance(exc, ssl.SSLCertVerificationError):
        message = (exc.verify_message or "").lower()
        return next((label for words, label in _VERIFY_REASONS if words in message),
                    "certificate-rejected")
    text = str(exc).upper()
    if "PEER_DID_NOT_RETURN_A_CERTIFICATE" in text or "CERTIFICATE_REQUIRED" in text:
        return "no-certificate"
    return "handshake-failed"


@functools.cache
def _ssl_protocol_class_of(loop_module: str) -> Any:
    if loop_module.startswith("uvloop"):
        import uvloop.loop  # noqa: PLC0415 - only when running on uvloop

        return uvloop.loop.SSLProtocol  # type: ignore[attr-defined]
    return _AsyncioSSLProtocol


def _ssl_protocol_class(loop: asyncio.AbstractEventLoop) -> Any:
    """The loop's own SSL protocol: uvloop's (Cython) on uvloop, asyncio's otherwise."""
    return _ssl_protocol_class_of(type(loop).__module__)


def _peer(transport: Any) -> str:
    peer = transport.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if peer else "a client"
