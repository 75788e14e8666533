"""``POST /api/v1/certs/request`` (identity certificates) and ``POST /api/v1/workers/lookup``
(gateways only), on top of :class:`~buildkit_controller.controller.api.app.Routes`.

Identity certificates are signed by the API's identity CA, limited to the requested pools (each must
accept the ``mtls`` method) and live at most the smallest ``gateway.maxTokenTTL`` among them and
never beyond the requesting credential's own expiry (``Identity.expires_at``); they are returned
once and never stored.
The lookup answers only a caller whose verified TLS client certificate is a pool gateway's
worker-client certificate (``buildkit://gateway/<namespace>/<pool>``, signed by that pool's worker
CA as the operator publishes it in the ``worker-ca.crt`` key of the pool's ``<pool>-config``
ConfigMap), and only about tokens of that same pool. A bearer token is never enough.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from cryptography import x509
from quart import Response, jsonify, request

from buildkit_controller.controller.api.identity import pool_worker_ca
from buildkit_controller.controller.api.leases import UNKNOWN, find_by_token
from buildkit_controller.controller.api.schemas import (
    CertificateRequest,
    CertificateResponse,
    LookupRequest,
    LookupResponse,
)
from buildkit_controller.controller.api.tls import peer_chain
from buildkit_controller.controller.manifests.names import API_VERSION
from buildkit_controller.core import pki
from buildkit_controller.core.authz import method_enabled
from buildkit_controller.core.errors import (
    AuthenticationError,
    AuthorizationError,
    CertificateVerificationError,
    NotFoundError,
    PKIError,
    SpecError,
)
from buildkit_controller.core.identity import gateway_pool, issue_identity_certificate
from buildkit_controller.core.models import Identity, Pool

if TYPE_CHECKING:
    from buildkit_controller.controller.api.app import Routes

__all__ = ["calling_gateway", "certificate_lifetime", "lookup", "request_certificate"]


def certificate_lifetime(pools: list[Pool], duration: timedelta | None, *, now: datetime | None = None,
                         until: datetime | None = None) -> timedelta:
    """``duration`` (default: the smallest tokenTTL), capped at the pools' smallest maxTokenTTL and,
    given ``until`` (when the requesting credential expires), at ``until - now``."""
    cap = min(p.spec.gateway.max_token_ttl for p in pools)
    wanted = min(duration or min(p.spec.gateway.token_ttl for p in pools), cap)
    if until is None or now is None:
        return wanted
    if until <= now:
        raise AuthenticationError("the credential has expired", reason="expired")
    return min(wanted, until - now)


def _accepting_certificates(pool: Pool) -> Pool:
    if not method_enabled("mtls", pool):
        raise AuthorizationError(f"pool {pool.namespace}/{pool.name} does not accept identity certificates "
                                 "(its auth.methods do not list mtls)")
    return pool


async def _pool_named(routes: Routes, ref: str) -> Pool:
    """``namespace/name`` exactly, or a bare ``name`` that must be unique across namespaces."""
    if "/" in ref:
        namespace, name = ref.split("/", 1)
        return await routes.pool(namespace, name)
    found = [b for b in await routes.ctx.kube.list(API_VERSION, "BuildKitPool", None)
             if b["metadata"]["name"] == ref]
    if not found:
        raise NotFoundError(f"pool {ref} not found")
    if len(found) > 1:
        raise SpecError("body.pools", f"{ref} names pools in several namespaces; write namespace/name")
    return Pool.from_body(found[0])


async def request_certificate(routes: Routes, identity: Identity, wanted: CertificateRequest) -> Response:
    if wanted.csr:
        pki.load_csr(wanted.csr)  # a bad CSR is a 400 before anything else happens
    pools = [await _pool_named(routes, ref) for ref in wanted.pools]
    for pool in pools:
        await routes.require(identity, _accepting_certificates(pool), "certs")
    authority = routes.ctx.identity
    assert authority is not None  # ApiContext always makes one
    ca = await authority.current()
    names = sorted({f"{p.namespace}/{p.name}" for p in pools})
    now = routes.ctx.clock()
    lifetime = certificate_lifetime(pools, wanted.duration, now=now, until=identity.expires_at)
    public_key = pki.load_csr(wanted.csr).public_key() if wanted.csr else None
    issued = issue_identity_certificate(ca, subject=identity.subject, pools=names, lifetime=lifetime,
                                        now=now, public_key=public_key)
    answer = CertificateResponse(
        ca_cert=authority.bundle().decode(), client_cert=issued.certificate_pem.decode(),
        client_key=issued.private_key_pem.decode() if issued.private_key_pem else None,
        endpoints={ref: p.endpoint for ref, p in zip(wanted.pools, pools, strict=True) if p.endpoint},
        subject=identity.subject, pools=names,
        expires_at=issued.certificate.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"))
    response = jsonify(answer.model_dump(by_alias=True, exclude_none=True))
    response.headers["Cache-Control"] = "no-store"  # it may carry a private key
    return response


async def calling_gateway(routes: Routes) -> tuple[str, str]:
    """``(namespace, pool)`` of the calling gateway, from its verified client certificate."""
    chain = peer_chain(request.scope)
    if not chain:
        raise AuthenticationError("only a pool's gateway may look up tokens: present its client certificate",
                                  method="gateway", reason="missing")
    leaf = x509.load_der_x509_certificate(chain[0])
    try:
        namespace, name = gateway_pool(leaf)
    except CertificateVerificationError:
        raise AuthorizationError("only a pool's gateway may look up tokens") from None
    published = await pool_worker_ca(routes.ctx.kube, namespace, name)
    try:
        bundle = pki.certificates_from_pem(published) if published.strip() else []
        pki.verify_certificate(leaf, bundle, purpose=pki.Purpose.CLIENT, now=routes.ctx.clock())
    except PKIError as exc:
        reason = exc.reason if isinstance(exc, CertificateVerificationError) else "unknown-issuer"
        raise AuthenticationError(f"gateway certificate refused ({reason})", method="gateway",
                                  reason=reason) from None
    return namespace, name


async def lookup(routes: Routes, gateway: tuple[str, str], wanted: LookupRequest) -> Response:
    """The worker serving ``wanted.token``, for the gateway of the token's own pool only; 404 also
    while that worker has no endpoint (the gateway retries, as for any miss)."""
    namespace, name = gateway
    _, worker = await find_by_token(routes.ctx.kube, wanted.token)
    pool_namespace = worker.pool_ref.namespace or worker.namespace
    expired = worker.allocation is None or worker.allocation.expired(routes.ctx.clock())
    if expired or (pool_namespace, worker.pool_ref.name) != (namespace, name):
        raise NotFoundError(UNKNOWN)  # another pool's token looks exactly like an unknown one
    if not worker.status.endpoint:  # its pod is not (or no longer) running: nothing to connect to
        raise NotFoundError("the worker serving this token has no endpoint yet; retry shortly")
    answer = LookupResponse(worker_endpoint=worker.status.endpoint, worker_name=worker.name,
                            pool_name=worker.pool_ref.name)
    return jsonify(answer.model_dump(by_alias=True))
