"""``buildkit-controller dev``: the whole system on one machine, no cluster needed.

kubesim (the embedded Kubernetes) runs pods as local processes: the gateway image runs this
project's ``buildkit-gateway`` and ``moby/buildkit`` runs kubesim's stand-in buildkitd. The operator
and the allocation API run in this process. Ctrl-C stops everything, pods included.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from buildkit_controller.controller.api.serve import ApiOptions, run_api
from buildkit_controller.controller.crds import all_crds
from buildkit_controller.controller.reconciler.context import GATEWAY_REPOSITORY, OperatorSettings
from buildkit_controller.controller.reconciler.kube import Kube
from buildkit_controller.controller.reconciler.run import OperatorOptions, run_operator
from buildkit_controller.core.settings import PluginSettings
from buildkit_controller.plugins.token import new_static_token
from kubesim import KubeSim

__all__ = ["DevOptions", "run_dev"]


@dataclass(frozen=True, kw_only=True)
class DevOptions:
    api_listen: str = "127.0.0.1:8082"
    pool_files: tuple[Path, ...] = ()
    workdir: Path | None = None


def _images() -> dict[str, list[str]]:
    gateway = str(Path(sys.executable).parent / "buildkit-gateway")
    return {GATEWAY_REPOSITORY: [gateway]}


async def _install(kube: Kube, pool_files: tuple[Path, ...]) -> list[str]:
    for crd in all_crds():
        await kube.create(crd)
    pools = []
    for path in pool_files:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                doc.setdefault("metadata", {}).setdefault("namespace", "default")
                await kube.create(doc)
                pools.append(f"{doc['metadata']['namespace']}/{doc['metadata']['name']}")
    return pools


def _token(workdir: Path) -> tuple[str, Path]:
    tokens = workdir / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    token, entry = new_static_token("developer", None)
    (tokens / "developer").write_text(json.dumps(entry))
    saved = workdir / "token"  # for scripts: TOKEN=$(cat .dev/token)
    saved.touch(mode=0o600)
    saved.write_text(token + "\n")
    return token, tokens


def _banner(sim: KubeSim, options: DevOptions, token: str, kubeconfig: Path, pools: list[str]) -> str:
    return "\n".join([
        "buildkit-controller dev is running (Ctrl-C stops everything).",
        f"  Kubernetes API (kubesim): {sim.https_url}   export KUBECONFIG={kubeconfig}",
        f"  Allocation API:           http://{options.api_listen}",
        f"  Bearer token:             {token}",
        f"  Pools:                    {', '.join(pools) or 'none'}",
        f"  Try: curl -s -X POST http://{options.api_listen}/api/v1/workers/allocate "
        f"-H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' "
        f"-d '{{\"poolName\": \"{pools[0].split('/')[1] if pools else 'my-buildkit-pool'}\", \"ttl\": \"1h\"}}'",
    ])


async def run_dev(options: DevOptions, plugins: PluginSettings,
                  announce: Callable[[str], Any] = print, stop: asyncio.Event | None = None) -> None:
    """Run until ``stop`` is set or SIGINT/SIGTERM arrives."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="buildkit-controller-dev-"))
    workdir.mkdir(parents=True, exist_ok=True)
    async with KubeSim(images=_images()) as sim:
        kubeconfig = workdir / "kubeconfig"
        sim.write_kubeconfig(kubeconfig)
        kube = await Kube.connect(host=sim.url)
        try:
            pools = await _install(kube, options.pool_files)
        finally:
            await kube.close()
        token, tokens = _token(workdir)
        api = ApiOptions(listen=options.api_listen, server=sim.url, namespace="default",
                         environ={"BKC_AUTH_TOKEN_DIR": str(tokens)})
        tasks = [asyncio.create_task(run_operator(OperatorOptions(server=sim.url, standalone=True), plugins,
                                                  OperatorSettings(resync_seconds=5), stop_flag=stop)),
                 asyncio.create_task(run_api(api, plugins, stop=stop))]
        for task in tasks:  # Kopf installs its own signal handlers: whoever stops first stops the rest
            task.add_done_callback(lambda _: stop.set())
        announce(_banner(sim, options, token, kubeconfig, pools))
        await stop.wait()
        await asyncio.gather(*tasks, return_exceptions=True)
