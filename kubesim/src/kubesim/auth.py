"""The TokenRequest (``serviceaccounts/NAME/token``) and TokenReview APIs, and OIDC discovery."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from .errors import BadRequest
from .handlers import Context, json_response, read_body
from .resources import ResourceType
from .store import now
from .tokens import TokenIssuer

__all__ = ["create_token", "openid_configuration", "review_token"]


def _issuer(ctx: Context) -> TokenIssuer:
    return ctx.extra["tokens"]  # type: ignore[no-any-return]


async def create_token(
    ctx: Context, request: web.Request, sa_type: ResourceType, namespace: str, name: str
) -> web.Response:
    account = ctx.store.get(sa_type, namespace, name)
    body = await read_body(request) or {}
    spec = body.get("spec") or {}
    audiences = spec.get("audiences") or _issuer(ctx).api_audiences
    seconds = int(spec.get("expirationSeconds") or 3600)
    token, expires = _issuer(ctx).issue(
        namespace=namespace,
        name=name,
        uid=account["metadata"]["uid"],
        audiences=audiences,
        expiration_seconds=seconds,
    )
    stamp = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json_response(
        {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": now()},
            "spec": {
                "audiences": audiences,
                "expirationSeconds": seconds,
                "boundObjectRef": spec.get("boundObjectRef"),
            },
            "status": {"token": token, "expirationTimestamp": stamp},
        },
        201,
    )


def _review_status(ctx: Context, spec: dict[str, Any]) -> dict[str, Any]:
    user = _issuer(ctx).verify(spec.get("token") or "", spec.get("audiences") or None)
    sa_type = ctx.store.registry.get("", "v1", "serviceaccounts")
    account = ctx.store.find(sa_type, user.namespace, user.name) if user and sa_type else None
    if user is None or account is None or account["metadata"]["uid"] != user.uid:
        return {
            "authenticated": False,
            "user": {},
            "error": "[invalid bearer token, service account token "
            "has been invalidated or is not valid for the requested audiences]",
        }
    return {
        "authenticated": True,
        "audiences": user.audiences,
        "user": {
            "username": user.username,
            "uid": user.uid,
            "groups": user.groups,
            "extra": {"authentication.kubernetes.io/credential-id": ["JTI=kubesim"]},
        },
    }


async def review_token(ctx: Context, request: web.Request) -> web.Response:
    body = await read_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("spec"), dict):
        raise BadRequest("TokenReview needs a spec")
    return json_response(
        {
            "kind": "TokenReview",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": body["spec"],
            "status": _review_status(ctx, body["spec"]),
        },
        201,
    )


def openid_configuration(ctx: Context, base_url: str) -> dict[str, Any]:
    return {
        "issuer": _issuer(ctx).issuer,
        "jwks_uri": f"{base_url}/openid/v1/jwks",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
    }
