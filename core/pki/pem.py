"""PEM encoding and decoding of certificates and keys, fingerprints and serial numbers.

The bottom of the package: it imports nothing else from it, so every other module may use it.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from buildkit_controller.core.errors import PKIError

__all__ = [
    "certificate_from_pem",
    "certificate_to_pem",
    "certificates_from_pem",
    "fingerprint_sha256",
    "private_key_from_pem",
    "private_key_to_pem",
    "serial_decimal",
    "serial_hex",
]


def certificate_to_pem(certificate: x509.Certificate) -> bytes:
    """Encode a certificate as PEM."""
    return certificate.public_bytes(serialization.Encoding.PEM)


def certificates_from_pem(data: bytes | str) -> list[x509.Certificate]:
    """Parse every certificate of a PEM bundle; PKIError when there is none or one is broken."""
    try:
        return x509.load_pem_x509_certificates(as_bytes(data))
    except ValueError as exc:
        raise PKIError(f"not a PEM certificate bundle: {exc}") from exc


def certificate_from_pem(data: bytes | str) -> x509.Certificate:
    """Parse exactly one PEM certificate."""
    certificates = certificates_from_pem(data)
    if len(certificates) != 1:
        raise PKIError(f"expected one PEM certificate, found {len(certificates)}")
    return certificates[0]


def private_key_to_pem(private_key: PrivateKeyTypes) -> bytes:
    """Encode a private key as unencrypted PKCS#8 PEM, which buildkitd and Python's ssl load."""
    pkcs8, no_encryption = serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    return private_key.private_bytes(serialization.Encoding.PEM, pkcs8, no_encryption)


def private_key_from_pem(data: bytes | str) -> PrivateKeyTypes:
    """Parse an unencrypted PEM private key; the error never quotes key material."""
    try:
        return serialization.load_pem_private_key(as_bytes(data), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise PKIError("not an unencrypted PEM private key") from exc


def fingerprint_sha256(certificate: x509.Certificate) -> str:
    """SHA-256 of the DER certificate as 64 lowercase hex digits, no colons."""
    return certificate.fingerprint(hashes.SHA256()).hex()


def serial_decimal(certificate: x509.Certificate) -> str:
    """The serial number in decimal, as a string: 159 bits exceed JSON's safe integers."""
    return str(certificate.serial_number)


def serial_hex(certificate: x509.Certificate) -> str:
    """The serial number in lowercase hex without leading zeros."""
    return format(certificate.serial_number, "x")


def as_bytes(data: bytes | str) -> bytes:
    """PEM input as bytes (package-internal, not in ``__all__``); non-ASCII text becomes ``?``."""
    return data.encode("ascii", "replace") if isinstance(data, str) else data
