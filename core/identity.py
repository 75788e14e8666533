"""Identity certificates: what ``POST /api/v1/certs/request`` issues and the ``mtls`` method accepts.

An identity certificate says *who* a caller is and *which pools* it may use, for a short time, so
that a CI job can authenticate to the API with mutual TLS instead of a bearer token. It is signed by
the API's own **identity CA**, never by a pool's tenant CA: no gateway trusts the identity CA, so an
identity certificate cannot even finish a TLS handshake with a gateway, and even if it could, the
gateway wants the ``buildkit://allocation/<id>`` URI SAN of a live allocation, which it does not have.

The template is the PKI's client template (``clientAuth`` only, 159-bit serial, backdated 60 s) with
URI SANs: exactly one ``buildkit://identity/<subject>`` (the subject percent-encoded) and one
``buildkit://pool/<namespace>/<name>`` per pool the certificate is limited to. The CN is a label.

The identity CA lives in one Secret (``ca.crt``, ``ca.key``, ``bundle.crt``) and rotates as the
pools' CAs do (:func:`~buildkit_controller.core.pki.plan_ca_rotation`): a next CA is staged into the
bundle at 2/3 of the current one's life and signs from 5/6 on; a CA stays in the bundle until it
expires.

This module also reads the *gateway* identity, ``buildkit://gateway/<namespace>/<pool>``, which the
operator puts in each gateway's worker-client certificate (see ``pool_certs``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote, unquote

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from buildkit_controller.core import pki
from buildkit_controller.core.errors import CertificateVerificationError, PKIError

__all__ = [
    "GATEWAY_URI_PREFIX",
    "IDENTITY_CA_LIFETIME",
    "IDENTITY_URI_PREFIX",
    "POOL_URI_PREFIX",
    "CertificateIdentity",
    "gateway_pool",
    "issue_identity_certificate",
    "plan_identity_ca",
    "read_identity",
    "verify_identity_certificate",
]

IDENTITY_URI_PREFIX = "buildkit://identity/"
POOL_URI_PREFIX = "buildkit://pool/"
GATEWAY_URI_PREFIX = "buildkit://gateway/"
IDENTITY_CA_LIFETIME = timedelta(days=365)
MAX_SUBJECT = 512
_MAX_CN = 64  # RFC 5280 ub-common-name
_NAME = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
_POOL = re.compile(rf"({_NAME})/({_NAME})")
_CN_UNSAFE = re.compile(r"[^A-Za-z0-9._:/@+=-]+")


@dataclass(frozen=True, kw_only=True)
class CertificateIdentity:
    """Who an identity certificate speaks for and the pools (``namespace/name``) it is limited to."""

    subject: str
    pools: tuple[str, ...]
    serial: str
    not_after: datetime


def _bad(message: str) -> CertificateVerificationError:
    return CertificateVerificationError(message, reason="bad-identity")


def issue_identity_certificate(ca: pki.CertificateAuthority, *, subject: str, pools: Sequence[str],
                               lifetime: timedelta, now: datetime | None = None,
                               public_key: CertificatePublicKeyTypes | None = None) -> pki.IssuedCertificate:
    """Issue an identity certificate for ``subject`` limited to ``pools`` (``namespace/name``)."""
    if not 0 < len(subject) <= MAX_SUBJECT:
        raise PKIError(f"an identity subject has 1 to {MAX_SUBJECT} characters")
    if not pools or not all(_POOL.fullmatch(p) for p in pools):
        raise PKIError("an identity certificate names one or more pools as namespace/name")
    uris = [IDENTITY_URI_PREFIX + quote(subject, safe=""), *(POOL_URI_PREFIX + p for p in pools)]
    label = _CN_UNSAFE.sub("_", subject)[:_MAX_CN]
    return pki.issue_client_certificate(ca, common_name=label or "identity", uris=uris, lifetime=lifetime,
                                        now=now, public_key=public_key)


def read_identity(certificate: x509.Certificate) -> CertificateIdentity:
    """The identity an (already verified) certificate carries; ``bad-identity`` if it is not one."""
    uris = pki.uri_sans(certificate)
    subjects = [u.removeprefix(IDENTITY_URI_PREFIX) for u in uris if u.startswith(IDENTITY_URI_PREFIX)]
    pools = tuple(u.removeprefix(POOL_URI_PREFIX) for u in uris if u.startswith(POOL_URI_PREFIX))
    if len(subjects) != 1 or not subjects[0] or len(subjects) + len(pools) != len(uris):
        raise _bad("not an identity certificate: expected one buildkit://identity/ URI SAN and pool URIs")
    if not pools or not all(_POOL.fullmatch(p) for p in pools):
        raise _bad("an identity certificate must name its pools as buildkit://pool/<namespace>/<name>")
    return CertificateIdentity(subject=unquote(subjects[0]), pools=pools,
                               serial=pki.serial_decimal(certificate), not_after=certificate.not_valid_after_utc)


def verify_identity_certificate(certificate: bytes | str, trust_bundle: bytes | str,
                                now: datetime | None = None) -> CertificateIdentity:
    """Verify a PEM client certificate against the identity CA bundle and read its identity.

    Raises CertificateVerificationError (``expired``, ``unknown-issuer``, ``wrong-usage``,
    ``bad-identity``, ...); the message never quotes the certificate.
    """
    try:
        leaf = pki.certificate_from_pem(certificate)
        bundle = pki.certificates_from_pem(trust_bundle) if trust_bundle else []
    except PKIError as exc:
        raise CertificateVerificationError(f"unreadable certificate: {exc}", reason="rejected") from None
    pki.verify_certificate(leaf, bundle, purpose=pki.Purpose.CLIENT, now=now)
    return read_identity(leaf)


def gateway_pool(certificate: x509.Certificate) -> tuple[str, str]:
    """``(namespace, pool)`` of a gateway's worker-client certificate; ``bad-identity`` otherwise.

    Only the identity is read here: the caller verifies the chain against that pool's worker CA.
    """
    uris = pki.uri_sans(certificate)
    if len(uris) != 1 or not uris[0].startswith(GATEWAY_URI_PREFIX):
        raise _bad("not a gateway certificate: expected exactly one buildkit://gateway/ URI SAN")
    match = _POOL.fullmatch(uris[0].removeprefix(GATEWAY_URI_PREFIX))
    if match is None:
        raise _bad("the gateway URI SAN does not name a pool as <namespace>/<name>")
    return match.group(1), match.group(2)


def plan_identity_ca(existing: Mapping[str, str], now: datetime, *,
                     lifetime: timedelta = IDENTITY_CA_LIFETIME) -> tuple[dict[str, str], str | None]:
    """The identity CA Secret's data now, and why it changed (``None``: unchanged).

    A Secret that exists but cannot be read raises PKIError: replacing it silently would cut off
    every identity certificate in use.
    """
    return pki.plan_ca_rotation(existing, "buildkit-controller identity CA", now, lifetime)
