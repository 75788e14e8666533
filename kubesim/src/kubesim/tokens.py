"""ServiceAccount tokens: the TokenRequest API issues ES256 JWTs; TokenReview verifies them.

Tokens carry the claims a real server puts in bound tokens (``kubernetes.io`` with the
ServiceAccount's name and uid), so a review also fails once the ServiceAccount is deleted or
recreated under a new uid.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from joserfc import errors as jose_errors
from joserfc import jwt
from joserfc.jwk import ECKey

__all__ = ["DEFAULT_AUDIENCE", "TokenIssuer", "TokenUser"]

DEFAULT_AUDIENCE = "https://kubernetes.default.svc.cluster.local"


@dataclass(frozen=True, kw_only=True)
class TokenUser:
    """Who a verified token belongs to."""

    namespace: str
    name: str
    uid: str
    audiences: list[str]

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}"

    @property
    def groups(self) -> list[str]:
        return ["system:serviceaccounts", f"system:serviceaccounts:{self.namespace}", "system:authenticated"]


class TokenIssuer:
    """Signs and verifies ServiceAccount JWTs with one per-server EC key."""

    def __init__(
        self, issuer: str = DEFAULT_AUDIENCE, audiences: tuple[str, ...] = (DEFAULT_AUDIENCE,)
    ) -> None:
        self.issuer = issuer
        self.api_audiences = list(audiences)
        self._key = ECKey.generate_key("P-256")
        self.kid = self._key.thumbprint()

    def jwks(self) -> dict[str, Any]:
        """The public key set (what ``/openid/v1/jwks`` serves)."""
        return {"keys": [{**self._key.as_dict(private=False), "kid": self.kid, "use": "sig", "alg": "ES256"}]}

    def issue(
        self,
        *,
        namespace: str,
        name: str,
        uid: str,
        audiences: list[str] | None = None,
        expiration_seconds: int = 3600,
    ) -> tuple[str, int]:
        """A token and its expiry (unix seconds)."""
        issued = int(time.time())
        expires = issued + max(expiration_seconds, 600)
        claims = {
            "iss": self.issuer,
            "sub": f"system:serviceaccount:{namespace}:{name}",
            "aud": audiences or self.api_audiences,
            "iat": issued,
            "nbf": issued,
            "exp": expires,
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}},
        }
        return jwt.encode({"alg": "ES256", "kid": self.kid}, claims, self._key), expires

    def verify(self, token: str, audiences: list[str] | None = None) -> TokenUser | None:
        """The token's user if it is ours, unexpired and meant for one of ``audiences``; else None."""
        wanted = audiences or self.api_audiences
        try:
            decoded = jwt.decode(token, self._key, algorithms=["ES256"])
            jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": self.issuer}, exp={"essential": True}
            ).validate(decoded.claims)
        except (jose_errors.JoseError, ValueError):
            return None
        claims = decoded.claims
        token_aud = claims.get("aud") or []
        token_aud = [token_aud] if isinstance(token_aud, str) else token_aud
        matched = [aud for aud in wanted if aud in token_aud]
        info = claims.get("kubernetes.io") or {}
        account = info.get("serviceaccount") or {}
        if not matched or not account.get("name"):
            return None
        return TokenUser(
            namespace=info.get("namespace", ""),
            name=account["name"],
            uid=account.get("uid", ""),
            audiences=matched,
        )
