"""Running the operator: Kopf settings, login, peering, and the shared context on ``memo``."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any

import kopf

from buildkit_controller.controller.crds import GROUP
from buildkit_controller.controller.reconciler.context import Context, OperatorSettings
from buildkit_controller.controller.reconciler.handlers import build_registry
from buildkit_controller.controller.reconciler.kube import Kube
from buildkit_controller.core._loader import load_plugins
from buildkit_controller.core.settings import PluginSettings

__all__ = ["PEERING_NAME", "OperatorOptions", "kopf_settings", "run_operator"]

PEERING_NAME = "buildkit-controller"


@dataclass(frozen=True, kw_only=True)
class OperatorOptions:
    """How to reach the API server and whether to coordinate with other replicas."""

    server: str | None = None
    kubeconfig: str | None = None
    #: Without peering two replicas would both act; only tests and single-replica installs skip it.
    standalone: bool = False
    #: Higher wins; replicas with the same priority would all pause, so the default is random.
    priority: int | None = None
    #: Seconds after which a silent replica counts as gone.
    peering_lifetime: int = 60


def kopf_settings(options: OperatorOptions) -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.peering.lifetime = options.peering_lifetime
    # Our CRD schemas prune unknown status fields, so Kopf keeps its bookkeeping in annotations.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration")
    settings.posting.level = logging.WARNING  # our own Events describe every decision
    settings.watching.server_timeout = 300
    return settings


def _login(options: OperatorOptions) -> Any:
    async def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        if options.server:
            return kopf.ConnectionInfo(server=options.server)
        if options.kubeconfig is None:
            info = kopf.login_with_service_account(**kwargs)
            if info is not None:
                return info
        return kopf.login_with_kubeconfig(**kwargs)
    return login


async def _ensure_peering(kube: Kube) -> None:
    """Kopf only updates the peering object; it must exist (the CRD comes with ours)."""
    await kube.ensure({"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering",
                       "metadata": {"name": PEERING_NAME}})


async def run_operator(options: OperatorOptions, plugins: PluginSettings,
                       settings: OperatorSettings | None = None,
                       stop_flag: asyncio.Event | None = None,
                       ready_flag: asyncio.Event | None = None) -> None:
    """Run until ``stop_flag`` is set (or the process is signalled)."""
    host = load_plugins(plugins)
    kube = await Kube.connect(host=options.server, kubeconfig=options.kubeconfig)
    registry = build_registry()
    kopf.on.login(registry=registry)(_login(options))
    context = Context(kube=kube, host=host, settings=settings or OperatorSettings())
    try:
        if not options.standalone:
            await _ensure_peering(kube)
        await kopf.operator(
            registry=registry, settings=kopf_settings(options), memo=kopf.Memo(context=context),
            # Naming a peering makes it mandatory (the KopfPeering CRD must exist), so only when wanted.
            clusterwide=True, standalone=options.standalone,
            peering_name=None if options.standalone else PEERING_NAME,
            priority=options.priority if options.priority is not None else random.randint(1, 2**30),  # noqa: S311
            stop_flag=stop_flag, ready_flag=ready_flag)
    finally:
        await kube.close()
