"""Checking certificates: chain, validity, usage and identity; trust bundles; renewal times.

Every CertificateVerificationError raised here carries a stable ``reason`` label (``expired``,
``not-yet-valid``, ``wrong-usage``, ``unknown-issuer``, ``bad-identity``, ``rejected``) for metrics
and logs; the human message still starts with the same words.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from buildkit_controller.core.errors import CertificateVerificationError, PKIError
from buildkit_controller.core.pki._values import ALLOCATION_URI_PREFIX, EKU, Purpose, is_ca, utc
from buildkit_controller.core.pki.pem import as_bytes, certificate_to_pem, certificates_from_pem
from buildkit_controller.core.tokens import is_valid_allocation_id

__all__ = [
    "allocation_id_from_certificate",
    "merge_trust_bundle",
    "needs_renewal",
    "renewal_time",
    "uri_sans",
    "verify_certificate",
]


def verify_certificate(
    certificate: x509.Certificate,
    trust_bundle: Sequence[x509.Certificate],
    *,
    purpose: Purpose,
    now: dt.datetime | None = None,
    server_name: str | None = None,
) -> list[x509.Certificate]:
    """Verify a leaf for ``purpose`` against any CA of ``trust_bundle``; return the chain.

    Raises CertificateVerificationError whose ``reason`` is ``expired``, ``not-yet-valid``,
    ``wrong-usage``, ``unknown-issuer`` or ``rejected``; its message starts with the same words
    (``not yet valid``, ``wrong usage``, ...). A server certificate is checked against
    ``server_name`` (DNS name or IP), by default its own first DNS or IP SAN.
    """
    now = utc(now)
    _check_validity(certificate, now)
    _check_usage(certificate, purpose)
    if not trust_bundle:
        raise CertificateVerificationError(
            "unknown issuer: the trust bundle is empty", reason="unknown-issuer"
        )
    # The verifier gets an explicit time: left alone it reads the OS clock, which tests cannot pin.
    builder = PolicyBuilder().store(Store(list(trust_bundle))).time(now)
    try:
        if purpose is Purpose.CLIENT:
            return builder.build_client_verifier().verify(certificate, []).chain
        verifier = builder.build_server_verifier(_server_subject(certificate, server_name))
        return verifier.verify(certificate, [])
    except VerificationError as exc:
        raise _verifier_failure(certificate, trust_bundle, exc) from exc


def allocation_id_from_certificate(certificate: x509.Certificate) -> str:
    """Return the allocation id of an allocation certificate, read from its URI SAN.

    The certificate must carry exactly one URI SAN and it must name a valid allocation; anything
    else is ambiguous about who is connecting, so it raises CertificateVerificationError
    (``reason="bad-identity"``).
    """
    uris = uri_sans(certificate)
    if len(uris) != 1:
        raise CertificateVerificationError(
            f"expected exactly one URI SAN, found {len(uris)}", reason="bad-identity"
        )
    allocation_id = uris[0].removeprefix(ALLOCATION_URI_PREFIX)
    if allocation_id == uris[0] or not is_valid_allocation_id(allocation_id):
        raise CertificateVerificationError(
            f"the URI SAN {uris[0][:80]!r} names no valid allocation", reason="bad-identity"
        )
    return allocation_id


def uri_sans(certificate: x509.Certificate) -> list[str]:
    """The certificate's URI SANs, in order; none when it has no SAN extension."""
    return [str(san.value) for san in _sans(certificate) if isinstance(san, x509.UniformResourceIdentifier)]


def merge_trust_bundle(*bundles: bytes | str, now: dt.datetime | None = None) -> bytes:
    """Merge CA PEM bundles (empty ones allowed) into one, dropping expired and duplicate CAs.

    During a rotation the old CA stays trusted until it expires, so certificates it signed keep
    working while the new CA takes over. Raises PKIError for a non-CA certificate or when no CA
    is left, because an empty trust bundle would silently lock everyone out.
    """
    now = utc(now)
    kept: dict[bytes, x509.Certificate] = {}
    for cert in (cert for pem in bundles if as_bytes(pem).strip() for cert in certificates_from_pem(pem)):
        if not is_ca(cert):
            raise PKIError(f"{cert.subject.rfc4514_string()!r} in a trust bundle is not a CA")
        if cert.not_valid_after_utc >= now:
            kept.setdefault(cert.fingerprint(hashes.SHA256()), cert)
    if not kept:
        raise PKIError("the trust bundle would be empty: every CA in it has expired")
    return b"".join(certificate_to_pem(cert) for cert in kept.values())


