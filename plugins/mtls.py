"""``mtls`` auth: identity certificates from ``POST /api/v1/certs/request``, presented over TLS.

The API's TLS listener has already verified the client certificate against the CAs it trusts; this
method accepts only certificates of the API's *identity CA* (``Runtime.identity_ca``), verifies them
again (chain, validity, ``clientAuth``) and reads the identity: the subject from the one
``buildkit://identity/<subject>`` URI SAN, the pools it is limited to from the
``buildkit://pool/<namespace>/<name>`` SANs. Without a client certificate it abstains; any other
certificate (expired, another CA, a gateway's) is rejected with 401.

An identity certificate cannot be used to request another one (``certs`` action): otherwise a
certificate could renew itself forever and its lifetime cap would mean nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from buildkit_controller.core import hookimpl
from buildkit_controller.core.errors import AuthenticationError, CertificateVerificationError
from buildkit_controller.core.identity import verify_identity_certificate
from buildkit_controller.core.models import AuthDecision, AuthRequest, Identity, Pool, Runtime

__all__ = ["MutualTLSAuth"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class MutualTLSAuth:
    """The built-in ``mtls`` auth method."""

    def __init__(self, clock: Callable[[], datetime] = _utcnow) -> None:
        self._trust: Callable[[], bytes] | None = None
        self._clock = clock

    @hookimpl
    def bkc_configure(self, runtime: Runtime) -> None:
        self._trust = runtime.identity_ca

    @hookimpl
    def bkc_authenticate(self, request: AuthRequest) -> Identity | None:
        if not request.client_certificate:
            return None
        bundle = self._trust() if self._trust is not None else b""
        try:
            found = verify_identity_certificate(request.client_certificate, bundle, now=self._clock())
        except CertificateVerificationError as exc:
            raise AuthenticationError(f"client certificate refused ({exc.reason})", method="mtls",
                                      reason=exc.reason) from None
        return Identity(subject=found.subject, method="mtls", pools=found.pools, expires_at=found.not_after,
                        claims={"serial": found.serial, "notAfter": found.not_after.isoformat()})

    @hookimpl
    def bkc_authorize(self, identity: Identity, pool: Pool, action: str) -> AuthDecision | None:
        if identity.method == "mtls" and action == "certs":
            return AuthDecision(allowed=False, source="mtls",
                                reason="an identity certificate cannot request identity certificates")
        return None
