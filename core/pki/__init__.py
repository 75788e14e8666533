"""The pools' private CAs: create, issue, sign CSRs, verify, renew.

Each pool has two CAs, kept apart so that a tenant's certificate can never open a connection to a
worker: the *tenant CA* signs allocation client certificates (trusted only by the gateway), and the
*worker CA* signs buildkitd serving certificates and the gateway's worker-client certificate
(trusted only by the workers and the gateway's upstream side). Both are ECDSA P-256.

Every leaf follows one fixed template, whatever a CSR asks for (the Kubernetes CSR signer does the
same): ``BasicConstraints(ca=False)`` and ``KeyUsage(digitalSignature)``, both critical; one
extended key usage (``clientAuth`` or ``serverAuth``, never both, so a server certificate cannot
pose as a client); SKI and AKI; a 159-bit random serial; ``NotBefore`` backdated 60 s for clock
skew; ``NotAfter`` never beyond the CA's. An allocation certificate carries its identity in exactly
one URI SAN, ``buildkit://allocation/<id>``; its CN is a short human label, never authoritative.

Verification uses ``cryptography.x509.verification`` (the web-PKI profile), which requires a SAN
and an AKI on every leaf; the template always has both. Times are aware datetimes; every function
that reads the clock takes ``now=`` so tests and callers can pin it.

Layout: ``_values`` (constants, :class:`Purpose`, the dataclasses), ``pem`` (PEM, fingerprints,
serials; the bottom layer), ``issue`` (CAs, leaves, CSRs), ``verify`` (verification, trust
bundles, renewal) and ``rotation`` (a CA Secret's rotation plan, on top of both). Import from this
package, not from those modules.
"""

from __future__ import annotations

from buildkit_controller.core.pki._values import (
    ALLOCATION_URI_PREFIX,
    BACKDATE,
    MAX_CA_LIFETIME,
    AllocationIdentity,
    CertificateAuthority,
    IssuedCertificate,
    Purpose,
)
from buildkit_controller.core.pki.issue import (
    create_ca,
    issue_allocation_certificate,
    issue_client_certificate,
    issue_server_certificate,
    load_ca,
    load_csr,
    sign_csr,
)
from buildkit_controller.core.pki.pem import (
    certificate_from_pem,
    certificate_to_pem,
    certificates_from_pem,
    fingerprint_sha256,
    private_key_from_pem,
    private_key_to_pem,
    serial_decimal,
    serial_hex,
)
from buildkit_controller.core.pki.rotation import plan_ca_rotation
from buildkit_controller.core.pki.verify import (
    allocation_id_from_certificate,
    merge_trust_bundle,
    needs_renewal,
    renewal_time,
    uri_sans,
    verify_certificate,
)

__all__ = [
    "ALLOCATION_URI_PREFIX",
    "BACKDATE",
    "MAX_CA_LIFETIME",
    "AllocationIdentity",
    "CertificateAuthority",
    "IssuedCertificate",
    "Purpose",
    "allocation_id_from_certificate",
    "certificate_from_pem",
    "certificate_to_pem",
    "certificates_from_pem",
    "create_ca",
    "fingerprint_sha256",
    "issue_allocation_certificate",
    "issue_client_certificate",
    "issue_server_certificate",
    "load_ca",
    "load_csr",
    "merge_trust_bundle",
    "needs_renewal",
    "plan_ca_rotation",
    "private_key_from_pem",
    "private_key_to_pem",
    "renewal_time",
    "serial_decimal",
    "serial_hex",
    "sign_csr",
    "uri_sans",
    "verify_certificate",
]
