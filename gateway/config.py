"""What one gateway process is told to do: its pool, its sockets, its certificate folders, its limits."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["GatewayConfig", "KubeAccess", "parse_hostport"]


@dataclass(frozen=True, kw_only=True, slots=True)
class KubeAccess:
    """How to reach the API server: an explicit URL, a kubeconfig, or (neither) in-cluster config."""

    server: str | None = None
    kubeconfig: Path | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class GatewayConfig:
    """Everything the gateway needs; the CLI builds it, tests build it directly."""

    pool: str
    namespace: str
    tls_dir: Path
    worker_client_dir: Path
    listen: tuple[str, int] = ("0.0.0.0", 1235)  # noqa: S104 - a gateway serves the pod network
    metrics_listen: tuple[str, int] = ("0.0.0.0", 9090)  # noqa: S104 - probes come from the kubelet
    kube: KubeAccess = KubeAccess()
    handshake_timeout: float = 10.0
    connect_timeout: float = 5.0
    idle_timeout: float = 0.0  # 0: never; allocation expiry bounds a connection's life anyway
    drain_timeout: float = 280.0  # below the Deployment's 300 s grace period
    reload_interval: float = 1.0
    activity_interval: float = 2.0  # at most one status patch per worker this often
    activity_refresh: float = 30.0  # lastActivityAt moves at least this often while connections live
    stale_after: float = 5.0  # a cache that cannot resync for this long refuses (fail closed)
    revalidate_interval: float = 0.25  # expiry is checked this often even without watch events
    max_connections_per_allocation: int = 64  # GW-02: one leaked certificate cannot exhaust a worker
    worker_session_reuse: bool = True  # resume TLS sessions to workers (nginx's default too)

    @property
    def worker_server_name(self) -> str:
        """The one DNS name every worker certificate of the pool carries; never the pod IP."""
        return f"buildkit-worker.{self.pool}.{self.namespace}"


def parse_hostport(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) into a tuple; ValueError with the bad value otherwise."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - ":1235" means all interfaces
