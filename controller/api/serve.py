"""Serving the API with hypercorn, until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass

from hypercorn.asyncio import serve
from hypercorn.config import Config

from buildkit_controller.controller.api import tls
from buildkit_controller.controller.api.allocations import Allocator
from buildkit_controller.controller.api.app import ApiContext, create_app
from buildkit_controller.controller.api.identity import IdentityAuthority
from buildkit_controller.controller.api.tls import ClientTrust
from buildkit_controller.controller.reconciler.kube import Kube
from buildkit_controller.core._loader import load_plugins
from buildkit_controller.core.errors import ConfigError
from buildkit_controller.core.models import Runtime
from buildkit_controller.core.settings import PluginSettings

__all__ = ["ApiOptions", "run_api"]


@dataclass(frozen=True, kw_only=True)
class ApiOptions:
    listen: str = "0.0.0.0:8082"
    server: str | None = None
    kubeconfig: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    #: Extra CAs (PEM bundle) whose client certificates the TLS layer accepts, besides the identity
    #: CA and the pools' worker CAs; only with ``certfile``/``keyfile``.
    client_ca: str | None = None
    #: Where the identity CA Secret lives (the API's own namespace).
    namespace: str = "buildkit-system"
    audience: str = "buildkit-controller"
    #: Extra environment for the plugins (over the process's own), e.g. the token directory.
    environ: Mapping[str, str] | None = None


def _config(options: ApiOptions) -> tuple[Config, ClientTrust | None]:
    """Plain HTTP by default; with a certificate and key, TLS with optional client certificates."""
    if bool(options.certfile) != bool(options.keyfile):
        raise ConfigError("give both --certfile and --keyfile, or neither")
    if options.client_ca and not options.certfile:
        raise ConfigError("--client-ca needs TLS: give --certfile and --keyfile too")
    trust = None
    if options.certfile and options.keyfile:
        tls.install()
        trust = ClientTrust(tls.server_context(options.certfile, options.keyfile, options.client_ca))
        config: Config = tls.TLSConfig(trust.context)
    else:
        config = Config()
    config.bind = [options.listen]
    config.accesslog = "-"
    return config, trust


async def run_api(options: ApiOptions, plugins: PluginSettings, stop: asyncio.Event | None = None) -> None:
    host = load_plugins(plugins)
    kube = await Kube.connect(host=options.server, kubeconfig=options.kubeconfig)
    environ = {**os.environ, **(options.environ or {})}
    authority = IdentityAuthority(kube, options.namespace)
    host.configure(Runtime(process="api", environ=environ, audience=options.audience, kube=kube,
                           identity_ca=authority.bundle))
    config, trust = _config(options)
    app = create_app(ApiContext(kube=kube, host=host, allocator=Allocator(kube), audience=options.audience,
                                identity=authority, trust=trust))
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
    finally:
        await kube.close()
