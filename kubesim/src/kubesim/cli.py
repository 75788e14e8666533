"""``kubesim serve``: run the emulator as a process; prints ``READY <url> <https-url>`` once serving."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

import yaml

from .kubelet.images import ImageMap, parse_image_flag
from .scheduling import node_object
from .server import KubeSim

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubesim", description="In-memory Kubernetes API server for tests")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve until SIGTERM/SIGINT")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=0, help="HTTP port (0: any free port)")
    serve.add_argument("--https-port", type=int, default=0, help="HTTPS port (0: any free port)")
    serve.add_argument("--no-https", action="store_true", help="serve plain HTTP only")
    serve.add_argument("--kubeconfig", help="write a kubeconfig for the server to this path")
    serve.add_argument("--ca-file", help="write the server's CA certificate (PEM) to this path")
    serve.add_argument("--history", type=int, default=10_000, help="watch events retained for resumption")
    serve.add_argument(
        "--lenient",
        action="store_true",
        help="drop unknown fields of built-in kinds instead of refusing them",
    )
    _kubelet_flags(serve)
    return parser


def _kubelet_flags(serve: argparse.ArgumentParser) -> None:
    serve.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="IMAGE=COMMAND",
        help="run containers of IMAGE (repository, with or without tag) as COMMAND (shell-split)",
    )
    serve.add_argument("--image-map", metavar="FILE", help="YAML/JSON mapping image → command (string or list)")
    serve.add_argument(
        "--unmapped",
        choices=("ready", "pending"),
        default="ready",
        help="containers of other images: Running/Ready without a process, or stay ContainerCreating",
    )
    serve.add_argument("--no-buildkitd", action="store_true", help="do not map moby/buildkit to the stand-in")
    serve.add_argument(
        "--node",
        action="append",
        default=[],
        metavar="JSON",
        help='a simulated node: {"name": "n1", "labels": {...}, "taints": [...]} (default: kubesim-node)',
    )
    serve.add_argument("--grace-cap", type=float, default=1.0, help="cap on pod grace periods (seconds)")
    serve.add_argument("--no-kubelet", action="store_true", help="pods stay Pending (no kubelet, part 1 behaviour)")


def _images(args: argparse.Namespace) -> ImageMap:
    mapping: dict[str, Any] = {}
    if args.image_map:
        mapping.update(yaml.safe_load(Path(args.image_map).read_text()) or {})
    mapping.update(dict(parse_image_flag(flag) for flag in args.image))
    return ImageMap(mapping, unmapped=args.unmapped, buildkitd=not args.no_buildkitd)


def _nodes(args: argparse.Namespace) -> list[dict[str, Any]] | None:
    if not args.node:
        return None
    specs = [json.loads(text) for text in args.node]
    return [node_object(s["name"], s.get("labels"), s.get("taints")) for s in specs]


async def _serve(args: argparse.Namespace) -> None:
    sim = KubeSim(
        host=args.host,
        port=args.port,
        https_port=None if args.no_https else args.https_port,
        history=args.history,
        strict_builtins=not args.lenient,
        kubelet=not args.no_kubelet,
        images=_images(args),
        nodes=_nodes(args),
        pod_grace_cap=args.grace_cap,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with sim:
        if args.kubeconfig:
            sim.write_kubeconfig(args.kubeconfig)
        if args.ca_file and sim.pki is not None:
            with open(args.ca_file, "wb") as handle:
                handle.write(sim.ca_pem)
        print(f"READY {sim.url} {sim.https_url}".rstrip(), flush=True)
        await stop.wait()
    print("STOPPED", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
