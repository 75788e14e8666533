"""The aiohttp application and :class:`KubeSim`, the server object tests hold."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from . import auth, discovery
from .admin import admin_routes
from .admission import Admission
from .controllers import Controller, GarbageCollector, NamespaceController, PodTerminator, run_controllers
from .crds import register_crd_hook
from .errors import ApiError, NotFound, status_body
from .faults import Faults
from .handlers import Context, dispatch, json_response
from .ipam import AddressBlock
from .kubelet.images import ImageMap
from .kubelet.kubelet import Kubelet, KubeletConfig
from .podlogs import serve_log
from .routing import Target, parse_path
from .scale import serve_scale
from .services import EndpointsController, ServiceProxy
from .store import Store
from .tls import ServerPKI
from .tokens import TokenIssuer
from .workloads import DeploymentController, ReplicaSetController

__all__ = ["KubeSim"]

log = logging.getLogger(__name__)

_DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)  # type: ignore[no-any-return]
    except ApiError as exc:
        response = json_response(exc.body(), exc.code)
        response.headers.update(exc.headers)
        return response
    except web.HTTPException:
        raise
    except Exception as exc:  # a kubesim bug must still answer like an API server, and be visible
        log.exception("internal error on %s %s", request.method, request.path)
        return json_response(status_body(500, "InternalError", f"kubesim internal error: {exc!r}"), 500)


class KubeSim:
    """An in-memory Kubernetes API server on 127.0.0.1, over HTTP and (optionally) HTTPS.

    Use as ``async with KubeSim() as sim:`` and point clients at ``sim.url`` (or ``sim.https_url``
    with ``sim.ca_pem``). ``sim.store`` is the state, ``sim.faults`` the fault injection rules.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        https_port: int | None = 0,
        history: int = 10_000,
        strict_builtins: bool = True,
        bookmark_interval: float = 1.0,
        pod_grace_cap: float | None = 1.0,
        kubelet: bool = True,
        workloads: bool = True,
        images: ImageMap | Mapping[str, list[str] | str] | None = None,
        nodes: list[dict[str, Any]] | None = None,
        sync_period: float = 1.0,
        probe_period_cap: float | None = None,
    ) -> None:
        self.host, self.port, self.https_port = host, port, https_port
        self.store = Store(history=history)
        self.store.admission = Admission(strict_builtins=strict_builtins)
        register_crd_hook(self.store)
        self.faults = Faults()
        self.tokens = TokenIssuer()
        self.pki = ServerPKI.create() if https_port is not None else None
        self.ctx = Context(
            store=self.store,
            faults=self.faults,
            bookmark_interval=bookmark_interval,
            extra={"tokens": self.tokens},
        )
        self.block = AddressBlock()
        self.store.admission.allocate_cluster_ip = self.block.services.allocate
        self.images = images if isinstance(images, ImageMap) else ImageMap(images)
        self.workdir = Path(tempfile.mkdtemp(prefix="kubesim-"))
        gc = GarbageCollector(self.store)
        gc.orphaned = self.ctx.orphaned
        self.proxy = ServiceProxy(self.store, release=self.block.services.release)
        self.kubelet: Kubelet | None = None
        self.controllers: list[Controller] = [
            gc,
            NamespaceController(self.store, ca_pem=self.pki.ca_pem if self.pki else None),
        ]
        if workloads:
            self.controllers += [
                ReplicaSetController(self.store),
                DeploymentController(self.store),
                EndpointsController(self.store),
                self.proxy,
            ]
        if kubelet:
            self.kubelet = Kubelet(
                self.store,
                config=KubeletConfig(
                    workdir=self.workdir,
                    ca_pem=self.pki.ca_pem if self.pki else b"",
                    grace_cap=pod_grace_cap,
                    sync_period=sync_period,
                    probe_period_cap=probe_period_cap,
                    bin_dirs=[str(_tool_bin(self.workdir))],
                ),
                images=self.images,
                block=self.block,
                tokens=self.tokens,
                nodes=nodes,
            )
            self.controllers.append(self.kubelet)
        else:
            self.controllers.append(PodTerminator(self.store, grace_cap=pod_grace_cap or 1.0))
        self.url = ""
        self.https_url = ""
        self._runner: web.AppRunner | None = None
        self._controllers_task: asyncio.Task[None] | None = None

    @property
    def ca_pem(self) -> bytes:
        if self.pki is None:
            raise RuntimeError("HTTPS is disabled (https_port=None)")
        return self.pki.ca_pem

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> KubeSim:
        self._controllers_task = asyncio.create_task(run_controllers(self.controllers))
        await asyncio.sleep(0)  # let the controllers subscribe before the first objects appear
        ns_type = self.store.registry.get("", "v1", "namespaces")
        assert ns_type is not None
        for name in _DEFAULT_NAMESPACES:
            self.store.create(ns_type, "", {"metadata": {"name": name}})
        self._create_kubernetes_service()
        if self.kubelet is not None:
            self.kubelet.register_nodes()
        # handler_cancellation: a watch whose client disconnected ends now, not at its timeout.
        self._runner = web.AppRunner(self._app(), shutdown_timeout=2.0, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.url = f"http://{self.host}:{_bound_port(site)}"
        if self.pki is not None and self.https_port is not None:
            tls_site = web.TCPSite(self._runner, self.host, self.https_port, ssl_context=self.pki.server_context())
            await tls_site.start()
            self.https_url = f"https://{self.host}:{_bound_port(tls_site)}"
        if self.kubelet is not None:
            self.kubelet.config.api_port = int((self.https_url or self.url).rsplit(":", 1)[1])
        return self

    def _create_kubernetes_service(self) -> None:
        """The ``default/kubernetes`` Service every cluster has (10.96.0.1:443, the HTTPS port behind it)."""
        svc_type = self.store.registry.get("", "v1", "services")
        assert svc_type is not None
        spec = {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}
        self.store.create(
            svc_type,
            "default",
            {
                "metadata": {
                    "name": "kubernetes",
                    "labels": {"component": "apiserver", "provider": "kubernetes"},
                },
                "spec": spec,
            },
        )

    async def stop(self) -> None:
        if self.kubelet is not None:
            await self.kubelet.shutdown()
        self.proxy.close_all()
        self.drop_watches()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._controllers_task is not None:
            self._controllers_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._controllers_task
            self._controllers_task = None
        if self.kubelet is not None:
            await self.kubelet.shutdown()  # pods a controller started while we were stopping
        self.block.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    async def __aenter__(self) -> KubeSim:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- test controls ------------------------------------------------------------------------
    def drop_watches(self, resource: str | None = None) -> int:
        """End open watch streams (all, or those of one plural); clients see the stream close."""
        dropped = 0
        for sub in self.store.log.subscriptions():
            if sub.key is None:
                continue  # in-process controllers, not client watches
            if resource is None or sub.key.split("/", 1)[1] == resource:
                sub.close()
                dropped += 1
        return dropped

    def names(self) -> dict[str, str]:
        """The Service name table: ``<svc>.<ns>.svc[.cluster.local]`` → cluster IP."""
        return self.proxy.names()

    def resolve(self, name: str) -> str:
        """A Service's cluster IP by DNS name (``svc.ns.svc`` or ``svc.ns.svc.cluster.local``)."""
        try:
            return self.names()[name.rstrip(".")]
        except KeyError:
            raise KeyError(f"no Service named {name!r}") from None

    def expire_history(self) -> int:
        """Forget the event history: watches from any earlier resourceVersion now get 410 Gone."""
        rv = self.store.resource_version
        self.store.log.compact(rv)
        return rv

    def kubeconfig(self, *, https: bool = True, token: str | None = None) -> dict[str, Any]:
        """A kubeconfig for this server (HTTPS with the CA embedded when available)."""
        cluster: dict[str, Any] = {"server": self.url}
        if https and self.https_url:
            cluster = {
                "server": self.https_url,
                "certificate-authority-data": base64.b64encode(self.ca_pem).decode(),
            }
        # Any bearer token is accepted; one must be set or kubectl prompts for a password over HTTPS.
        user = {"token": token or "kubesim"}
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "kubesim",
            "clusters": [{"name": "kubesim", "cluster": cluster}],
            "users": [{"name": "kubesim", "user": user}],
            "contexts": [
                {
                    "name": "kubesim",
                    "context": {"cluster": "kubesim", "user": "kubesim", "namespace": "default"},
                }
            ],
        }

    def write_kubeconfig(self, path: str | Path, *, https: bool = True) -> Path:
        target = Path(path)
        target.write_text(yaml.safe_dump(self.kubeconfig(https=https)))
        target.chmod(0o600)
        return target

    # -- HTTP ---------------------------------------------------------------------------------
    def _app(self) -> web.Application:
        app = web.Application(middlewares=[_errors], client_max_size=8 * 1024 * 1024)
        app.add_routes(admin_routes(self))
        app.add_routes(
            [
                web.get("/version", self._version),
                web.get("/version/", self._version),
                web.get("/openapi/v3", self._openapi_root),
                web.get("/openapi/v3/{path:.*}", self._openapi_gv),
                web.get("/.well-known/openid-configuration", self._openid),
                web.get("/openid/v1/jwks", self._jwks),
                *[web.get(p, self._ok) for p in ("/healthz", "/livez", "/readyz")],
                web.route("*", "/{tail:.*}", self._api),
            ]
        )
        return app

    async def _version(self, _: web.Request) -> web.Response:
        return json_response(discovery.VERSION_INFO)

    async def _ok(self, _: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _openapi_root(self, _: web.Request) -> web.Response:
        return json_response(discovery.openapi_root(self.store.registry))

    async def _openapi_gv(self, request: web.Request) -> web.Response:
        parts = request.match_info["path"].strip("/").split("/")
        group, version = ("", parts[-1]) if parts[0] == "api" else (parts[1], parts[-1])
        doc = discovery.openapi_group_version(self.store.registry, group, version)
        if doc is None:
            raise NotFound("the server could not find the requested resource")
        return json_response(doc)

    async def _openid(self, request: web.Request) -> web.Response:
        return json_response(auth.openid_configuration(self.ctx, f"{request.scheme}://{request.host}"))

    async def _jwks(self, _: web.Request) -> web.Response:
        return json_response(self.tokens.jwks())

    async def _api(self, request: web.Request) -> web.StreamResponse:
        target = parse_path(request.path)
        if target is None:
            raise NotFound("the server could not find the requested resource")
        if not target.plural:
            return self._discovery(request, target)
        rtype = self.store.registry.get(target.group, target.version, target.plural)
        if rtype is None:
            raise NotFound("the server could not find the requested resource")
        if target.plural == "serviceaccounts" and target.subresource == "token" and request.method == "POST":
            await self.faults.apply("create", "serviceaccounts/token", target.namespace, target.name)
            return await auth.create_token(self.ctx, request, rtype, target.namespace, target.name)
        if target.plural == "pods" and target.subresource == "log" and request.method == "GET":
            await self.faults.apply("get", "pods/log", target.namespace, target.name)
            return await serve_log(
                store=self.store,
                kubelet=self.kubelet,
                request=request,
                rtype=rtype,
                namespace=target.namespace,
                name=target.name,
            )
        if target.subresource == "scale" and "scale" in rtype.subresources:
            return await serve_scale(self.ctx, request, rtype, target)
        if rtype.kind == "TokenReview" and request.method == "POST":
            await self.faults.apply("create", "tokenreviews", "", "")
            return await auth.review_token(self.ctx, request)
        return await dispatch(self.ctx, request, rtype, target)

    def _discovery(self, request: web.Request, target: Target) -> web.Response:
        registry = self.store.registry
        if target.legacy and not target.version:
            doc: dict[str, Any] | None = discovery.api_versions(request.host)
        elif not target.legacy and not target.group:
            doc = discovery.api_groups(registry)
        elif not target.version:
            doc = discovery.api_group(registry, target.group)
        else:
            doc = discovery.api_resources(registry, target.group, target.version)
        if doc is None:
            raise NotFound("the server could not find the requested resource")
        return json_response(doc)


def _tool_bin(workdir: Path) -> Path:
    """A directory with the ``buildctl`` stand-in, put on the PATH of every pod process."""
    directory = workdir / "bin"
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "buildctl"
    script.write_text(f'#!/bin/sh\nexec {sys.executable} -m kubesim.buildkitd.buildctl "$@"\n')
    script.chmod(0o755)
    return directory


def _bound_port(site: web.TCPSite) -> int:
    server = site._server  # aiohttp exposes the listening sockets only here
    assert server is not None
    return int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