def renewal_time(certificate: x509.Certificate, rotate_before_expiry: dt.timedelta) -> dt.datetime:
    """Return when to renew: ``rotate_before_expiry`` before NotAfter, or at 2/3 of the lifetime.

    The 2/3 point (renew with a third left, as cert-manager does) applies when the lifetime is
    shorter than three times ``rotate_before_expiry``, or that is not positive, so that a short
    certificate is not due for renewal the moment it is issued.
    """
    not_before, not_after = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    lifetime = not_after - not_before
    before = rotate_before_expiry
    if before <= dt.timedelta(0) or lifetime < 3 * before:
        before = lifetime / 3
    return min(not_after, max(not_before, not_after - before))


def needs_renewal(
    certificate: x509.Certificate, *, rotate_before_expiry: dt.timedelta, now: dt.datetime | None = None
) -> bool:
    """Tell whether ``certificate`` has reached its :func:`renewal_time`."""
    return utc(now) >= renewal_time(certificate, rotate_before_expiry)


def _check_validity(certificate: x509.Certificate, now: dt.datetime) -> None:
    """Name a validity failure precisely; the verifier's own message does not say which end."""
    if now > certificate.not_valid_after_utc:
        raise CertificateVerificationError(
            f"expired: the certificate expired at {certificate.not_valid_after_utc}", reason="expired"
        )
    if now < certificate.not_valid_before_utc:
        raise CertificateVerificationError(
            f"not yet valid: valid from {certificate.not_valid_before_utc}", reason="not-yet-valid"
        )


def _check_usage(certificate: x509.Certificate, purpose: Purpose) -> None:
    """A server certificate must not authenticate a client, nor the other way round."""
    try:
        usages = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = x509.ExtendedKeyUsage([])
    if EKU[purpose] not in usages:
        raise CertificateVerificationError(
            f"wrong usage: the certificate is not for {purpose} authentication", reason="wrong-usage"
        )


def _verifier_failure(
    certificate: x509.Certificate, bundle: Sequence[x509.Certificate], exc: VerificationError
) -> CertificateVerificationError:
    """Turn a verifier failure into a reason: no CA in the bundle signed it, or something else."""
    if not any(_directly_issued_by(certificate, ca) for ca in bundle):
        issuer = certificate.issuer.rfc4514_string()
        return CertificateVerificationError(
            f"unknown issuer: no CA in the trust bundle signed this certificate (issuer {issuer!r})",
            reason="unknown-issuer",
        )
    return CertificateVerificationError(f"rejected: {exc}", reason="rejected")


def _directly_issued_by(certificate: x509.Certificate, ca: x509.Certificate) -> bool:
    """True when ``ca``'s name and key match the certificate's issuer and signature."""
    try:
        certificate.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _server_subject(certificate: x509.Certificate, server_name: str | None) -> x509.DNSName | x509.IPAddress:
    """The name a server certificate is checked against; by default its own first DNS or IP SAN."""
    if server_name is not None:
        try:
            return x509.IPAddress(ipaddress.ip_address(server_name))
        except ValueError:
            if not server_name.isascii():
                raise PKIError(f"server name {server_name[:80]!r} must be an ASCII A-label") from None
            return x509.DNSName(server_name)
    for general_name in _sans(certificate):
        if isinstance(general_name, x509.DNSName | x509.IPAddress):
            return general_name
    raise CertificateVerificationError(
        "rejected: the server certificate has no DNS or IP SAN", reason="rejected"
    )


def _sans(certificate: x509.Certificate) -> list[x509.GeneralName]:
    """The certificate's SANs; none when the extension is missing."""
    try:
        return list(certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return []
