"""The allocation API as a Quart app: authenticate → authorize → act; JSON errors, never a traceback."""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import version
from typing import Any, TypeVar

from kubernetes_asyncio.client.exceptions import ApiException
from prometheus_client import CollectorRegistry, generate_latest
from quart import Quart, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from buildkit_controller.controller.api import certs
from buildkit_controller.controller.api.allocations import Allocator
from buildkit_controller.controller.api.errors import error_response
from buildkit_controller.controller.api.identity import IdentityAuthority, keep_trust_current
from buildkit_controller.controller.api.leases import find_by_id, find_by_token, owned_by, release, renew
from buildkit_controller.controller.api.metrics import ApiMetrics
from buildkit_controller.controller.api.schemas import (
    AllocationResponse,
    CacheHints,
    CertificateRequest,
    LeaseStatus,
    LookupRequest,
    PoolSummary,
    ReleaseRequest,
    RenewRequest,
    RenewResponse,
    openapi_document,
)
from buildkit_controller.controller.api.tls import ClientTrust, peer_chain
from buildkit_controller.controller.manifests.names import API_VERSION
from buildkit_controller.controller.reconciler.context import utcnow
from buildkit_controller.controller.reconciler.kube import Kube
from buildkit_controller.core._aio import first_answer, resolve_all
from buildkit_controller.core._loader import PluginHost
from buildkit_controller.core.allocation import new_allocation
from buildkit_controller.core.authz import authorize
from buildkit_controller.core.errors import AuthenticationError, AuthorizationError, NotFoundError, SpecError
from buildkit_controller.core.models import AllocationRequest, AuthDecision, AuthRequest, Identity, Pool, Worker
from buildkit_controller.core.models._base import _Model
from buildkit_controller.core.sizing import merge_profiles

__all__ = ["MAX_BODY", "ApiContext", "create_app"]

log = logging.getLogger(__name__)
MAX_BODY = 64 * 1024
M = TypeVar("M", bound=_Model)


@dataclass
class ApiContext:
    kube: Kube
    host: PluginHost
    allocator: Allocator
    audience: str = "buildkit-controller"
    clock: Callable[[], datetime] = utcnow
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    #: Signs identity certificates (its Secret lives in the API's namespace).
    identity: IdentityAuthority | None = None
    #: The TLS layer's client CAs, kept current while serving; ``None`` without TLS.
    trust: ClientTrust | None = None

    def __post_init__(self) -> None:
        if self.identity is None:
            self.identity = IdentityAuthority(self.kube, "buildkit-system", self.clock)
        self.metrics = ApiMetrics(self.registry)
        self.allocator.on_started = self.metrics.worker_started
        # The plugins are fixed for the process: merge their profiles once (a failure is not kept).
        self.allocator.profiles = functools.cache(lambda: merge_profiles(self.host.broadcast("bkc_sizing_profiles")))


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def _body(model: type[M]) -> M:
    raw = await request.get_data()
    try:
        data = json.loads(raw)  # bytes: JSON in UTF-8/16/32; anything else is a ValueError
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise SpecError("body", "must be a JSON object (Content-Type: application/json)")
    return model.parse(data, path="body")


