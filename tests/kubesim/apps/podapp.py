"""A small test server that kubesim runs as a pod's container process.

Serves on ``$POD_IP:8080`` (or ``--listen``): ``/env`` (its environment), ``/file?path=P`` (a file's
contents as this process sees it), ``/whoami`` (reads its own Pod through the in-cluster
``kubernetes_asyncio`` configuration), ``/readyz`` (503 when ``NOT_READY`` is set), ``/healthz``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from pathlib import Path

from aiohttp import web
from kubernetes_asyncio import client, config


async def env(_: web.Request) -> web.Response:
    return web.json_response(dict(os.environ))


async def read_file(request: web.Request) -> web.Response:
    try:
        return web.Response(text=Path(request.query["path"]).read_text())
    except OSError as exc:
        return web.Response(status=404, text=str(exc))


async def whoami(_: web.Request) -> web.Response:
    config.load_incluster_config()
    async with client.ApiClient() as api:
        namespace = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read_text()
        pod = await client.CoreV1Api(api).read_namespaced_pod(os.environ["POD_NAME"], namespace)
    return web.json_response({"name": pod.metadata.name, "podIP": pod.status.pod_ip})


async def readyz(_: web.Request) -> web.Response:
    return web.Response(status=503 if os.environ.get("NOT_READY") else 200, text="ok")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", default=f"{os.environ.get('POD_IP', '127.0.0.1')}:8080")
    args = parser.parse_args()
    host, port = args.listen.rsplit(":", 1)
    app = web.Application()
    app.add_routes(
        [
            web.get("/env", env),
            web.get("/file", read_file),
            web.get("/whoami", whoami),
            web.get("/readyz", readyz),
            web.get("/healthz", readyz),
        ]
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, int(port)).start()
    print(f"serving on {host}:{port}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    print("SIGTERM received", flush=True)
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
