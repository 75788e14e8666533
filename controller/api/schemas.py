"""Request and response bodies of the allocation API (seed field names) and its OpenAPI document."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import models_json_schema

from buildkit_controller.core.models import AllocationRequest
from buildkit_controller.core.models._base import Duration, _Model

__all__ = ["AllocationResponse", "ErrorBody", "LeaseStatus", "PoolSummary", "ReleaseRequest",
           "RenewRequest", "RenewResponse", "openapi_document"]


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
        auth: bool = True) -> dict[str, Any]:
    def ref(model: type[BaseModel]) -> dict[str, Any]:
        return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}
    responses: dict[str, Any] = {"200": {"description": "OK", **(ref(answer) if answer else {})}}
    for code in codes:
        responses[str(code)] = {"description": "error", **ref(ErrorBody)}
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        operation["requestBody"] = {"required": True, **ref(body)}
    if auth:
        operation["security"] = [{"bearer": []}]
    return operation


def openapi_document(version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 description of every route (published as docs/openapi.json)."""
    models = [AllocationRequest, ReleaseRequest, RenewRequest, AllocationResponse, RenewResponse,
              LeaseStatus, PoolSummary, ErrorBody]
    _, schemas = models_json_schema([(m, "validation") for m in models],
                                    ref_template="#/components/schemas/{model}", by_alias=True)
    health = {"get": _op("Liveness", None, None, auth=False)}
    return {
        "openapi": "3.1.0",
        "info": {"title": "buildkit-controller allocation API", "version": version},
        "components": {"schemas": schemas.get("$defs", {}),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": {
            "/api/v1/health": health, "/healthz": health,
            "/readyz": {"get": _op("Readiness", None, None, 503, auth=False)},
            "/api/v1/workers/allocate": {"post": _op("Allocate a worker", AllocationRequest, AllocationResponse,
                                                     400, 401, 403, 404, 413, 503)},
            "/api/v1/workers/release": {"post": _op("Release an allocation", ReleaseRequest, None,
                                                    400, 401, 403, 404, 413)},
            "/api/v1/workers/renew": {"post": _op("Extend an allocation", RenewRequest, RenewResponse,
                                                  400, 401, 403, 404, 413)},
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
