"""The client key pair and certificate files: a local P-256 key, its CSR, and 0600 files in a 0700 dir."""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from buildkit_controller.bkctl.errors import EXIT_CREDENTIALS, EXIT_WRONG_ENDPOINT, BkctlError

__all__ = ["CertFiles", "KeyPair", "new_key_pair", "write_certs"]


@dataclass(frozen=True)
class KeyPair:
    """A private key (PEM, never sent anywhere) and a CSR for it (PEM)."""

    key_pem: bytes
    csr_pem: str

    def __repr__(self) -> str:
        return "KeyPair(key=<redacted>)"


@dataclass(frozen=True, kw_only=True)
class CertFiles:
    directory: Path
    ca_cert: Path
    client_cert: Path
    client_key: Path

    def as_json(self) -> dict[str, str]:
        return {"certsDir": str(self.directory), "caCertPath": str(self.ca_cert),
                "clientCertPath": str(self.client_cert), "clientKeyPath": str(self.client_key)}


def new_key_pair(common_name: str = "bkctl") -> KeyPair:
    """A fresh P-256 key and a PKCS#10 request for it (the server ignores the subject)."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
           .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return KeyPair(key_pem=key_pem, csr_pem=csr.public_bytes(serialization.Encoding.PEM).decode())


def _directory(wanted: Path | None) -> Path:
    if wanted is None:
        try:
            return Path(tempfile.mkdtemp(prefix="bkctl-certs-"))  # mode 0700
        except OSError as exc:  # also no usable temp dir at all (TMPDIR)
            raise BkctlError(EXIT_CREDENTIALS, f"cannot create a private temp dir: {exc.strerror or exc}") from None
    try:
        wanted.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise BkctlError(EXIT_CREDENTIALS, f"--certs-dir {wanted}: {exc.strerror}") from None
    return wanted


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)


def _decode(answer: Mapping[str, Any], field: str) -> bytes:
    try:
        return base64.b64decode(str(answer[field]), validate=True)
    except (KeyError, binascii.Error):
        raise BkctlError(EXIT_WRONG_ENDPOINT, f"the allocation answer has no valid base64 {field!r}") from None


def write_certs(answer: Mapping[str, Any], key_pem: bytes | None, wanted: Path | None) -> CertFiles:
    """Write ca.crt, client.crt and client.key (the local key, else the answer's ``clientKey``).

    All or nothing: on failure the files written so far, and the directory if it was created here, are removed.
    """
    contents = {"ca.crt": _decode(answer, "caCert"), "client.crt": _decode(answer, "clientCert"),
                "client.key": key_pem if key_pem is not None else _decode(answer, "clientKey")}
    created = wanted is None or not wanted.exists()
    directory = _directory(wanted)
    written: list[Path] = []
    try:
        for name, data in contents.items():
            _write_private(directory / name, data)
            written.append(directory / name)
    except OSError as exc:
        if created:
            shutil.rmtree(directory, ignore_errors=True)
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()
        raise BkctlError(EXIT_CREDENTIALS, f"cannot write certificates to {directory}: {exc.strerror or exc}"
                         ) from None
    return CertFiles(directory=directory, ca_cert=directory / "ca.crt", client_cert=directory / "client.crt",
                     client_key=directory / "client.key")
