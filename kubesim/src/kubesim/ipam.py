"""Address blocks in 127.0.0.0/8 for pod IPs and Service cluster IPs.

Every KubeSim instance claims one ``127.B.0.0/16`` block (B in 2..250) for its lifetime by binding a
TCP socket on ``127.B.255.254:64999`` — an exclusive, cross-process lock, so two kubesims on one
machine never hand out the same address. Pod IPs come from ``127.B.0.2``-``127.B.127.254``, cluster
IPs from ``127.B.128.1``-``127.B.255.253``; the whole of 127/8 is routed to loopback on Linux, so
every address can be bound without setup.
"""

from __future__ import annotations

import ipaddress
import socket

__all__ = ["AddressBlock", "Pool"]

_LOCK_PORT = 64999


class Pool:
    """Hands out addresses of one range; released addresses are reused last (like a real IPAM)."""

    def __init__(self, first: str, last: str) -> None:
        self._next = int(ipaddress.ip_address(first))
        self._last = int(ipaddress.ip_address(last))
        self._free: list[int] = []
        self.used: set[str] = set()

    def allocate(self) -> str:
        if self._next <= self._last:
            value = self._next
            self._next += 1
            if value & 0xFF in (0, 255):
                return self.allocate()
        elif self._free:
            value = self._free.pop(0)
        else:
            raise RuntimeError("address pool exhausted")
        address = str(ipaddress.ip_address(value))
        self.used.add(address)
        return address

    def reserve(self, address: str) -> None:
        self.used.add(address)

    def release(self, address: str) -> None:
        if address in self.used:
            self.used.discard(address)
            self._free.append(int(ipaddress.ip_address(address)))


class AddressBlock:
    """One claimed ``127.B.0.0/16``: ``pods`` and ``services`` pools. Call :meth:`close` to free it."""

    def __init__(self) -> None:
        self._lock, self.octet = _claim()
        b = self.octet
        self.pods = Pool(f"127.{b}.0.2", f"127.{b}.127.254")
        self.services = Pool(f"127.{b}.128.1", f"127.{b}.255.253")

    def close(self) -> None:
        self._lock.close()


def _claim() -> tuple[socket.socket, int]:
    for octet in range(2, 251):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((f"127.{octet}.255.254", _LOCK_PORT))
            sock.listen(1)
        except OSError:
            sock.close()
            continue
        return sock, octet
    raise RuntimeError("no free 127.B.0.0/16 block for kubesim")
