"""A stand-in for the gateway program (not written yet) with the gateway's command line.

``--listen`` answers every connection with its pod name; ``--metrics-listen`` serves ``/readyz``
(200 once ``--tls-dir`` holds tls.crt), ``/healthz`` and ``/tls`` (the certificate it sees now).
Both bind the wildcard address exactly as the rendered manifest says.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from pathlib import Path

from aiohttp import web


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    for flag in ("--pool", "--namespace", "--listen", "--metrics-listen", "--tls-dir", "--worker-client-dir"):
        parser.add_argument(flag, required=True)
    return parser.parse_args()


async def main() -> None:
    args = parse()
    tls = Path(args.tls_dir) / "tls.crt"

    async def readyz(_: web.Request) -> web.Response:
        return web.Response(status=200 if tls.exists() else 503, text="ok")

    async def show_tls(_: web.Request) -> web.Response:
        return web.Response(text=tls.read_text())

    app = web.Application()
    app.add_routes([web.get("/readyz", readyz), web.get("/healthz", readyz), web.get("/tls", show_tls)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, port = args.metrics_listen.rsplit(":", 1)
    await web.TCPSite(runner, host, int(port)).start()

    async def hello(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(os.environ["POD_NAME"].encode())
        await writer.drain()
        writer.close()

    host, port = args.listen.rsplit(":", 1)
    server = await asyncio.start_server(hello, host, int(port))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    server.close()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
