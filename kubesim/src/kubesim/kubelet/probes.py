"""Readiness/liveness probes and preStop handlers, as the kubelet runs them.

``exec`` runs inside the pod's mount namespace with the container's environment; ``tcpSocket``
connects, ``httpGet`` sends a GET (``User-Agent: kube-probe/1.32``; 200-399 is success; HTTPS is not
verified) — both to the pod IP unless ``host`` is given, the port by number or by container port
name. ``initialDelaySeconds``, ``periodSeconds``, ``timeoutSeconds``, ``successThreshold`` and
``failureThreshold`` are honoured in real seconds (``probe_period_cap`` shortens long periods for
tests). ``grpc`` probes and startup probes are not
emulated (a startupProbe is ignored).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from .process import run_in_pod

__all__ = ["Prober", "resolve_port", "run_handler"]


def resolve_port(port: Any, container: dict[str, Any]) -> int:
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    for declared in container.get("ports") or ():
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise ValueError(f"port {port!r} is not a container port name")


async def _http_get(spec: dict[str, Any], host: str, port: int, timeout: float) -> bool:
    context = None
    if spec.get("scheme", "HTTP").upper() == "HTTPS":
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=context), timeout)
    try:
        headers = "".join(f"{h['name']}: {h['value']}\r\n" for h in spec.get("httpHeaders") or ())
        request = (
            f"GET {spec.get('path', '/')} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"User-Agent: kube-probe/1.32\r\nAccept: */*\r\nConnection: close\r\n{headers}\r\n"
        )
        writer.write(request.encode())
        line = await asyncio.wait_for(reader.readline(), timeout)
        parts = line.split()
        return len(parts) >= 2 and 200 <= int(parts[1]) < 400
    finally:
        writer.close()


async def _tcp(host: str, port: int, timeout: float) -> bool:
    _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    writer.close()
    return True


async def run_handler(
    handler: dict[str, Any],
    *,
    container: dict[str, Any],
    pod_ip: str,
    sandbox_pid: int | None,
    env: dict[str, str],
    timeout: float,
) -> bool:
    """One probe attempt or lifecycle handler: True on success."""
    try:
        if "exec" in handler:
            if sandbox_pid is None:
                return False
            code, _ = await run_in_pod(sandbox_pid, list(handler["exec"].get("command") or []), env, timeout)
            return code == 0
        return await _network_handler(handler, container, pod_ip, timeout)
    except (OSError, TimeoutError, ValueError):
        return False


async def _network_handler(handler: dict[str, Any], container: dict[str, Any], pod_ip: str, timeout: float) -> bool:
    if "httpGet" in handler:
        spec = handler["httpGet"]
        port = resolve_port(spec.get("port"), container)
        return await _http_get(spec, spec.get("host") or pod_ip, port, timeout)
    if "tcpSocket" in handler:
        spec = handler["tcpSocket"]
        return await _tcp(spec.get("host") or pod_ip, resolve_port(spec.get("port"), container), timeout)
    if "sleep" in handler:
        await asyncio.sleep(min(float(handler["sleep"].get("seconds", 0)), timeout))
        return True
    return False


class Prober:
    """Runs one probe forever, calling ``on_result(ok)`` when the thresholded result changes."""

    def __init__(
        self,
        probe: dict[str, Any],
        attempt: Callable[[float], Awaitable[bool]],
        period_cap: float | None = None,
    ) -> None:
        self.probe = probe
        self.attempt = attempt
        self.period_cap = period_cap

    async def run(self, on_result: Callable[[bool], None]) -> None:
        probe = self.probe
        period = float(probe.get("periodSeconds", 10))
        if self.period_cap is not None:
            period = min(period, self.period_cap)
        timeout = float(probe.get("timeoutSeconds", 1))
        need_ok, need_fail = int(probe.get("successThreshold", 1)), int(probe.get("failureThreshold", 3))
        await asyncio.sleep(float(probe.get("initialDelaySeconds", 0)))
        oks = fails = 0
        while True:
            if await self.attempt(timeout):
                oks, fails = oks + 1, 0
                if oks == need_ok:
                    on_result(True)
            else:
                oks, fails = 0, fails + 1
                if fails == need_fail:
                    on_result(False)
            await asyncio.sleep(period)
