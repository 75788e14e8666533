"""``BuildKitOIDCConfig``: a trusted OIDC issuer (e.g. GitHub Actions) and how its claims map."""

from __future__ import annotations

from pydantic import Field, field_validator

from buildkit_controller.core.models._base import Timestamp, _Model
from buildkit_controller.core.models.status import Condition

__all__ = ["ClaimsMapping", "OIDCConfigSpec", "OIDCConfigStatus"]


class ClaimsMapping(_Model):
    #: The claim that becomes the identity's subject (what RBAC ``users`` patterns match).
    user: str = "sub"
    #: A claim holding pool names or patterns the token may use (optional).
    pools: str | None = None


class OIDCConfigSpec(_Model):
    issuer: str
    audience: str
    enabled: bool = True
    claims_mapping: ClaimsMapping = Field(default_factory=ClaimsMapping)
    #: Extra claims that must equal these values (e.g. ``repository_owner: my-org``).
    required_claims: dict[str, str] = Field(default_factory=dict)
    #: Accepted signing algorithms; never ``none``.
    algorithms: tuple[str, ...] = ("RS256", "ES256")

    @field_validator("issuer")
    @classmethod
    def _https(cls, value: str) -> str:
        if not value.startswith("https://"):
            raise ValueError("must be an https:// URL")
        return value.rstrip("/")

    @field_validator("algorithms")
    @classmethod
    def _no_none(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or any(a.lower() == "none" for a in value):
            raise ValueError("must list signing algorithms and never 'none'")
        return value


class OIDCConfigStatus(_Model):
    ready: bool = False
    message: str | None = None
    conditions: tuple[Condition, ...] = ()
    last_refresh_time: Timestamp | None = None
