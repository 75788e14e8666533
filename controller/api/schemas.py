"""Request and response bodies of the allocation API (seed field names) and its OpenAPI document."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import models_json_schema

from buildkit_controller.core.models import AllocationRequest
from buildkit_controller.core.models._base import Duration, _Model

__all__ = ["AllocationResponse", "CertificateRequest", "CertificateResponse", "ErrorBody", "LeaseStatus",
           "LookupRequest", "LookupResponse", "PoolSummary", "ReleaseRequest", "RenewRequest", "RenewResponse",
           "openapi_document"]

_POOL_REF = r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?/)?[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
MIN_CERT_DURATION = timedelta(minutes=1)


class _Out(BaseModel):
    model_config = ConfigDict(populate_by_name=True, alias_generator=to_camel)


class _ByTokenOrId(_Model):
    model_config = ConfigDict(json_schema_extra={"anyOf": [{"required": ["token"]}, {"required": ["allocationId"]}]})

    token: str | None = Field(default=None, min_length=1, max_length=256)
    allocation_id: str | None = Field(default=None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _one(self) -> _ByTokenOrId:
        if not self.token and not self.allocation_id:
            raise ValueError("give the allocation's token or its allocationId")
        return self


class ReleaseRequest(_ByTokenOrId):
    """``POST /api/v1/workers/release``: the token (or, for its owner, the allocation id)."""


class RenewRequest(_ByTokenOrId):
    """``POST /api/v1/workers/renew``: extend the lease by ``ttl`` (default: the pool's tokenTTL)."""

    ttl: Duration | None = None


class CertificateRequest(_Model):
    """``POST /api/v1/certs/request``: an identity certificate for these pools (``name`` or
    ``namespace/name``), valid for ``duration`` (default: the pools' smallest tokenTTL; capped at
    their smallest maxTokenTTL). With ``csr`` the server signs the client's key and returns none."""

    pools: list[Annotated[str, StringConstraints(pattern=_POOL_REF, max_length=127)]] = Field(
        min_length=1, max_length=16)
    duration: Duration | None = None
    #: 4096 characters hold an RSA-8192 CSR, and even fully \u-escaped stay under the 64 KiB body limit.
    csr: str | None = Field(default=None, max_length=4096)

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < MIN_CERT_DURATION:
            raise ValueError("must be at least 1m")
        return value


class LookupRequest(_Model):
    """``POST /api/v1/workers/lookup`` (a pool's gateway only): which worker serves this token."""

    token: str = Field(min_length=1, max_length=256)


class CacheHints(_Out):
    cache_from: list[str] = Field(default_factory=list, alias="from")
    cache_to: list[str] = Field(default_factory=list, alias="to")


class AllocationResponse(_Out):
    """PEMs are base64-encoded, as the seed's API returned them."""

    worker_name: str
    token: str
    allocation_id: str
    endpoint: str
    gateway_endpoint: str
    expires_at: str
    ca_cert: str
    client_cert: str
    client_key: str | None = None
    cache: CacheHints = Field(default_factory=CacheHints)
    #: The worker's size profile (absent when the pool sets explicit resources).
    size: str | None = None


class CertificateResponse(_Out):
    """PEMs are plain text here, not base64: the seed's ``/certs/request`` returned them so."""

    ca_cert: str
    client_cert: str
    client_key: str | None = None
    #: Requested pool (as written in the request) → its gateway endpoint.
    endpoints: dict[str, str] = Field(default_factory=dict)
    subject: str
    pools: list[str]
    expires_at: str


class LookupResponse(_Out):
    #: ``tcp://<pod IP>:1234``; a worker that has none yet is answered 404, never an empty endpoint.
    worker_endpoint: str = Field(min_length=1, description="tcp://<pod IP>:1234 (a worker without an "
                                 "endpoint yet is answered 404)")
    worker_name: str
    pool_name: str


class RenewResponse(_Out):
    allocation_id: str
    expires_at: str


class LeaseStatus(_Out):
    allocation_id: str
    worker_name: str
    pool_name: str
    namespace: str
    phase: str
    job_id: str
    subject: str
    expires_at: str
    gateway_endpoint: str
    ready: bool


class PoolSummary(_Out):
    name: str
    namespace: str
    phase: str
    endpoint: str
    workers: dict[str, int] = Field(default_factory=dict)


class ErrorBody(_Out):
    error: str
    message: str


def _op(summary: str, body: type[BaseModel] | None, answer: type[BaseModel] | None, *codes: int,
        auth: bool = True, security: list[dict[str, list[str]]] | None = None) -> dict[str, Any]:
    def ref(model: type[BaseModel]) -> dict[str, Any]:
        return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}
    responses: dict[str, Any] = {"200": {"description": "OK", **(ref(answer) if answer else {})}}
    for code in codes:
        responses[str(code)] = {"description": "error", **ref(ErrorBody)}
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        operation["requestBody"] = {"required": True, **ref(body)}
    if auth:
        operation["security"] = security or [{"bearer": []}, {"mtls": []}]
    return operation


