"""The data path: OpenSSL on the sockets themselves, driven by the event loop's readiness callbacks.

Each side of a proxied connection is a non-blocking socket whose TLS object reads and writes the
file descriptor directly (a socket BIO, as nginx and HAProxy use OpenSSL): no memory BIOs, no
transport or protocol objects, no futures, no timers per connection. A readable event decrypts one
record into the buffer all sides share and hands a memoryview of it to the other side's ``write``,
which encrypts it onto that socket: one copy each way, no ``bytes`` object per chunk, no buffer
per idle connection. Back-pressure is OpenSSL's own: a write that would block keeps its chunk
(and the buffer under it), stops reading the source and waits for the destination to become
writable (:meth:`Side._flush`).

How a side closes is in :mod:`.closing`.
"""

from __future__ import annotations

import _socket
import asyncio
import contextlib
import errno
import os
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

from buildkit_controller.gateway.closing import OWED_TIMEOUT, Closing, nothing

__all__ = ["RECORD", "Link", "Side", "Socket"]

RECORD = 16 * 1024  # the most one SSL_read returns: one TLS record's plaintext
_READS_PER_CALL = 16  # then let other connections run; the rest comes on the next turn
_RETRY = 0.005  # seconds before reading again after a read that had to write and could not
_WantRead, _WantWrite = ssl.SSLWantReadError, ssl.SSLWantWriteError


class _SharedBuffer:
    """The one read buffer of all sides. A side reads a record into it and writes it to its peer
    before anything else runs, so the next read may reuse it; a write that must wait keeps the
    buffer (the chunk is a view of it) and a new one takes its place. Idle connections hold none."""

    view = memoryview(bytearray(RECORD))


_buffer = _SharedBuffer()


class Socket(_socket.socket):
    """The C socket type without :class:`socket.socket`'s Python layer (its ``__init__`` and
    ``close`` are Python code; a relay needs neither ``makefile`` nor ``sendfile``), plus the weak
    reference that OpenSSL's ``_ssl`` keeps to its socket."""

    __slots__ = ("__weakref__",)