class Routes:
    """Route bodies, with the context they share."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    async def identity(self) -> Identity:
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        bearer = credential.strip() if scheme.lower() == "bearer" else ""
        chain = peer_chain(request.scope)  # verified by the TLS layer; never from a header
        if not bearer and not chain:
            raise AuthenticationError("send 'Authorization: Bearer <token>' or a client certificate",
                                      reason="missing")
        auth = AuthRequest(bearer=bearer or None, audience=self.ctx.audience, remote_addr=request.remote_addr,
                           client_certificate=ssl.DER_cert_to_PEM_cert(chain[0]) if chain else None,
                           client_certificate_chain=chain)
        try:
            answer = await first_answer(self.ctx.host, "auth", "bkc_authenticate", request=auth)
        except AuthenticationError as exc:
            self.ctx.metrics.auth_failures.labels(exc.method or "unknown", exc.reason).inc()
            raise
        if answer is None:
            self.ctx.metrics.auth_failures.labels("none", "unrecognised").inc()
            raise AuthenticationError("no enabled auth method accepts this credential", reason="unrecognised")
        return answer[1]  # type: ignore[no-any-return]

    async def pool(self, namespace: str, name: str) -> Pool:
        body = await self.ctx.kube.get(API_VERSION, "BuildKitPool", name, namespace)
        if body is None:
            raise NotFoundError(f"pool {namespace}/{name} not found")
        return Pool.from_body(body)

    async def decide(self, identity: Identity, pool: Pool, action: str) -> AuthDecision:
        """The pool's rules and every auth plugin's vote (deny wins)."""
        votes = await resolve_all(self.ctx.host.pm.hook.bkc_authorize(identity=identity, pool=pool,
                                                                       action=action))
        return authorize(identity, pool, action, [v for v in votes if v is not None])

    async def require(self, identity: Identity, pool: Pool, action: str) -> None:
        decision = await self.decide(identity, pool, action)
        if not decision.allowed:
            raise AuthorizationError(decision.reason)

    def cache_hints(self, pool: Pool) -> CacheHints:
        hints = CacheHints()
        for backend in pool.spec.cache.backends:
            options = self.ctx.host.call("cache", backend.type, "bkc_cache_client_options",
                                         backend=backend, pool=pool)
            if options is not None:
                hints.cache_from += options.cache_from
                hints.cache_to += options.cache_to
        return hints

    async def allocate(self) -> Response:
        identity = await self.identity()
        wanted = await _body(AllocationRequest)
        pool = await self.pool(wanted.namespace, wanted.pool_name)
        await self.require(identity, pool, "allocate")
        made = new_allocation(identity=identity, gateway=pool.spec.gateway, now=self.ctx.clock(),
                              ttl=wanted.ttl, job_id=wanted.job_id, metadata=wanted.metadata)
        with self.ctx.metrics.observe_allocation(pool) as outcome:
            credentials = await self.ctx.allocator.allocate(pool, made, wanted)
            outcome.append("success")
        answer = AllocationResponse(
            worker_name=credentials.worker, token=made.token, allocation_id=made.record.id,
            endpoint=pool.endpoint, gateway_endpoint=pool.endpoint, expires_at=_stamp(made.record.expires_at),
            ca_cert=_b64(credentials.ca_bundle), client_cert=_b64(credentials.certificate),
            client_key=_b64(credentials.private_key) if credentials.private_key else None,
            cache=self.cache_hints(pool), size=credentials.size)
        return jsonify(answer.model_dump(by_alias=True, exclude_none=True))

    async def lease(self, identity: Identity, token: str | None, allocation_id: str | None
                    ) -> tuple[dict[str, Any], Worker]:
        if token:
            return await find_by_token(self.ctx.kube, token)
        body, worker = await find_by_id(self.ctx.kube, allocation_id or "")
        if not owned_by(worker, identity):
            raise NotFoundError("no such allocation")
        return body, worker

    async def release(self) -> Response:
        identity = await self.identity()
        wanted = await _body(ReleaseRequest)
        _, worker = await self.lease(identity, wanted.token, wanted.allocation_id)
        await release(self.ctx.kube, worker)
        assert worker.allocation is not None
        return jsonify({"released": worker.allocation.id, "workerName": worker.name})

    async def renew(self) -> Response:
        identity = await self.identity()
        wanted = await _body(RenewRequest)
        body, worker = await self.lease(identity, wanted.token, wanted.allocation_id)
        pool = await self.pool(worker.pool_ref.namespace or worker.namespace, worker.pool_ref.name)
        expires = await renew(self.ctx.kube, body, worker, pool, now=self.ctx.clock(), ttl=wanted.ttl)
        assert worker.allocation is not None
        answer = RenewResponse(allocation_id=worker.allocation.id, expires_at=_stamp(expires))
        return jsonify(answer.model_dump(by_alias=True))

    async def status(self, allocation_id: str) -> Response:
        identity = await self.identity()
        body, worker = await self.lease(identity, None, allocation_id)
        pool = await self.pool(worker.pool_ref.namespace or worker.namespace, worker.pool_ref.name)
        assert worker.allocation is not None
        conditions = {c.get("type"): c.get("status") for c in (body.get("status") or {}).get("conditions") or []}
        answer = LeaseStatus(
            allocation_id=worker.allocation.id, worker_name=worker.name, pool_name=pool.name,
            namespace=pool.namespace, phase=worker.phase.value, job_id=worker.allocation.job_id,
            subject=worker.allocation.subject, expires_at=_stamp(worker.allocation.expires_at),
            gateway_endpoint=pool.endpoint, ready=conditions.get("Ready") == "True")
        return jsonify(answer.model_dump(by_alias=True))

    @staticmethod
    def summary(body: dict[str, Any]) -> dict[str, Any]:
        pool, status = Pool.from_body(body), body.get("status") or {}
        return PoolSummary(name=pool.name, namespace=pool.namespace, phase=status.get("phase", "Pending"),
                           endpoint=pool.endpoint, workers=status.get("workers") or {}).model_dump(by_alias=True)

    async def pools(self) -> Response:
        identity = await self.identity()
        mine = []
        for body in await self.ctx.kube.list(API_VERSION, "BuildKitPool", None):
            try:
                if (await self.decide(identity, Pool.from_body(body), "list")).allowed:
                    mine.append(self.summary(body))
            except SpecError:  # an invalid pool is nobody's to use
                continue
        return jsonify({"pools": mine})

    async def one_pool(self, namespace: str, name: str) -> Response:
        identity = await self.identity()
        body = await self.ctx.kube.get(API_VERSION, "BuildKitPool", name, namespace)
        if body is None:
            raise NotFoundError(f"pool {namespace}/{name} not found")
        await self.require(identity, Pool.from_body(body), "status")
        return jsonify(self.summary(body))

    async def certificates(self) -> Response:
        identity = await self.identity()
        return await certs.request_certificate(self, identity, await _body(CertificateRequest))

    async def lookup(self) -> Response:
        gateway = await certs.calling_gateway(self)
        return await certs.lookup(self, gateway, await _body(LookupRequest))

    async def ready(self) -> Response:
        try:
            await self.ctx.kube.request("GET", "/version")
        except (ApiException, OSError) as exc:
            log.warning("not ready: the API server is unreachable: %s", exc)
            return error_response(503, "not_ready", "the Kubernetes API server is unreachable")
        return jsonify({"status": "ok"})


def create_app(ctx: ApiContext) -> Quart:
    """The app; serve it with hypercorn (``buildkit-controller api``)."""
    app = Quart("buildkit_controller.api")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    routes = Routes(ctx)
    document = openapi_document(version("buildkit-controller"))

    async def healthy() -> Response:
        return jsonify({"status": "ok"})

    async def openapi() -> Response:
        return jsonify(document)

    async def metrics() -> Response:
        return Response(generate_latest(ctx.registry), content_type="text/plain; version=0.0.4")

    for rule, view, methods in [
        ("/api/v1/health", healthy, ["GET"]), ("/healthz", healthy, ["GET"]), ("/readyz", routes.ready, ["GET"]),
        ("/api/v1/openapi.json", openapi, ["GET"]), ("/metrics", metrics, ["GET"]),
        ("/api/v1/workers/allocate", routes.allocate, ["POST"]),
        ("/api/v1/workers/release", routes.release, ["POST"]),
        ("/api/v1/workers/renew", routes.renew, ["POST"]),
        ("/api/v1/workers/lookup", routes.lookup, ["POST"]),
        ("/api/v1/certs/request", routes.certificates, ["POST"]),
        # Ids are 32 characters, so the route can never swallow /workers/allocate and friends.
        ("/api/v1/workers/<string(length=32):allocation_id>", routes.status, ["GET"]),
        ("/api/v1/pools", routes.pools, ["GET"]),
        ("/api/v1/pools/<namespace>/<name>", routes.one_pool, ["GET"]),
    ]:
        # No automatic OPTIONS: an undeclared method gets 405 with an Allow header.
        app.add_url_rule(rule, view_func=view, methods=methods, endpoint=rule, provide_automatic_options=False)
    app.register_error_handler(Exception, _on_error)

    refresher: list[asyncio.Task[None]] = []

    @app.before_serving
    async def start_worker_gauge() -> None:
        refresher.append(asyncio.create_task(_refresh_workers(ctx)))
        if ctx.trust is not None and ctx.identity is not None:
            refresher.append(asyncio.create_task(keep_trust_current(ctx.trust, ctx.identity, ctx.kube)))

    @app.after_serving
    async def stop_worker_gauge() -> None:  # a plain task: shutdown need not wait for it
        for task in refresher:
            task.cancel()

    return app


async def _refresh_workers(ctx: ApiContext, every: float = 15.0) -> None:
    """Keep ``buildkit_workers{pool,phase}`` current (one list per interval, not per scrape)."""
    while True:
        try:
            ctx.metrics.count_workers(await ctx.kube.list(API_VERSION, "BuildKitWorker", None))
        except (ApiException, OSError) as exc:
            log.warning("could not count workers for metrics: %s", exc)
        await asyncio.sleep(every)


async def _on_error(exc: Exception) -> Response:
    from buildkit_controller.controller.api.errors import map_error  # noqa: PLC0415 - avoids a cycle

    if isinstance(exc, HTTPException):
        response = error_response(exc.code or 500, (exc.name or "error").lower().replace(" ", "_"),
                                  exc.description or "")
        for name, value in exc.get_headers():
            if name.lower() != "content-type":  # e.g. Allow on a 405
                response.headers[name] = value
        return response
    return map_error(exc)
