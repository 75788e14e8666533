"""The gateway's Prometheus metrics, in a registry of their own (several gateways can share a test)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["GatewayMetrics"]

_DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600, 4 * 3600)


class GatewayMetrics:
    """Names from the seed README; every series carries the pool so one Prometheus can scrape many."""

    def __init__(self, pool: str) -> None:
        self.pool = pool
        self.registry = CollectorRegistry()
        reg = self.registry
        self.active = Gauge("buildkit_gateway_active_connections", "Proxied connections open now",
                            ["pool"], registry=reg).labels(pool)
        self._total = Counter("buildkit_gateway_connections_total",
                              "Client connections by outcome (success, error, rejected)",
                              ["pool", "status"], registry=reg)
        self.successes, self.errors = (self._total.labels(pool, status) for status in ("success", "error"))
        self.duration = Histogram("buildkit_gateway_connection_duration_seconds",
                                  "Life of proxied connections", ["pool"], buckets=_DURATION_BUCKETS,
                                  registry=reg).labels(pool)
        self.bytes_in = Counter("buildkit_gateway_received_bytes_total", "Bytes from clients to workers",
                                ["pool"], registry=reg).labels(pool)
        self.bytes_out = Counter("buildkit_gateway_sent_bytes_total", "Bytes from workers to clients",
                                 ["pool"], registry=reg).labels(pool)
        self._rejections = Counter("buildkit_gateway_rejections_total", "Refused connections by reason",
                                   ["pool", "reason"], registry=reg)
        self.resumed = Counter("buildkit_gateway_upstream_sessions_resumed_total",
                               "Worker connections that resumed a TLS session", ["pool"],
                               registry=reg).labels(pool)
        self.reloads = Counter("buildkit_gateway_certificate_reloads_total",
                               "Certificate reloads by result", ["pool", "result"], registry=reg)
        self.cache_synced = Gauge("buildkit_gateway_worker_cache_synced",
                                  "1 while the worker cache is in sync with the API", ["pool"],
                                  registry=reg).labels(pool)

    def connection(self, status: str) -> None:
        """Count one client connection as ``success``, ``error`` or ``rejected``."""
        self._total.labels(self.pool, status).inc()

    def reject(self, reason: str) -> None:
        """Count a refusal under ``rejected`` and under its reason."""
        self._rejections.labels(self.pool, reason).inc()
        self.connection("rejected")

    def revoked(self, reason: str) -> None:
        """Count a live connection closed because its allocation stopped being live."""
        self._rejections.labels(self.pool, f"revoked-{reason}").inc()

    def reload(self, result: str) -> None:
        self.reloads.labels(self.pool, result).inc()

    def render(self) -> bytes:
        """The text exposition format for ``/metrics``."""
        return generate_latest(self.registry)
