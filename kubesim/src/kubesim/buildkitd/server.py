"""The stand-in buildkitd's gRPC service and command line (see the package docstring)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from ..relay import pipe
from .proto import control_pb2, control_pb2_grpc, ops_pb2, worker_pb2

__all__ = ["Control", "main", "parse_args"]

VERSION = worker_pb2.BuildkitVersion(package="github.com/moby/buildkit", version="v0.31.1-kubesim", revision="kubesim")
log = logging.getLogger("buildkitd")


class Control(control_pb2_grpc.ControlServicer):
    """ListWorkers/Info/DiskUsage answer like a one-worker OCI buildkitd; Session echoes bytes."""

    def __init__(self, config: dict[str, Any], root: Path, no_sandbox: bool) -> None:
        self.config, self.root, self.no_sandbox = config, root, no_sandbox
        self.sessions = 0

    def _worker(self) -> worker_pb2.WorkerRecord:
        hostname = os.environ.get("HOSTNAME") or socket.gethostname()
        labels = {
            "org.mobyproject.buildkit.worker.executor": "oci",
            "org.mobyproject.buildkit.worker.hostname": hostname,
            "org.mobyproject.buildkit.worker.network": "host",
            "org.mobyproject.buildkit.worker.snapshotter": "overlayfs",
            "org.mobyproject.buildkit.worker.oci.process-mode": "no-sandbox" if self.no_sandbox else "sandbox",
        }
        oci = ((self.config.get("worker") or {}).get("oci")) or {}
        labels.update({str(k): str(v) for k, v in (oci.get("labels") or {}).items()})
        policies = [
            worker_pb2.GCPolicy(
                all=bool(p.get("all")),
                keepDuration=int(p.get("keepDuration", 0)) if str(p.get("keepDuration", "0")).isdigit() else 0,
                keepBytes=int(p.get("keepBytes", 0)) if str(p.get("keepBytes", "0")).isdigit() else 0,
                filters=[str(f) for f in p.get("filters") or []],
            )
            for p in oci.get("gcpolicy") or []
        ]
        return worker_pb2.WorkerRecord(
            ID=f"kubesim-{hostname}",
            Labels=labels,
            platforms=[ops_pb2.Platform(Architecture="amd64", OS="linux")],
            GCPolicy=policies,
            BuildkitVersion=VERSION,
        )

    async def ListWorkers(
        self, request: control_pb2.ListWorkersRequest, context: grpc.aio.ServicerContext
    ) -> control_pb2.ListWorkersResponse:
        log.info("ListWorkers from %s", _caller(context))
        return control_pb2.ListWorkersResponse(record=[self._worker()])

    async def Info(
        self, request: control_pb2.InfoRequest, context: grpc.aio.ServicerContext
    ) -> control_pb2.InfoResponse:
        return control_pb2.InfoResponse(buildkitVersion=VERSION)

    async def DiskUsage(
        self, request: control_pb2.DiskUsageRequest, context: grpc.aio.ServicerContext
    ) -> control_pb2.DiskUsageResponse:
        size = sum(f.stat().st_size for f in self.root.rglob("*") if f.is_file()) if self.root.is_dir() else 0
        created = Timestamp()
        created.FromSeconds(int(time.time()))
        record = control_pb2.UsageRecord(
            ID="kubesim-state",
            Size=size,
            RecordType="regular",
            CreatedAt=created,
            Description="stand-in state",
        )
        return control_pb2.DiskUsageResponse(record=[record])

    async def Session(
        self, request_iterator: AsyncIterator[control_pb2.BytesMessage], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[control_pb2.BytesMessage]:
        self.sessions += 1
        async for message in request_iterator:
            yield control_pb2.BytesMessage(data=message.data)


def _caller(context: grpc.aio.ServicerContext) -> str:
    names = context.auth_context().get("x509_common_name") or []
    return names[0].decode() if names else "(no client certificate)"


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="buildkitd", description="kubesim's stand-in buildkitd")
    parser.add_argument("--addr", action="append", default=[], help="unix://PATH or tcp://HOST:PORT")
    parser.add_argument("--config", help="buildkitd.toml")
    parser.add_argument("--tlscacert")
    parser.add_argument("--tlscert")
    parser.add_argument("--tlskey")
    parser.add_argument("--root", default=os.path.expanduser("~/.local/share/buildkit"))
    parser.add_argument("--debug", action="store_true")
    parser.add_argument("--oci-worker-no-process-sandbox", action="store_true")
    return parser.parse_known_args(argv)


def _credentials(args: argparse.Namespace, tls: dict[str, Any]) -> grpc.ServerCredentials | None:
    cert, key, ca = (
        args.tlscert or tls.get("cert"),
        args.tlskey or tls.get("key"),
        args.tlscacert or tls.get("ca"),
    )
    if not (cert and key):
        return None
    pair = [(Path(key).read_bytes(), Path(cert).read_bytes())]
    if not ca:
        return grpc.ssl_server_credentials(pair)
    return grpc.ssl_server_credentials(pair, root_certificates=Path(ca).read_bytes(), require_client_auth=True)


def _listen(
    server: grpc.aio.Server, address: str, creds: grpc.ServerCredentials | None, internal: Path
) -> tuple[str, int, str] | None:
    """Add a port for ``address``; for TCP, the (host, port, unix socket) an IPv4 relay must serve.

    grpc binds TCP as dual-stack IPv6 sockets, which show up in /proc/net/tcp6 — but the worker
    pod's preStop hook looks for its connections in /proc/net/tcp, where buildkitd's (Go, AF_INET)
    sockets are. So TLS/gRPC is served on an internal unix socket and an AF_INET listener relays
    bytes to it unchanged (the TLS handshake, client-certificate check included, is end to end).
    """
    if address.startswith("unix://"):
        path = Path(address[len("unix://") :])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        server.add_insecure_port(f"unix:{path}")
        return None
    if not address.startswith("tcp://"):
        raise SystemExit(f"buildkitd: unsupported address {address!r}")
    host, _, port = address[len("tcp://") :].rpartition(":")
    relay = internal / f"tcp-{host}-{port}.sock"
    relay.unlink(missing_ok=True)
    if creds is None:
        server.add_insecure_port(f"unix:{relay}")
    else:
        server.add_secure_port(f"unix:{relay}", creds)
    return host.strip("[]"), int(port), str(relay)


async def _relay(host: str, port: int, path: str) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(path)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer, 262144), pipe(up_reader, writer, 262144), return_exceptions=True)
        writer.close()
        up_writer.close()

    return await asyncio.start_server(handle, host, port, family=socket.AF_INET, reuse_address=True)


async def serve(args: argparse.Namespace) -> None:
    config = tomllib.loads(Path(args.config).read_text()) if args.config else {}
    grpc_config = config.get("grpc") or {}
    addresses = args.addr or grpc_config.get("address") or ["unix:///run/buildkit/buildkitd.sock"]
    creds = _credentials(args, grpc_config.get("tls") or {})
    server = grpc.aio.server()
    control_pb2_grpc.add_ControlServicer_to_server(  # type: ignore[no-untyped-call]
        Control(config, Path(args.root), args.oci_worker_no_process_sandbox), server
    )
    # In a kubesim pod /run is the pod's own tmpfs: nothing is left behind even after a SIGKILL.
    private_run = "/run" if os.environ.get("KUBESIM_POD_UID") and os.access("/run", os.W_OK) else None
    internal = Path(tempfile.mkdtemp(prefix="buildkitd-", dir=private_run))
    relays = [r for address in addresses if (r := _listen(server, address, creds, internal))]
    await server.start()
    listeners = [await _relay(*relay) for relay in relays]
    print(f"buildkitd (kubesim stand-in) running on {' '.join(addresses)}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    print("buildkitd: stopping", flush=True)
    for listener in listeners:
        listener.close()
    await server.stop(1.0)
    shutil.rmtree(internal, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args, ignored = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, format="%(name)s: %(message)s")
    if ignored:
        log.info("ignoring flags %s", ignored)
    asyncio.run(serve(args))
    return 0
