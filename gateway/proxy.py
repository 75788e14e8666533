"""Per connection: accept, TLS handshake, identity, allocation check, worker connection, then the relay.

The listening socket is watched with ``loop.add_reader``; each accepted connection becomes a
:class:`.relay.Side` whose OpenSSL object reads and writes the socket itself. Once the client's
handshake is done, the allocation id and serial are read from the verified client certificate, the
cache is asked, and a second side connects to the worker and runs its handshake. Then the two sides
relay; no task, coroutine, future or timer is created per connection. Deadlines (handshakes, the
worker connection, lingering closes) are enforced by :meth:`Proxy.sweep`, which the gateway runs
with revalidation. Live links are re-checked against the cache on every cache change and every
``revalidate_interval`` (expiry needs no event), and closed when refused.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import functools
import logging
import socket
import ssl
import time
from datetime import UTC, datetime
from typing import Any

from cryptography import x509

from buildkit_controller.core import pki
from buildkit_controller.core.errors import CertificateVerificationError
from buildkit_controller.gateway.activity import ActivityReporter
from buildkit_controller.gateway.cache import Refused, Route, WorkerCache
from buildkit_controller.gateway.config import GatewayConfig
from buildkit_controller.gateway.metrics import GatewayMetrics
from buildkit_controller.gateway.relay import Link, Side, Socket
from buildkit_controller.gateway.tls import TLSContexts, accept

__all__ = ["Proxy", "handshake_reason"]

log = logging.getLogger(__name__)

_ACCEPTS_PER_CALL = 64  # then let live connections run
_ACCEPT_PAUSE = 0.1  # seconds without accepting after running out of file descriptors
_NODELAY = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_NONBLOCKING_STREAM = socket.SOCK_STREAM | socket.SOCK_NONBLOCK  # no separate system call to set it


class Proxy:
    """Owns the listening socket, connections in progress and live links."""

    def __init__(self, config: GatewayConfig, *, tls: TLSContexts, cache: WorkerCache,
                 metrics: GatewayMetrics, activity: ActivityReporter) -> None:
        self._config, self._tls, self._cache = config, tls, cache
        self._metrics, self._activity = metrics, activity
        self.links: set[Link] = set()
        self._timed: set[Side] = set()  # sides with a deadline: handshaking, connecting, lingering
        self._per_allocation: collections.Counter[str] = collections.Counter()  # links and connects
        self._listener: socket.socket | None = None
        self._loop = asyncio.get_running_loop()  # kept: every lookup of the running loop is a getpid()
        self._family = socket.AF_INET
        self._revalidate_soon = False
        self._uncounted = [0, 0]  # bytes in and out not yet added to the metrics
        metrics.active.set_function(lambda: len(self.links))  # read when scraped
        cache.on_change(self._schedule_revalidate)

    # ------------------------------------------------------------------ accepting
    def listen(self, sock: socket.socket) -> None:
        """Accept on ``sock`` (bound, listening, non-blocking) until :meth:`stop_accepting`."""
        self._listener, self._family = sock, sock.family
        self._loop.add_reader(sock.fileno(), self._accept)

    def stop_accepting(self) -> None:
        if self._listener is not None:
            self._loop.remove_reader(self._listener.fileno())
            self._listener.close()
            self._listener = None

    def _accept(self) -> None:
        listener, loop = self._listener, self._loop
        if listener is None:
            return
        for _ in range(_ACCEPTS_PER_CALL):
            try:
                fd, _ = listener._accept()  # type: ignore[attr-defined]
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno not in _OUT_OF_RESOURCES:  # this one connection failed (ECONNABORTED, ...)
                    continue
                # Out of file descriptors or memory: pause instead of spinning on the listener.
                log.warning("accept failed, pausing for %.1fs: %s", _ACCEPT_PAUSE, exc)
                loop.remove_reader(listener.fileno())
                loop.call_later(_ACCEPT_PAUSE, self._resume_accepting)
                return
            sock = Socket(self._family, socket.SOCK_STREAM, 0, fd)
            try:
                sock.setblocking(False)
                sock.setsockopt(*_NODELAY)
            except OSError:  # reset before we got to it
                sock.close()
                continue
            client = Side(loop, sock, accept(self._tls.server, sock))
            self._timed.add(client)
            client.handshake(self._config.handshake_timeout, self._accepted, self._handshake_failed)

    def _resume_accepting(self) -> None:
        if self._listener is not None:
            self._loop.add_reader(self._listener.fileno(), self._accept)

    def _handshake_failed(self, client: Side, exc: BaseException) -> None:
        reason = handshake_reason(exc)
        self._metrics.reject(reason)
        log.info("refused a client: TLS handshake failed (%s)", reason)

    # ------------------------------------------------------------------ the allocation check
    def _accepted(self, client: Side) -> None:
        """Handshake done, client certificate verified by OpenSSL: now the allocation check."""
        try:
            if self._listener is None:  # draining: this gateway is going away
                raise Refused("draining", "the gateway is shutting down")
            route = self._identify(client.tls)
        except Refused as refusal:
            self._metrics.reject(refusal.reason)
            log.info("refused %s: %s", _peer(client.sock), refusal)
            self._close(client)
            return
        try:
            self._connect(client, route)
        except Exception as exc:  # out of file descriptors, certificate files unreadable, ...
            self._unreachable(client, route, None, exc)

    def _identify(self, tls: Any) -> Route:
        der = tls.getpeercert(True)
        if not der:  # cannot happen with CERT_REQUIRED; refuse rather than assume
            raise Refused("no-certificate", "no client certificate")
        allocation_id, serial = _identity(der)
        route = self._cache.lookup(allocation_id, serial, datetime.now(UTC))
        if self._per_allocation[allocation_id] >= self._config.max_connections_per_allocation:
            raise Refused("too-many-connections", f"allocation {allocation_id} already has "
                                                  f"{self._per_allocation[allocation_id]} connections")
        self._per_allocation[allocation_id] += 1  # counted from here: connects in flight count too
        return route

    def _connect(self, client: Side, route: Route) -> None:
        context = self._tls.upstream(route.endpoint, client.tls.selected_alpn_protocol())
        sock = Socket(socket.AF_INET6 if ":" in route.host else socket.AF_INET, _NONBLOCKING_STREAM)
        sock.setsockopt(*_NODELAY)
        upstream = Side(self._loop, sock, context.connect(sock, self._config.worker_server_name))
        self._timed.add(upstream)
        upstream.handshake(self._config.connect_timeout,
                           functools.partial(self._link, client, route=route, context=context),
                           functools.partial(self._unreachable, client, route),
                           connect=(route.host, route.port))

    def _unreachable(self, client: Side, route: Route, upstream: Side | None, exc: BaseException) -> None:
        self._release(route.allocation_id)
        self._metrics.errors.inc()
        log.warning("worker %s at %s unreachable for allocation %s: %s", route.worker,
                    route.endpoint, route.allocation_id, exc or type(exc).__name__)
        self._close(client)

    def _link(self, client: Side, upstream: Side, *, route: Route, context: Any) -> None:
        tls = upstream.tls
        if tls.session_reused:
            self._metrics.resumed.inc()
        if self._config.worker_session_reuse and context.wants(tls):
            # TLS 1.3 tickets arrive just after the handshake: keep one for the next connection.
            self._loop.call_later(0.05, context.remember, tls)
        link = Link(client=client, upstream=upstream, worker=route.worker,
                    allocation_id=route.allocation_id, cert_serial=route.cert_serial,
                    on_closed=self._closed)
        self.links.add(link)
        self._activity.opened(route.worker)
        link.start()

    def _close(self, side: Side) -> None:
        side.finish(now=True)
        self._timed.add(side)  # until it has lingered

    def _release(self, allocation_id: str) -> None:
        self._per_allocation[allocation_id] -= 1
        if self._per_allocation[allocation_id] <= 0:
            del self._per_allocation[allocation_id]

    def _closed(self, link: Link) -> None:
        self._timed.add(link.client)  # both are lingering (or closed): the sweep finishes them
        self._timed.add(link.upstream)
        self._release(link.allocation_id)
        self.links.discard(link)
        self._count_bytes(link)
        self._metrics.duration.observe(time.monotonic() - link.started)
        self._metrics.successes.inc()
        self._activity.closed(link.worker)

    # ------------------------------------------------------------------ timers, revocation
    def sweep(self) -> None:
        """Enforce deadlines: handshakes and worker connections time out, lingering closes end."""
        now = time.monotonic()
        for side in list(self._timed):
            if side.closed or side.deadline == float("inf"):
                self._timed.discard(side)
            elif side.deadline <= now:
                self._timed.discard(side)
                side.timed_out()

    def _schedule_revalidate(self) -> None:
        if not self._revalidate_soon and self.links:
            self._revalidate_soon = True
            self._loop.call_soon(self.revalidate)

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
        self.publish_bytes()

    def _close_if_idle(self, link: Link, mono: float) -> None:
        if link.client.nbytes + link.upstream.nbytes != link.idle_bytes:
            link.idle_bytes, link.idle_since = link.client.nbytes + link.upstream.nbytes, mono
        elif self._config.idle_timeout and mono - link.idle_since >= self._config.idle_timeout:
            log.info("closing an idle connection of allocation %s", link.allocation_id)
            link.close()

    def _count_bytes(self, link: Link) -> None:
        got_in, got_out = link.client.nbytes, link.upstream.nbytes
        self._uncounted[0] += got_in - link.last_bytes[0]
        self._uncounted[1] += got_out - link.last_bytes[1]
        link.last_bytes = (got_in, got_out)

    def publish_bytes(self) -> None:
        """Add the bytes counted since the last call to the metrics: one update per interval, not
        one per connection (each costs a lock)."""
        got_in, got_out = self._uncounted
        if got_in:
            self._metrics.bytes_in.inc(got_in)
        if got_out:
            self._metrics.bytes_out.inc(got_out)
        self._uncounted = [0, 0]

    def closing(self) -> bool:
        """Whether any socket is still lingering or in its handshake."""
        return any(not side.closed for side in self._timed)

    def close_all(self) -> None:
        """Close every live link (the end of a drain)."""
        for link in list(self.links):
            link.close()

    def abort_all(self) -> None:
        """Close every socket still open (the very end of shutdown)."""
        self.close_all()
        for side in list(self._timed):
            side.abort()
        self._timed.clear()
        self.publish_bytes()


@functools.lru_cache(maxsize=4096)
def _identity(der: bytes) -> tuple[str, str]:
    """(allocation id, decimal serial) of a verified client certificate, or Refused.

    Cached by the DER bytes (the chain was verified by OpenSSL for this very connection, so only
    the parsing is skipped): clients reconnect with the same certificate, and parsing X.509 is
    the largest Python cost of a connection after the handshakes.
    """
    try:
        certificate = x509.load_der_x509_certificate(der)
        allocation_id = pki.allocation_id_from_certificate(certificate)
    except (CertificateVerificationError, ValueError) as exc:
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


def _peer(sock: Any) -> str:
    try:
        peer = sock.getpeername()
    except OSError:
        return "a client"
    return f"{peer[0]}:{peer[1]}"
