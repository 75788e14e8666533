"""What ``bkctl doctor`` checks about an allocation: its client certificate and the gateway's TLS.

The gateway probe completes a TLS handshake trusting only the CA bundle returned with the allocation and
presenting the allocation's client certificate, then speaks the first bytes of HTTP/2 (gRPC's transport):
a SETTINGS frame coming back proves the gateway accepted the certificate and piped the connection to a
BuildKit worker.
"""

from __future__ import annotations

import datetime
import socket
import ssl
from dataclasses import dataclass

from cryptography import x509

from buildkit_controller.bkctl.allocate import split_host_port
from buildkit_controller.bkctl.certs import CertFiles
from buildkit_controller.core.errors import CertificateVerificationError, PKIError
from buildkit_controller.core.pki import (
    ALLOCATION_URI_PREFIX,
    Purpose,
    allocation_id_from_certificate,
    certificates_from_pem,
    verify_certificate,
)

__all__ = ["ProbeError", "TlsResult", "check_client_certificate", "probe_gateway"]

_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_H2_EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # length 0, type SETTINGS, no flags, stream 0
_H2_SETTINGS = 0x4


class ProbeError(Exception):
    """A probe failed: ``message`` says what happened, ``remedy`` what to do about it."""

    def __init__(self, message: str, remedy: str) -> None:
        super().__init__(message)
        self.message = message
        self.remedy = remedy


@dataclass(frozen=True, kw_only=True)
class TlsResult:
    version: str
    cipher: str
    alpn: str | None
    worker_answered: bool


def check_client_certificate(files: CertFiles, allocation_id: str) -> str:
    """Verify the client certificate as the gateway will: issued by the returned CA bundle, current, for client
    authentication (extended key usage ``clientAuth``), naming the allocation (its one URI SAN)."""
    try:
        cert = certificates_from_pem(files.client_cert.read_bytes())[0]
        bundle = certificates_from_pem(files.ca_cert.read_bytes())
    except PKIError as exc:
        raise ProbeError(f"the returned certificates cannot be parsed ({exc})",
                         "report this to the operator: the API returned malformed caCert/clientCert") from None
    now = datetime.datetime.now(datetime.UTC)
    try:
        chain = verify_certificate(cert, bundle, purpose=Purpose.CLIENT, now=now)
        named = allocation_id_from_certificate(cert)
    except CertificateVerificationError as exc:
        raise _unverified(cert, exc, now) from None
    if named != allocation_id:
        raise ProbeError(f"the client certificate names {ALLOCATION_URI_PREFIX}{named}, not allocation "
                         f"{allocation_id}",
                         "report this to the operator: the API signed a certificate for another allocation")
    issuer = chain[1] if len(chain) > 1 else chain[0]
    return f"signed by {issuer.subject.rfc4514_string()}, valid until {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"


def _unverified(cert: x509.Certificate, exc: CertificateVerificationError, now: datetime.datetime) -> ProbeError:
    """Say what the verifier's ``reason`` means for this allocation, and what to do about it."""
    operator = "report this to the operator: "
    if exc.reason == "unknown-issuer":
        return ProbeError("the client certificate is not signed by any CA in the returned caCert bundle",
                          "the API's pool certificates are inconsistent; ask the operator to check the pool's "
                          "tenant CA Secret")
    if exc.reason in {"expired", "not-yet-valid"}:
        return ProbeError(f"the client certificate is valid {cert.not_valid_before_utc} to "
                          f"{cert.not_valid_after_utc}, not now ({now:%Y-%m-%d %H:%M:%S} UTC here)",
                          "fix this machine's clock (see the clock check)")
    if exc.reason == "wrong-usage":
        return ProbeError("the client certificate is not for client authentication (no clientAuth extended key "
                          "usage)", f"{operator}the gateway refuses such a certificate")
    if exc.reason == "bad-identity":
        return ProbeError(f"the client certificate names no allocation ({exc})",
                          f"{operator}the gateway only accepts a certificate whose one URI SAN is "
                          f"{ALLOCATION_URI_PREFIX}<id>")
    return ProbeError(f"the client certificate does not verify against the returned caCert bundle ({exc})",
                      f"{operator}the pool's tenant CA or the certificates the API issues are unusable for TLS "
                      "clients")


