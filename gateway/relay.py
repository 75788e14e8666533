"""The data path: two ``BufferedProtocol`` halves per proxied connection, bytes copied once each way.

TLS decrypts straight into a half's buffer (16 KiB, grown once to 64 KiB on the first read that
fills it: idle connections stay small, bulk transfers make fewer calls); ``buffer_updated`` hands
a memoryview of it to the other side's transport, whose ``write`` encrypts it immediately
(asyncio's and uvloop's SSL transports do), so the buffer is free again on return. No coroutine,
no ``bytes`` object per chunk. Back-pressure is the transports' own: when one side's write buffer
fills, it pauses reading on the other side (``pause_writing`` → ``pause_reading``).

Until the worker connection is up, the client half writes into a :class:`_Pending` sink that copies
what arrives (TLS may deliver early application data right after the handshake) and pauses reading.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

__all__ = ["BUFFER_SIZE", "Half", "Link"]

BUFFER_SIZE = 64 * 1024  # bulk transfers: fewer callbacks and writes per byte
_FIRST_BUFFER = 16 * 1024  # one TLS record; most connections sit idle, so start small
_ABORT_AFTER = 2.0  # a peer that ignores close_notify loses its socket after this long


class _Pending:
    """Collects client bytes that arrive before the worker connection exists."""

    def __init__(self, source: Half) -> None:
        self.chunks: list[bytes] = []
        self._source = source

    def write(self, data: memoryview) -> None:
        self.chunks.append(bytes(data))
        if self._source.transport is not None:
            self._source.transport.pause_reading()


class Half(asyncio.BufferedProtocol):
    """One TLS side of a proxied connection (the client's or the worker's)."""

    def __init__(self, on_connected: Callable[[Half], None] | None = None) -> None:
        self._view = memoryview(bytearray(_FIRST_BUFFER))
        self._grow_at = _FIRST_BUFFER  # a read that fills the buffer means bulk: grow once
        self._on_connected = on_connected
        self.transport: Any = None
        self.peer: Half | None = None
        self.nbytes = 0  # bytes received on this side (one integer add per chunk)
        self.lost = False
        self.link: Link | None = None
        self._pending: _Pending | None = _Pending(self)
        self._forward: Callable[[memoryview], object] = self._pending.write

    def connection_made(self, transport: Any) -> None:  # called once the TLS handshake is done
        self.transport = transport
        if self._on_connected is not None:
            self._on_connected(self)

    def pending(self) -> list[bytes]:
        """What arrived before :meth:`forward_to` (client side: early application data)."""
        return self._pending.chunks if self._pending is not None else []

    def forward_to(self, peer: Half) -> None:
        """Start piping into ``peer`` (its transport must be connected)."""
        self.peer, self._pending = peer, None
        self._forward = peer.transport.write

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        self.nbytes += nbytes
        self._forward(self._view[:nbytes])
        if nbytes == self._grow_at:
            self._grow()

    def _grow(self) -> None:
        # The old buffer is free: write() encrypted (or _Pending copied) what it held.
        self._view = memoryview(bytearray(BUFFER_SIZE))
        self._grow_at = 0  # never again

    def eof_received(self) -> bool:
        return False  # TLS cannot half-close: close both sides

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost = True
        if self.link is not None:
            self.link.half_lost()
        elif self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()
        # Nothing calls this half any more: drop what ties it into reference cycles (link, peer,
        # transport ↔ protocol, the pending sink), so that reference counting frees the whole
        # connection, OpenSSL's objects included, now rather than at the next full collection.
        self.transport = self.peer = self.link = self._pending = None
        self._forward = _dropped


class Link:
    """A client half and a worker half proxied together, with what revocation needs to know."""

    def __init__(self, *, client: Half, upstream: Half, worker: str, allocation_id: str,
                 cert_serial: str, on_closed: Callable[[Link], None]) -> None:
        self.client, self.upstream = client, upstream
        self.worker, self.allocation_id, self.cert_serial = worker, allocation_id, cert_serial
        self.started = time.monotonic()
        self.closed = False  # reported to the owner (on_closed called)
        self._closing = False
        self.last_bytes = (0, 0)  # (in, out) already added to the byte counters
        self.idle_bytes, self.idle_since = 0, self.started  # bytes seen at the last change
        self._on_closed = on_closed
        client.link = upstream.link = self

    def start(self) -> None:
        """Flush what either side sent before the link existed, then pipe both ways."""
        if self.client.lost or self.upstream.lost:  # one side went away while we connected
            self.half_lost()
            return
        for source, target in ((self.client, self.upstream), (self.upstream, self.client)):
            for chunk in source.pending():
                target.transport.write(chunk)
        self.client.forward_to(self.upstream)
        self.upstream.forward_to(self.client)
        self.client.transport.resume_reading()
        self.upstream.transport.resume_reading()

    def close(self) -> None:
        """Close both sides (revocation, idle timeout, end of drain); later calls do nothing."""
        if self._closing:
            return
        self._closing = True
        for half in (self.client, self.upstream):
            if half.transport is not None and not half.lost:
                half.transport.close()
                asyncio.get_running_loop().call_later(_ABORT_AFTER, _abort_if_open, half)

    def half_lost(self) -> None:
        """Either side went away: close the other and report the link done once. The other side
        may still be answering close_notify; drain and metrics need not wait for it."""
        self.close()
        if not self.closed:
            self.closed = True
            self._on_closed(self)


def _dropped(data: memoryview) -> None:
    """Where a closed half would forward to (nothing arrives after ``connection_lost``)."""


def _abort_if_open(half: Half) -> None:
    if not half.lost and half.transport is not None:
        half.transport.abort()
