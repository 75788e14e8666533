"""``serviceaccount`` auth: Kubernetes ServiceAccount tokens, checked by a TokenReview.

The token must be a bound token minted for this API's audience (a projected token with
``audience: buildkit-controller``); the API server, not us, says whether it is valid, unexpired and
for that audience. Anything that is not a Kubernetes-issued JWT is left to other methods.

Once the TokenReview accepted the token, its ``exp`` claim (then known to be the API server's own)
becomes ``Identity.expires_at``, so that an identity certificate minted with it expires no later.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from buildkit_controller.core import hookimpl
from buildkit_controller.core.errors import AuthenticationError, ConfigError
from buildkit_controller.core.models import AuthRequest, Identity, Runtime

__all__ = ["ServiceAccountAuth"]

JWT_PARTS = 3  # header.payload.signature


def _claims(token: str) -> Mapping[str, Any] | None:
    """The unverified payload of a JWT, only to tell whose token it is; ``None`` if not a JWT."""
    parts = token.split(".")
    if len(parts) != JWT_PARTS:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    return payload if isinstance(payload, dict) else None


def _expiry(claims: Mapping[str, Any]) -> datetime | None:
    """The ``exp`` claim of a token the API server accepted, as an aware datetime; ``None`` if absent."""
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    try:
        return datetime.fromtimestamp(exp, UTC)
    except (OverflowError, OSError, ValueError):
        return None


class ServiceAccountAuth:
    """The built-in ``serviceaccount`` auth method."""

    def __init__(self) -> None:
        self._runtime: Runtime | None = None

    @hookimpl
    def bkc_configure(self, runtime: Runtime) -> None:
        self._runtime = runtime

    @hookimpl
    async def bkc_authenticate(self, request: AuthRequest) -> Identity | None:
        claims = _claims(request.bearer or "")
        if claims is None or "kubernetes.io" not in claims:
            return None  # not a Kubernetes-issued token
        if self._runtime is None or self._runtime.kube is None:
            raise ConfigError("the serviceaccount auth method needs Kubernetes access in this process")
        review = await self._runtime.kube.token_review(request.bearer or "", [request.audience])
        if not review.get("authenticated"):
            raise AuthenticationError("the ServiceAccount token was not accepted by the API server",
                                      method="serviceaccount", reason="rejected")
        if request.audience not in (review.get("audiences") or []):
            raise AuthenticationError("the ServiceAccount token is for another audience",
                                      method="serviceaccount", reason="audience")
        user = review.get("user") or {}
        return Identity(subject=str(user.get("username", "")), method="serviceaccount",
                        groups=tuple(user.get("groups") or ()), claims={"uid": user.get("uid")},
                        expires_at=_expiry(claims))
