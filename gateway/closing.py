"""How a side of a proxied connection closes (:class:`.relay.Side` mixes this in).

What one side sent before it ended is written to the other first. Then close_notify, and then:

- a FIN at once for a side that ended, a revoked or idle connection and a refused client, so every
  client sees the end, whether or not it acts on close_notify (gRPC's C core waits for the FIN);
- otherwise a FIN only once the peer's own close_notify arrives (at most ``LINGER``): asyncio's SSL
  transports drop records still buffered when a FIN arrives while the application is not reading.

The socket then lingers, discarding what still arrives, until the peer closes, or ``LINGER`` passes
without the peer taking any of what the kernel still holds for it; before closing it is read dry,
since closing with unread bytes sends a reset, which discards what the peer has not read yet.
Deadlines are enforced by the owner's sweep (:meth:`Closing.timed_out`).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import socket
import ssl
import struct
import termios
import time
from typing import Any

__all__ = ["LINGER", "OWED_TIMEOUT", "Closing", "nothing"]

LINGER = 2.0  # seconds a closing socket waits for the peer to close (its close_notify, its FIN)
OWED_TIMEOUT = 60.0  # seconds a side may take to accept the last chunk of a side that ended
_SCRATCH = bytearray(64 * 1024)  # where lingering sockets' last bytes go
_DISCARD = memoryview(_SCRATCH)
_WantRead, _WantWrite = ssl.SSLWantReadError, ssl.SSLWantWriteError


def nothing() -> None:
    """What a side with nothing to do on a readable event does."""


class Closing:
    """The closing half of a side's life: close_notify, FIN, lingering, deadlines, abort.

    Uses the side's socket, TLS object, peer and watches (``_read_with`` and friends)."""

    __slots__ = ()
    # Provided by the side that mixes this in.
    sock: Any
    tls: Any
    fd: int
    peer: Any
    link: Any
    deadline: float
    finishing: bool
    closed: bool
    _loop: Any
    _shut: bool
    _stuck: Any
    _unsent: int
    _closing_since: float
    _on_done: Any
    _on_fail: Any
    _on_readable: Any

    def timed_out(self) -> None:
        """The owner's sweep found ``deadline`` passed: fail the handshake, or stop lingering
        (unless the peer is still taking what is queued for it, up to ``OWED_TIMEOUT``)."""
        now = time.monotonic()
        if self._on_fail is not None:
            self._failed(TimeoutError("TLS handshake timed out"))
        elif self._shut and now - self._closing_since < OWED_TIMEOUT and self._unsent_shrinks():
            self.deadline = now + LINGER
        else:
            self._read_dry()  # closing with unread bytes would send a reset
            self.abort()

    def _unsent_shrinks(self) -> bool:
        """Whether the kernel holds bytes for the peer and fewer than at the last look."""
        try:
            unsent = struct.unpack("i", fcntl.ioctl(self.fd, termios.TIOCOUTQ, b"\0" * 4))[0]
        except OSError:
            return False
        shrinks, self._unsent = 0 < unsent < self._unsent, unsent
        return shrinks

    def _read_dry(self) -> None:
        with contextlib.suppress(OSError):
            for _ in range(64):
                if not self.sock.recv_into(_SCRATCH):
                    return

    def finish(self, *, now: bool = False, notify: bool = True) -> None:
        """Close gracefully, dropping what the peer read for this side and could not write yet.

        close_notify first (not after an abnormal end of the other side: then this side must see
        an unclean end too). Then, with ``now`` (revocation, a refusal, a side that already ended),
        a FIN at once: every client sees the end, whether or not it acts on close_notify (gRPC's
        C core waits for the FIN). Without, the FIN waits for the peer's close_notify (at most
        ``LINGER``): a client that is not reading when a FIN arrives may drop records it has
        buffered (asyncio's SSL transports do). The socket is closed once the peer closes, or when
        ``LINGER`` passes without the peer taking any of what is still queued for it."""
        if self.closed or self._shut:
            return
        self.finishing = self._shut = True
        self._drop_owed()
        self._stop_writing()
        self._closing_since = time.monotonic()
        self.deadline = self._closing_since + LINGER
        if not notify:
            self._fin()
        elif self._close_notify():
            self._after_notify(now)
        else:  # the send buffer is full: send close_notify once there is room
            self._stop_reading()
            self._write_with(functools.partial(self._retry_close_notify, now))

    def _close_notify(self) -> bool:
        """Send close_notify; False if it has to wait for room in the send buffer."""
        try:
            self.tls.shutdown()  # also reads the peer's if it is already here
        except _WantWrite:
            return False
        except (OSError, ValueError):  # want-read: sent, the peer's is not here yet; or broken
            pass
        return True

    def _retry_close_notify(self, now: bool) -> None:
        if self._close_notify():
            self._stop_writing()
            self._after_notify(now)

    def _after_notify(self, now: bool) -> None:
        if now:
            self._fin()
        else:
            self._read_with(self._await_close_notify)
            self._await_close_notify()

    def _await_close_notify(self) -> None:
        """Discard what crosses our close_notify until the peer's arrives, then FIN."""
        try:
            count = self.tls.read(len(_DISCARD), _DISCARD)
        except _WantRead:
            return
        except (OSError, ValueError):  # EOF, reset, a protocol error: nothing more to wait for
            count = 0
        if not count:  # close_notify (the stdlib returns 0 for it)
            self._fin()

    def _fin(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:  # not connected any more
            self.abort()
            return
        self._read_with(self._drain)
        self._drain()  # the peer may have closed already

    def await_owed(self, timeout: float) -> None:
        """Stop relaying, but close only once the peer's last chunk is written (``_flush``)."""
        self.finishing = True
        self._stop_reading()
        self.deadline = time.monotonic() + timeout

    def _drop_owed(self) -> None:
        peer = self.peer
        if peer is not None and peer._stuck is not None:
            peer._stuck = None
            self._stop_writing()  # peer._flush was registered on this socket
            if peer.closed:
                peer.peer = None

    def _drain(self) -> None:
        try:
            if self.sock.recv_into(_SCRATCH):
                return
        except BlockingIOError:
            return
        except OSError:
            pass
        self.abort()

    def abort(self) -> None:
        """Close the socket now. A chunk this side read and still owes its peer stays deliverable."""
        if self.closed:
            return
        self.closed = self.finishing = True
        self._stop_reading()
        self._drop_owed()
        self._stop_writing()
        self.sock.close()
        # Nothing calls this side any more: drop what ties it into reference cycles, so that
        # reference counting frees the connection, OpenSSL's objects included, at once.
        self.link = self._on_done = self._on_fail = None
        self._on_readable = nothing
        if self._stuck is None:
            self.peer = None