def openapi_document(version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 description of every route (published as docs/openapi.json)."""
    models = [AllocationRequest, ReleaseRequest, RenewRequest, AllocationResponse, RenewResponse,
              LeaseStatus, PoolSummary, CertificateRequest, CertificateResponse, LookupRequest, LookupResponse,
              ErrorBody]
    _, schemas = models_json_schema([(m, "validation") for m in models],
                                    ref_template="#/components/schemas/{model}", by_alias=True)
    health = {"get": _op("Liveness", None, None, auth=False)}
    return {
        "openapi": "3.1.0",
        "info": {"title": "buildkit-controller allocation API", "version": version},
        "components": {"schemas": schemas.get("$defs", {}),
                       "securitySchemes": {
                           "bearer": {"type": "http", "scheme": "bearer"},
                           "mtls": {"type": "mutualTLS", "description": "an identity certificate from "
                                    "/api/v1/certs/request (lookup: a pool gateway's worker-client certificate)"}}},
        "paths": {
            "/api/v1/health": health, "/healthz": health,
            "/readyz": {"get": _op("Readiness", None, None, 503, auth=False)},
            "/api/v1/workers/allocate": {"post": _op("Allocate a worker", AllocationRequest, AllocationResponse,
                                                     400, 401, 403, 404, 413, 503)},
            "/api/v1/workers/release": {"post": _op("Release an allocation", ReleaseRequest, None,
                                                    400, 401, 403, 404, 413)},
            "/api/v1/workers/renew": {"post": _op("Extend an allocation", RenewRequest, RenewResponse,
                                                  400, 401, 403, 404, 413)},
            "/api/v1/workers/lookup": {"post": _op(
                "Which worker serves a token (a pool's gateway only)", LookupRequest, LookupResponse,
                400, 401, 403, 404, 413, security=[{"mtls": []}])},
            "/api/v1/certs/request": {"post": _op(
                "Issue an identity certificate", CertificateRequest, CertificateResponse, 400, 401, 403, 404, 413,
                security=[{"bearer": []}])},
            "/api/v1/workers/{allocationId}": {"get": {**_op("Allocation status", None, LeaseStatus, 401, 404),
                                                       "parameters": [_allocation_id()]}},
            "/api/v1/pools": {"get": _op("Pools the caller may use", None, None, 401)},
            "/api/v1/pools/{namespace}/{name}": {"get": {**_op("One pool", None, PoolSummary, 401, 403, 404),
                                                         "parameters": [_path("namespace"), _path("name")]}},
        },
    }


def _allocation_id() -> dict[str, Any]:
    schema = {"type": "string", "pattern": "^[a-z2-7]{32}$", "minLength": 32, "maxLength": 32}
    return {"name": "allocationId", "in": "path", "required": True, "schema": schema}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "maxLength": 253}}
