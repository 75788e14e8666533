"""A ``buildctl`` stand-in: ``buildctl [--addr ADDR] [TLS flags] debug workers`` calls ListWorkers.

Exit status 0 when the daemon answers (so it works as the worker pods' exec probe), 1 otherwise.
``--addr`` defaults to ``$BUILDKIT_HOST``; ``unix://`` is plaintext, ``tcp://`` uses mTLS when
``--tlscacert``/``--tlscert``/``--tlskey`` are given (``--tlsservername`` overrides the name checked).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import grpc

from .proto import control_pb2, control_pb2_grpc

__all__ = ["main"]


def _channel(args: argparse.Namespace) -> grpc.Channel:
    addr: str = args.addr
    if addr.startswith("unix://"):
        return grpc.insecure_channel(f"unix:{addr[len('unix://') :]}")
    target = addr.removeprefix("tcp://")
    if not args.tlscacert:
        return grpc.insecure_channel(target)
    creds = grpc.ssl_channel_credentials(
        Path(args.tlscacert).read_bytes(),
        Path(args.tlskey).read_bytes() if args.tlskey else None,
        Path(args.tlscert).read_bytes() if args.tlscert else None,
    )
    options = [("grpc.ssl_target_name_override", args.tlsservername)] if args.tlsservername else []
    return grpc.secure_channel(target, creds, options=options)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="buildctl")
    parser.add_argument("--addr", default=os.environ.get("BUILDKIT_HOST", "unix:///run/buildkit/buildkitd.sock"))
    parser.add_argument("--tlscacert")
    parser.add_argument("--tlscert")
    parser.add_argument("--tlskey")
    parser.add_argument("--tlsservername")
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("command", nargs="+")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.command != ["debug", "workers"]:
        print(
            f"buildctl (kubesim stand-in): only 'debug workers' is supported, not {args.command}",
            file=sys.stderr,
        )
        return 2
    try:
        with _channel(args) as channel:
            stub = control_pb2_grpc.ControlStub(channel)  # type: ignore[no-untyped-call]
            reply = stub.ListWorkers(control_pb2.ListWorkersRequest(), timeout=args.timeout)
    except grpc.RpcError as exc:
        print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    width = max([len(w.ID) for w in reply.record] + [30]) + 2  # columns like buildctl's tabwriter
    print(f"{'ID':<{width}}PLATFORMS")
    for worker in reply.record:
        platforms = ",".join(f"{p.OS}/{p.Architecture}" for p in worker.platforms)
        print(f"{worker.ID:<{width}}{platforms}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
