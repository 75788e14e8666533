"""One gateway: the data plane on ``listen``, health and metrics on ``metrics_listen``, one event loop.

Start-up order matters for fail-closed behaviour: the listening socket opens at once (so clients get
a clear refusal rather than a connection error), but every connection is refused until the worker
cache has synced, and ``/readyz`` says not ready until then. Shutdown (SIGTERM): stop accepting,
report not ready, let live connections finish for up to ``drain_timeout``, close what is left,
write the final activity, exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config as HypercornConfig

from buildkit_controller.gateway.activity import ActivityReporter
from buildkit_controller.gateway.cache import WorkerCache
from buildkit_controller.gateway.closing import LINGER
from buildkit_controller.gateway.config import GatewayConfig
from buildkit_controller.gateway.health import health_app
from buildkit_controller.gateway.kube import WorkerStatusClient, WorkerWatch, api_client
from buildkit_controller.gateway.metrics import GatewayMetrics
from buildkit_controller.gateway.proxy import Proxy
from buildkit_controller.gateway.tls import TLSContexts

__all__ = ["Gateway"]

log = logging.getLogger(__name__)


class Gateway:
    """``await start()``, then ``await stop()`` (drains); addresses are known after ``start``."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.metrics = GatewayMetrics(config.pool)
        self.cache = WorkerCache()
        self.draining = False
        self._tasks: list[asyncio.Task[Any]] = []
        self._api: Any = None
        self._health_stop = asyncio.Event()
        self.address: tuple[str, int] = config.listen
        self.metrics_address: tuple[str, int] = config.metrics_listen

    async def start(self) -> None:
        config = self.config
        self.tls = TLSContexts(config.tls_dir, config.worker_client_dir, config.worker_server_name)
        self._api = await api_client(config.kube)
        status = WorkerStatusClient(self._api, config.namespace)
        self.activity = ActivityReporter(status.patch, self.cache.last_activity,
                                         interval=config.activity_interval, refresh=config.activity_refresh)
        self.proxy = Proxy(config, tls=self.tls, cache=self.cache, metrics=self.metrics,
                           activity=self.activity)
        watch = WorkerWatch(self._api, namespace=config.namespace, pool=config.pool, cache=self.cache,
                            stale_after=config.stale_after)
        self._spawn(watch.run(), self.activity.run(), self._reload_loop(), self._revalidate_loop())
        await self._listen()
        log.info("gateway for pool %s/%s listening on %s:%d, health and metrics on %s:%d",
                 config.namespace, config.pool, *self.address, *self.metrics_address)

    def ready(self) -> str | None:
        """None when ready; otherwise why not (``/readyz`` shows it)."""
        if self.draining:
            return "draining"
        if not self.cache.synced:
            return "worker cache not synced"
        return None

    async def stop(self) -> None:
        """Stop accepting, drain live connections up to ``drain_timeout``, then shut down."""
        self.draining = True
        self.proxy.stop_accepting()
        deadline = time.monotonic() + self.config.drain_timeout
        if self.proxy.links:
            log.info("draining %d connection(s) for up to %.0fs", len(self.proxy.links),
                     self.config.drain_timeout)
        while self.proxy.links and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.proxy.links:
            log.warning("drain timeout: closing %d connection(s)", len(self.proxy.links))
            self.proxy.close_all()
        linger = time.monotonic() + LINGER  # closing sockets: close_notify and FIN reach their peers
        while self.proxy.closing() and time.monotonic() < linger:
            await asyncio.sleep(0.05)
        with contextlib.suppress(Exception):  # best effort: the API may already be gone
            await asyncio.wait_for(self.activity.flush(force=True), 5)
        self._health_stop.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._api.close()
        self.proxy.abort_all()
        log.info("gateway stopped")

    def _spawn(self, *coros: Any) -> None:
        self._tasks.extend(asyncio.get_running_loop().create_task(coro) for coro in coros)

    async def _listen(self) -> None:
        data = _bound_socket(self.config.listen)
        self.proxy.listen(data)
        self.address = data.getsockname()[:2]
        health = _bound_socket(self.config.metrics_listen)
        self.metrics_address = health.getsockname()[:2]
        hyper = HypercornConfig()
        hyper.bind = [f"fd://{health.detach()}"]  # hypercorn owns the socket from here
        hyper.graceful_timeout = 1.0
        hyper.errorlog = logging.getLogger("hypercorn.error")
        app = health_app(self.ready, self.metrics.render)
        self._spawn(serve(app, hyper, shutdown_trigger=self._health_stop.wait))  # type: ignore[arg-type]

    async def _reload_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.reload_interval)
            result = self.tls.reload_if_changed()
            if result is not None:
                self.metrics.reload("success" if result else "error")

    async def _revalidate_loop(self) -> None:
        # Expiry needs no watch event: re-check live links on a timer, and publish sync state.
        while True:
            await asyncio.sleep(self.config.revalidate_interval)
            self.metrics.cache_synced.set(1 if self.cache.synced else 0)
            try:
                self.proxy.revalidate()
                self.proxy.sweep()
            except Exception:  # revocation and deadlines must outlive any one bad pass
                log.exception("revalidating connections failed; retrying")


def _bound_socket(address: tuple[str, int]) -> socket.socket:
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(1024)
    sock.setblocking(False)
    return sock
