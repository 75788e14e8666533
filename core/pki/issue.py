"""Making certificates: CAs, the three kinds of leaf, and allocation certificates from CSRs.

Every leaf comes from :func:`_issue`, the one fixed template described in the package docstring;
a CSR contributes only its public key.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import NameOID

from buildkit_controller.core.errors import PKIError
from buildkit_controller.core.pki._values import (
    BACKDATE,
    EC_CURVES,
    EKU,
    MAX_CA_LIFETIME,
    MAX_CN,
    AllocationIdentity,
    CertificateAuthority,
    IssuedCertificate,
    Purpose,
    utc,
)
from buildkit_controller.core.pki.pem import as_bytes, certificate_from_pem, private_key_from_pem

__all__ = [
    "create_ca",
    "issue_allocation_certificate",
    "issue_client_certificate",
    "issue_server_certificate",
    "load_ca",
    "load_csr",
    "sign_csr",
]

_MAX_CSR_BYTES = 64 * 1024  # refused unparsed: no honest CSR comes near
_RSA_BITS = range(2048, 8193)
_IPAddressLike = str | ipaddress.IPv4Address | ipaddress.IPv6Address


def create_ca(
    common_name: str, *, lifetime: dt.timedelta, now: dt.datetime | None = None
) -> CertificateAuthority:
    """Create a self-signed ECDSA P-256 CA that may sign leaves only (``path_length=0``)."""
    now = utc(now)
    _check_lifetime(lifetime, MAX_CA_LIFETIME)
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return CertificateAuthority(certificate=builder.sign(key, hashes.SHA256()), private_key=key)


def load_ca(certificate_pem: bytes | str, private_key_pem: bytes | str) -> CertificateAuthority:
    """Load a CA from its Secret; PKIError unless it is a CA certificate with its own EC key."""
    key = private_key_from_pem(private_key_pem)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PKIError("a CA key must be ECDSA P-256 or P-384")
    return CertificateAuthority(certificate=certificate_from_pem(certificate_pem), private_key=key)


def issue_server_certificate(
    ca: CertificateAuthority,
    *,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[_IPAddressLike] = (),
    lifetime: dt.timedelta,
    now: dt.datetime | None = None,
    public_key: CertificatePublicKeyTypes | None = None,
) -> IssuedCertificate:
    """Issue a ``serverAuth`` certificate for DNS names and IP addresses (at least one in all).

    Without ``public_key`` a P-256 key is generated and returned with the certificate. The CN is
    the first name, as some older clients still display it.
    """
    sans = _dns_sans(dns_names) + _ip_sans(ip_addresses)
    if not sans:
        raise PKIError("a server certificate needs at least one DNS name or IP address")
    subject = _name(str(sans[0].value)[:MAX_CN])
    return _issue(ca, public_key, subject, sans, Purpose.SERVER, lifetime=lifetime, now=now)


def issue_client_certificate(
    ca: CertificateAuthority,
    *,
    common_name: str,
    uris: Sequence[str],
    lifetime: dt.timedelta,
    now: dt.datetime | None = None,
    public_key: CertificatePublicKeyTypes | None = None,
) -> IssuedCertificate:
    """Issue a ``clientAuth`` certificate whose identity is its URI SANs (at least one).

    A SAN is required because verifiers (ours, SPIFFE's) read the identity there, not in the CN.
    """
    if not uris:
        raise PKIError("a client certificate needs at least one URI SAN")
    sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri) for uri in uris]
    subject = _name(common_name)
    return _issue(ca, public_key, subject, sans, Purpose.CLIENT, lifetime=lifetime, now=now)


def issue_allocation_certificate(
    ca: CertificateAuthority,
    identity: AllocationIdentity,
    *,
    lifetime: dt.timedelta,
    now: dt.datetime | None = None,
    public_key: CertificatePublicKeyTypes | None = None,
) -> IssuedCertificate:
    """Issue the client certificate of one allocation, signed by the pool's tenant CA.

    The identity is the single URI SAN ``buildkit://allocation/<id>``; the CN is only a label.
    """
    subject = _name(identity.common_name)
    sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(identity.uri)]
    return _issue(ca, public_key, subject, sans, Purpose.CLIENT, lifetime=lifetime, now=now)


def load_csr(csr_pem: bytes | str) -> x509.CertificateSigningRequest:
    """Parse a PEM PKCS#10 CSR and check its self-signature and key type.

    Only the public key is ever used from a CSR: its subject and requested extensions are ignored.
    """
    data = as_bytes(csr_pem)
    if len(data) > _MAX_CSR_BYTES:
        raise PKIError(f"the CSR is larger than {_MAX_CSR_BYTES} bytes")
    try:
        csr = x509.load_pem_x509_csr(data)
        valid, public_key = csr.is_signature_valid, csr.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise PKIError(f"not a usable PEM PKCS#10 certificate signing request: {exc}") from exc
    if not valid:
        raise PKIError("the CSR signature is invalid: it was not signed by the key it contains")
    _check_leaf_key(public_key)
    return csr


def sign_csr(
    ca: CertificateAuthority,
    csr_pem: bytes | str,
    identity: AllocationIdentity,
    *,
    lifetime: dt.timedelta,
    now: dt.datetime | None = None,
) -> IssuedCertificate:
    """Issue an allocation certificate for the key in a client's CSR; the key stays with the client."""
    public_key = load_csr(csr_pem).public_key()
    return issue_allocation_certificate(ca, identity, lifetime=lifetime, now=now, public_key=public_key)


def _issue(
    ca: CertificateAuthority,
    public_key: CertificatePublicKeyTypes | None,
    subject: x509.Name,
    sans: list[x509.GeneralName],
    purpose: Purpose,
    *,
    lifetime: dt.timedelta,
    now: dt.datetime | None,
) -> IssuedCertificate:
    """Sign the one leaf template, generating a P-256 key unless one is given.

    The validity never leaves the CA's: ``NotBefore`` is not before the CA's and ``NotAfter`` is
    capped at the CA's, as cert-manager does, so a leaf never outlives its issuer.
    """
    now, ca_cert = utc(now), ca.certificate
    _check_ca_usable(ca_cert, now)
    _check_lifetime(lifetime, None)
    private_key = None
    if public_key is None:
        private_key = ec.generate_private_key(ec.SECP256R1())
        public_key = private_key.public_key()
    _check_leaf_key(public_key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(max(now - BACKDATE, ca_cert.not_valid_before_utc))
        .not_valid_after(min(now + lifetime, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([EKU[purpose]]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(_authority_key_id(ca), critical=False)
    )
    certificate = builder.sign(ca.private_key, _hash_for(ca.private_key))
    return IssuedCertificate(certificate=certificate, private_key=private_key)


def _authority_key_id(ca: CertificateAuthority) -> x509.AuthorityKeyIdentifier:
    """AKI copied from the CA's SKI, so chain builders match it even for CAs made by other tools."""
    try:
        ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.private_key.public_key())
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _key_usage(*, digital_signature: bool = False, key_cert_sign: bool = False) -> x509.KeyUsage:
    """A KeyUsage with only the named bits: CAs sign certificates and CRLs, leaves only sign."""
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=key_cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _hash_for(key: ec.EllipticCurvePrivateKey) -> hashes.SHA256 | hashes.SHA384:
    """SHA-384 for P-384 CAs, SHA-256 otherwise: the hash matches the curve's strength."""
    return hashes.SHA384() if key.curve.key_size > 256 else hashes.SHA256()


def _check_leaf_key(public_key: CertificatePublicKeyTypes) -> None:
    """Refuse keys weaker or odder than ECDSA P-256/P-384, Ed25519 or RSA 2048-8192."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        ok, kind = public_key.curve.name in EC_CURVES, f"EC {public_key.curve.name}"
    elif isinstance(public_key, rsa.RSAPublicKey):
        ok, kind = public_key.key_size in _RSA_BITS, f"RSA-{public_key.key_size}"
    else:
        ok, kind = isinstance(public_key, ed25519.Ed25519PublicKey), type(public_key).__name__
    if not ok:
        raise PKIError(f"unsupported key {kind}: use ECDSA P-256/P-384, Ed25519 or RSA of 2048+ bits")


def _check_ca_usable(ca_cert: x509.Certificate, now: dt.datetime) -> None:
    """Refuse to sign with a CA outside its validity: the leaf would never verify."""
    not_before, not_after = ca_cert.not_valid_before_utc, ca_cert.not_valid_after_utc
    if not not_before <= now < not_after:
        name = ca_cert.subject.rfc4514_string()
        raise PKIError(f"the CA {name!r} is valid only from {not_before} to {not_after}; rotate it")


def _check_lifetime(lifetime: dt.timedelta, maximum: dt.timedelta | None) -> None:
    """Lifetimes are positive and, for CAs, bounded."""
    if lifetime <= dt.timedelta(0):
        raise PKIError(f"a certificate lifetime must be positive, not {lifetime}")
    if maximum is not None and lifetime > maximum:
        raise PKIError(f"a CA lifetime of {lifetime} exceeds the maximum of {maximum}")


def _dns_sans(names: Sequence[str]) -> list[x509.GeneralName]:
    """DNS SANs; cryptography wants A-labels, so a Unicode name is a caller error (PKIError)."""
    try:
        return [x509.DNSName(name) for name in names]
    except ValueError as exc:
        raise PKIError(f"invalid DNS name: {exc}") from exc


def _ip_sans(addresses: Sequence[_IPAddressLike]) -> list[x509.GeneralName]:
    """IP SANs from strings or address objects."""
    try:
        return [x509.IPAddress(ipaddress.ip_address(address)) for address in addresses]
    except ValueError as exc:
        raise PKIError(f"invalid IP address: {exc}") from exc


def _name(common_name: str) -> x509.Name:
    """A subject holding just a CN; an over-long or empty CN is a PKIError, not a ValueError."""
    try:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    except (ValueError, UnicodeError) as exc:
        raise PKIError(f"invalid common name: {exc}") from exc