def _context(files: CertFiles) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(files.ca_cert))  # the pool's CA only: no system CAs
    context.load_cert_chain(str(files.client_cert), str(files.client_key))
    context.set_alpn_protocols(["h2"])
    return context


def _split(address: str) -> tuple[str, int]:
    try:
        return split_host_port(address)
    except ValueError as exc:
        raise ProbeError(f"the gateway address {exc}",
                         "pass --gateway-endpoint/BKCTL_GATEWAY_ENDPOINT HOST:PORT; if the address is the one "
                         "the API returned, ask the operator to fix the pool's gateway endpoint") from None


def _worker_answers(tls: ssl.SSLSocket) -> bool:
    tls.sendall(_H2_PREFACE + _H2_EMPTY_SETTINGS)
    try:
        header = tls.recv(9)
    except (TimeoutError, ConnectionResetError, BrokenPipeError):  # the gateway hung up or never answered
        return False
    return len(header) == 9 and header[3] == _H2_SETTINGS


def probe_gateway(address: str, server_name: str, files: CertFiles, timeout: float) -> TlsResult:
    """Handshake with the gateway at ``address`` expecting ``server_name``; then an HTTP/2 hello."""
    host, port = _split(address)
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, \
                _context(files).wrap_socket(raw, server_hostname=server_name) as tls:
            version, cipher = tls.version() or "?", (tls.cipher() or ("?",))[0]
            alpn = tls.selected_alpn_protocol()
            try:
                answered = _worker_answers(tls)
            except ssl.SSLError as exc:
                raise _rejected(exc) from None
            return TlsResult(version=version, cipher=cipher, alpn=alpn, worker_answered=answered)
    except ssl.SSLCertVerificationError as exc:
        raise _untrusted(address, server_name, exc) from None
    except ssl.SSLError as exc:
        raise ProbeError(f"TLS handshake with {address} failed ({exc.reason or exc})",
                         "check that --gateway-endpoint/BKCTL_GATEWAY_ENDPOINT is the pool's gateway (TLS, port "
                         "1235); an alert about a certificate means the gateway refused the allocation's") from None
    except OSError as exc:
        raise ProbeError(f"cannot connect to the gateway at {address}: {exc.strerror or exc}",
                         "the gateway must be reachable from here: check --gateway-endpoint/BKCTL_GATEWAY_ENDPOINT "
                         "(e.g. a port-forward to the pool's Service, port 1235) and firewalls") from None


def _untrusted(address: str, server_name: str, exc: ssl.SSLCertVerificationError) -> ProbeError:
    if "hostname" in str(exc.verify_message).lower():
        return ProbeError(f"the gateway at {address} presents a certificate not valid for {server_name} "
                          f"({exc.verify_message})",
                          "the address is not this pool's gateway, or the pool's external hostname is not in its "
                          "certificate: check --gateway-endpoint and the pool's spec.networking")
    return ProbeError(f"the gateway at {address} presents a certificate not signed by the pool's CA returned with "
                      f"the allocation ({exc.verify_message})",
                      "the address is not this pool's gateway (check --gateway-endpoint/BKCTL_GATEWAY_ENDPOINT), "
                      "or a proxy in between terminates TLS: the gateway must be reached directly (TCP passthrough)")


def _rejected(exc: ssl.SSLError) -> ProbeError:
    return ProbeError(f"the gateway rejected the connection after the handshake ({exc.reason or exc})",
                      "the gateway did not accept the allocation's client certificate: was the allocation "
                      "released or expired, or does the gateway trust an older CA? Retry; then ask the operator")
