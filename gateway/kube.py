"""The gateway's only API traffic: one list+watch of the pool's workers, and throttled status patches.

The watch keeps :class:`.cache.WorkerCache` current: list (cache in sync), watch from the list's
resourceVersion with bookmarks, re-watch from the last seen version when a watch ends, relist on
410 Gone. When the API stays unreachable for ``stale_after`` seconds the cache is marked out of
sync and every new connection is refused (fail closed), because a release could go unseen.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

from buildkit_controller.gateway.cache import WorkerCache
from buildkit_controller.gateway.config import KubeAccess

__all__ = ["GROUP", "PLURAL", "POOL_LABEL", "VERSION", "WorkerStatusClient", "WorkerWatch",
           "api_client"]

log = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "buildkit.smrt-devops.net", "v1alpha1", "buildkitworkers"
POOL_LABEL = "buildkit.smrt-devops.net/pool"
_WATCH_SECONDS = 300  # the server ends each watch after this; we resume from the last version
_RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0)


async def api_client(access: KubeAccess) -> client.ApiClient:
    """An API client from ``--server``, ``--kubeconfig`` or the pod's ServiceAccount."""
    configuration = client.Configuration()
    if access.server:
        configuration.host = access.server
    elif access.kubeconfig:
        await config.load_kube_config(config_file=str(access.kubeconfig),
                                      client_configuration=configuration)
    else:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return client.ApiClient(configuration)


class WorkerWatch:
    """Feeds ``cache`` from a list+watch of one pool's BuildKitWorkers in one namespace."""

    def __init__(self, api: client.ApiClient, *, namespace: str, pool: str, cache: WorkerCache,
                 stale_after: float) -> None:
        self._objects = client.CustomObjectsApi(api)
        self._namespace, self._selector = namespace, f"{POOL_LABEL}={pool}"
        self._cache, self._stale_after = cache, stale_after

    async def run(self) -> None:
        """List and watch until cancelled; errors are retried, never raised."""
        failing_since: float | None = None
        failures = 0
        while True:
            try:
                version = await self._list()
                failing_since, failures = None, 0
                await self._watch(version)
            except asyncio.CancelledError:
                raise
            except ApiException as exc:
                if exc.status != 410:  # 410: our version is too old; relisting is the cure
                    log.warning("worker watch failed: %s %s", exc.status, exc.reason)
                    failures += 1
            except Exception as exc:
                log.warning("worker watch failed: %s", exc or type(exc).__name__)
                failures += 1
            if failures:
                failing_since = failing_since or time.monotonic()
                if self._cache.synced and time.monotonic() - failing_since >= self._stale_after:
                    log.error("worker cache out of sync for %.0fs: refusing connections",
                              self._stale_after)
                    self._cache.synced = False
                await asyncio.sleep(_RETRY_DELAYS[min(failures, len(_RETRY_DELAYS)) - 1])

    async def _list(self) -> str:
        listing = await self._objects.list_namespaced_custom_object(
            GROUP, VERSION, self._namespace, PLURAL, label_selector=self._selector)
        self._cache.replace(listing.get("items") or [])
        return str((listing.get("metadata") or {}).get("resourceVersion", ""))

    async def _watch(self, version: str) -> None:
        """Watch from ``version``, resuming from the last seen version whenever a watch ends."""
        while True:
            stream = watch.Watch()
            async with stream:
                async for event in stream.stream(
                        self._objects.list_namespaced_custom_object, GROUP, VERSION,
                        self._namespace, PLURAL, label_selector=self._selector,
                        resource_version=version, allow_watch_bookmarks=True,
                        timeout_seconds=_WATCH_SECONDS):
                    if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                        self._cache.apply(event["type"], event["raw_object"])
            version = stream.resource_version or version


class WorkerStatusClient:
    """Merge patches on ``buildkitworkers/<name>/status``."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self._objects = client.CustomObjectsApi(api)
        self._namespace = namespace

    async def patch(self, worker: str, status: Mapping[str, Any]) -> bool:
        """Patch; False when the worker is gone (404), other API errors raise ApiException."""
        try:
            await self._objects.patch_namespaced_custom_object_status(
                GROUP, VERSION, self._namespace, PLURAL, worker, {"status": dict(status)},
                # Accepted at runtime but not in the type hints; JSON patch would be the default.
                _content_type="application/merge-patch+json")  # type: ignore[call-arg]
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True