class Side(Closing):
    """One TLS connection on a non-blocking socket (the client's or the worker's).

    Phases: :meth:`handshake` (``on_done(side)`` or ``on_fail(side, exc)`` once), then
    :meth:`start` relaying into ``peer``, then :meth:`finish` (graceful) or :meth:`abort`.
    ``deadline`` (monotonic) is what the owner's sweep enforces in the current phase.

    The socket stays registered for reading from the handshake to the close, only its callback
    changes: with uvloop (libuv), every start or stop of a watch costs system calls, and a
    watch stopped entirely costs four more to set up again. Write interest is added only while a
    write would block.
    """

    __slots__ = ("__weakref__", "_closing_since", "_early", "_loop", "_on_done", "_on_fail", "_on_readable",
                 "_reading", "_shut", "_stuck", "_unsent", "_writing", "clean", "closed", "deadline", "fd",
                 "finishing", "link", "nbytes", "peer", "sock", "tls")

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, tls: Any) -> None:
        self._loop, self.sock, self.fd, self.tls = loop, sock, sock.fileno(), tls
        self._stuck: memoryview | None = None  # read from here, not yet written to the peer
        self._early: memoryview | None = None  # read before the link started
        self._reading = self._writing = False  # what the loop watches for
        self._on_readable: Callable[[], None] = nothing
        self._shut = False  # finish() ran
        self._closing_since = 0.0
        self._unsent = 1 << 62  # bytes the kernel held for the peer at the last look (lingering)
        self.clean = True  # False: this side ended without close_notify (reset, EOF, error)
        self._on_done: Callable[[Side], None] | None = None
        self._on_fail: Callable[[Side, BaseException], None] | None = None
        self.peer: Side | None = None
        self.link: Link | None = None
        self.nbytes = 0  # bytes received on this side (one integer add per chunk)
        self.deadline = float("inf")
        self.finishing = False  # finish() called: no more relaying
        self.closed = False  # the socket is closed

    def _read_with(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever the socket is readable. The loop itself is told only when
        reading starts: changing what it calls costs more than this one indirection."""
        self._on_readable = callback
        if not self._reading:
            self._loop.add_reader(self.fd, self._readable_event)
            self._reading = True

    def _readable_event(self) -> None:
        self._on_readable()

    def _stop_reading(self) -> None:
        if self._reading:
            self._loop.remove_reader(self.fd)
            self._reading = False

    def _write_with(self, callback: Callable[[], None]) -> None:
        self._loop.add_writer(self.fd, callback)
        self._writing = True

    def _stop_writing(self) -> None:
        if self._writing:
            self._loop.remove_writer(self.fd)
            self._writing = False

    # ------------------------------------------------------------------ handshake
    def handshake(self, timeout: float, on_done: Callable[[Side], None],
                  on_fail: Callable[[Side, BaseException], None], *,
                  connect: tuple[str, int] | None = None) -> None:
        """Run the TLS handshake (after connecting to ``connect``, if given) within ``timeout``."""
        self._on_done, self._on_fail = on_done, on_fail
        self.deadline = time.monotonic() + timeout
        if connect is not None:
            error = self.sock.connect_ex(connect)
            if error not in (0, errno.EINPROGRESS, errno.EAGAIN):
                self._failed(OSError(error, os.strerror(error)))
                return
            # Try at once: on loopback or a fast network the connection is already up, and the
            # ClientHello goes out without waiting for a writable event (else: want-write).
        else:
            self._read_with(self._step)
        self._step()

    def _step(self) -> None:
        try:
            self.tls.do_handshake()
        except _WantRead:
            if not self._reading:
                self._read_with(self._step)
            self._stop_writing()
            return
        except _WantWrite:  # still connecting, or the send buffer is full
            if not self._writing:
                self._write_with(self._step)
            return
        except (OSError, ValueError) as exc:  # SSLError is an OSError
            self._failed(exc)
            return
        self._stop_writing()
        self._read_with(self._before_link)
        self.deadline = float("inf")
        done, self._on_done, self._on_fail = self._on_done, None, None
        if done is not None:
            done(self)

    def _failed(self, exc: BaseException) -> None:
        if self.tls.server_side is False:  # connecting: the socket's own error says it best
            with contextlib.suppress(OSError):
                if error := self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    exc = OSError(error, os.strerror(error))
        fail, self._on_done, self._on_fail = self._on_fail, None, None
        self.abort()
        if fail is not None:
            fail(self, exc)

    def _before_link(self) -> None:
        """Readable before the other side is up: keep one chunk (TLS 1.3 clients often send right
        after their Finished), then stop reading until :meth:`start`."""
        if self._early is not None:
            self._stop_reading()
            return
        count = self._read()
        if count:
            self._early = memoryview(bytes(_buffer.view[:count]))  # small, and the buffer is shared
        elif self.finishing:  # it ended already: start() reports that
            self._stop_reading()

    # ------------------------------------------------------------------ relaying
    def start(self) -> None:
        """Relay into ``peer``: first what arrived before, then whatever OpenSSL already holds
        (bytes that came with the handshake get no readiness event), then on every event."""
        if self.finishing:
            self._ended()
            return
        early, self._early = self._early, None
        if early is not None and not self._write_out(early, shared=False):
            return
        self._read_with(self._readable)
        self._readable()

    def _readable(self) -> None:
        if self._stuck is not None or self.finishing:
            return
        for _ in range(_READS_PER_CALL):
            count = self._read()
            if not count or not self._forward(count):
                return
        self._loop.call_soon(self._readable)  # more may be buffered in OpenSSL: no event for it

    def _read(self) -> int:
        """Bytes now in the buffer; 0 if none can be read now or this side ended (``finishing``)."""
        try:
            count: int = self.tls.read(RECORD, _buffer.view)
        except _WantRead:
            return 0
        except _WantWrite:  # TLS must write while reading (a key update reply) and cannot yet
            self._stop_reading()
            self._loop.call_later(_RETRY, self._resume_read)  # rare: the writer may be in use
            return 0
        except (OSError, ValueError):  # reset, unclean EOF, bad record
            self.clean = False
            count = 0
        if not count:  # 0 without an exception: close_notify
            self._ended()
            return 0
        self.nbytes += count
        return count

    def _forward(self, count: int) -> bool:
        """Write what was read to the peer; False if that has to wait (or the peer is gone)."""
        return self._write_out(_buffer.view[:count], shared=True)

    def _write_out(self, chunk: memoryview, *, shared: bool) -> bool:
        peer = self.peer
        assert peer is not None
        try:
            peer.tls.write(chunk)
        except _WantWrite:
            self._stuck = chunk
            if shared:  # this side keeps the buffer until the chunk is written; others get a new one
                _buffer.view = memoryview(bytearray(RECORD))
            self._stop_reading()
            peer._write_with(self._flush)
            return False
        except (OSError, ValueError):
            peer._ended()
            return False
        return True

    def _resume_read(self) -> None:
        if self.finishing or self._stuck is not None:
            return
        if self.link is None:  # not relaying yet
            self._read_with(self._before_link)
        else:
            self._read_with(self._readable)
            self._readable()

    def _flush(self) -> None:
        """The peer's socket is writable again: retry the write that would have blocked."""
        peer, chunk = self.peer, self._stuck
        if peer is None or chunk is None:
            return
        try:
            peer.tls.write(chunk)  # OpenSSL wants the same bytes again
        except _WantWrite:
            return
        except (OSError, ValueError):
            peer._stop_writing()
            self._stuck = None
            peer._ended()
            return
        peer._stop_writing()
        self._stuck = None
        if not self.finishing:
            self._resume_read()
            return
        peer.finish(notify=peer.notify_after(self))  # the link ended while this chunk waited
        if self.closed:
            self.peer = None

    def notify_after(self, ended: Side) -> bool:
        """Whether this side gets close_notify now that ``ended`` (its peer) ended.

        A client gets it only if the worker sent its own: otherwise a cut-off answer would look
        complete. A worker always gets it: clients often close without close_notify (Python's
        ``SSLSocket.close`` does), and OpenSSL marks the session of a connection freed without
        having sent close_notify as not resumable, which would cost the next connection to the
        worker a full handshake."""
        return ended.clean or not self.tls.server_side

    def _ended(self) -> None:
        """This side will send no more (close_notify, EOF, reset, error)."""
        self.finishing = True
        if self.link is not None:
            self.link.side_ended(self)

class Link:
    """A client side and a worker side relayed together, with what revocation needs to know."""

    __slots__ = ("__weakref__", "_closing", "_on_closed", "allocation_id", "cert_serial", "client", "closed",
                 "idle_bytes", "idle_since", "last_bytes", "started", "upstream", "worker")

    def __init__(self, *, client: Side, upstream: Side, worker: str, allocation_id: str,
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
        client.peer, upstream.peer = upstream, client

    def start(self) -> None:
        self.client.start()
        if not self.upstream.finishing:  # the client may have gone already
            self.upstream.start()

    def side_ended(self, side: Side) -> None:
        """One side will send no more: both close, but what it sent still reaches the other."""
        other = self.upstream if side is self.client else self.client
        side.finish(now=True)
        if side._stuck is not None:  # a chunk owed to ``other``
            other.await_owed(OWED_TIMEOUT)
        else:
            other.finish(notify=other.notify_after(side))
        self._report()

    def close(self) -> None:
        """Close both sides now (revocation, idle timeout, end of drain); later calls do nothing."""
        if self._closing:
            return
        self._closing = True
        self.client.finish(now=True)
        self.upstream.finish(now=True)
        self._report()

    def _report(self) -> None:
        self._closing = True
        if not self.closed:
            self.closed = True
            self._on_closed(self)
