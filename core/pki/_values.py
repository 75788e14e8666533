"""The package's values: constants, :class:`Purpose`, the CA/leaf/identity dataclasses.

Also the two small helpers every other module needs, :func:`utc` and :func:`is_ca`. Names without
a leading underscore here are shared inside the package; ``__init__`` re-exports the public ones.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from buildkit_controller.core.errors import PKIError
from buildkit_controller.core.pki.pem import certificate_to_pem, private_key_to_pem
from buildkit_controller.core.tokens import is_valid_allocation_id

#: How far ``NotBefore`` is set in the past, so a peer whose clock is a little behind accepts it.
BACKDATE = dt.timedelta(seconds=60)
#: Longest CA validity accepted: a CA key must be rotated, and a bound makes that happen.
MAX_CA_LIFETIME = dt.timedelta(days=3650)
#: The one URI SAN of an allocation certificate is this prefix followed by the allocation id.
ALLOCATION_URI_PREFIX = "buildkit://allocation/"

MAX_CN = 64  # RFC 5280 ub-common-name; cryptography counts it in UTF-8 bytes and refuses more
EC_CURVES = frozenset({"secp256r1", "secp384r1"})
# CNs are labels for humans and logs: printable ASCII only, so no byte limit or terminal trick
# applies whatever pool, namespace or job names users pick.
_CN_UNSAFE = re.compile(r"[^A-Za-z0-9._:/@+=-]+")


class Purpose(enum.StrEnum):
    """What a leaf certificate is for; each maps to exactly one extended key usage."""

    CLIENT = "client"
    SERVER = "server"


EKU = {Purpose.CLIENT: ExtendedKeyUsageOID.CLIENT_AUTH, Purpose.SERVER: ExtendedKeyUsageOID.SERVER_AUTH}


@dataclass(frozen=True, kw_only=True, slots=True)
class CertificateAuthority:
    """A CA certificate with its signing key (ECDSA P-256 or P-384)."""

    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey = field(repr=False)

    def __post_init__(self) -> None:
        # Checked once here so that no code path can sign with a leaf's key or a mismatched pair.
        key = self.private_key
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name not in EC_CURVES:
            raise PKIError("a CA key must be ECDSA P-256 or P-384")
        if key.public_key() != self.certificate.public_key():
            raise PKIError("the CA key does not match the CA certificate")
        if not is_ca(self.certificate):
            raise PKIError(f"{self.certificate.subject.rfc4514_string()!r} is not a CA certificate")

    @property
    def certificate_pem(self) -> bytes:
        """The CA certificate as PEM, for trust bundles."""
        return certificate_to_pem(self.certificate)

    @property
    def private_key_pem(self) -> bytes:
        """The CA key as unencrypted PKCS#8 PEM; it belongs only in the pool's CA Secret."""
        return private_key_to_pem(self.private_key)


@dataclass(frozen=True, kw_only=True, slots=True)
class IssuedCertificate:
    """A freshly issued leaf; ``private_key`` is None when the holder made the key (CSR flow)."""

    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey | None = field(default=None, repr=False)

    @property
    def certificate_pem(self) -> bytes:
        """The leaf certificate as PEM."""
        return certificate_to_pem(self.certificate)

    @property
    def private_key_pem(self) -> bytes | None:
        """The generated key as PKCS#8 PEM, handed to the holder once and never stored."""
        return None if self.private_key is None else private_key_to_pem(self.private_key)


@dataclass(frozen=True, kw_only=True, slots=True)
class AllocationIdentity:
    """Whom an allocation certificate speaks for. Only ``allocation_id`` is authoritative."""

    allocation_id: str
    pool: str
    namespace: str
    job_id: str = ""

    def __post_init__(self) -> None:
        if not is_valid_allocation_id(self.allocation_id):
            raise PKIError(f"invalid allocation id {str(self.allocation_id)[:40]!r}")

    @property
    def uri(self) -> str:
        """The certificate's one URI SAN, ``buildkit://allocation/<id>``."""
        return ALLOCATION_URI_PREFIX + self.allocation_id

    @property
    def common_name(self) -> str:
        """The CN label ``<namespace>/<pool>/<job>``: printable ASCII, at most 64 characters."""
        label = "/".join(part for part in (self.namespace, self.pool, self.job_id) if part)
        return _CN_UNSAFE.sub("_", label)[:MAX_CN] or "allocation"


def is_ca(certificate: x509.Certificate) -> bool:
    """True when the certificate's BasicConstraints say it is a CA."""
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def utc(now: dt.datetime | None) -> dt.datetime:
    """The current time, or ``now`` in UTC; a naive datetime is a programming error."""
    if now is None:
        return dt.datetime.now(dt.UTC)
    if now.tzinfo is None:
        raise ValueError("pass an aware datetime (UTC), not a naive one")
    return now.astimezone(dt.UTC)
