"""What a pool's certificate Secrets must hold now — a pure plan the reconciler applies.

Two CAs per pool (see docs/pki.md): the *tenant* CA signs allocation client certificates and the
gateway's server certificate; the *worker* CA signs buildkitd's server certificate and the gateway's
client certificate for workers. buildkitd trusts only the worker CA, so no tenant certificate can
reach a worker directly.

CA rotation (:func:`~buildkit_controller.core.pki.plan_ca_rotation`) keeps an overlap both ways: at
2/3 of a CA's life a *next* CA is created and added to the trust bundle (gateways and workers learn
to trust it); at 5/6 it becomes the signing CA and leaves are reissued; the old CA stays in the
bundle until it expires, so certificates it signed keep working. A CA Secret that exists but
cannot be read is an error, never silently replaced: replacing it would invalidate every
certificate in use.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from buildkit_controller.core import pki
from buildkit_controller.core.errors import PermanentError, PKIError
from buildkit_controller.core.models.pool import Pool

__all__ = ["CA_LIFETIME", "CertPlan", "SecretData", "gateway_server_names", "plan_pool_certificates"]

#: Default CA lifetime (rotated at 2/3 with overlap, as cert-manager does).
CA_LIFETIME = timedelta(days=365)
SecretData = Mapping[str, str]


@dataclass(frozen=True, kw_only=True)
class CertPlan:
    """Data every pool Secret must hold (by logical name), which ones changed and why."""

    data: Mapping[str, SecretData]
    changes: Mapping[str, str] = field(default_factory=dict)

    @property
    def gateway_hash(self) -> str:
        """Changes whenever anything the gateway mounts changes (rolls the gateway Deployment)."""
        digest = hashlib.sha256()
        for name in ("gateway-tls", "gateway-worker-client"):
            for key in sorted(self.data[name]):
                digest.update(self.data[name][key].encode())
        return digest.hexdigest()[:16]


def gateway_server_names(pool: Pool) -> list[str]:
    """DNS names the gateway's server certificate carries."""
    base = [pool.name, f"{pool.name}.{pool.namespace}", f"{pool.name}.{pool.namespace}.svc",
            f"{pool.name}.{pool.namespace}.svc.cluster.local"]
    external = pool.spec.networking.external.hostname
    return [*base, external] if external else base


def worker_server_name(pool: Pool) -> str:
    """The one name every worker's certificate carries; the gateway checks it instead of pod IPs."""
    return f"buildkit-worker.{pool.name}.{pool.namespace}"


def _text(data: bytes) -> str:
    return data.decode()


def _ca_secret(label: str, existing: SecretData, pool: Pool, now: datetime,
               lifetime: timedelta) -> tuple[dict[str, str], str | None]:
    try:
        return pki.plan_ca_rotation(existing, f"{pool.namespace}/{pool.name} {label} CA", now, lifetime)
    except PKIError as exc:
        raise PermanentError(f"the {label} CA Secret of pool {pool.name} is unreadable ({exc}); "
                             "restore it or delete it to start a new CA") from None


def _reissue_reason(existing: SecretData, ca: pki.CertificateAuthority, sans: set[str],
                    pool: Pool, now: datetime) -> str | None:
    if "tls.crt" not in existing or "tls.key" not in existing:
        return "issued"
    try:
        cert = pki.certificate_from_pem(existing["tls.crt"])
        pki.private_key_from_pem(existing["tls.key"])
        cert.verify_directly_issued_by(ca.certificate)
    except (PKIError, ValueError, TypeError, InvalidSignature):
        return "reissued: not signed by the current CA"
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    if {str(n.value) for n in names} != sans:
        return "reissued: names changed"
    if pki.needs_renewal(cert, rotate_before_expiry=pool.spec.tls.auto.rotate_before_expiry, now=now):
        return "renewed"
    return None


def _leaf_secret(existing: SecretData, ca: pki.CertificateAuthority, bundle: str, *, server: bool,
                 names: list[str], pool: Pool, now: datetime) -> tuple[dict[str, str], str | None]:
    reason = _reissue_reason(existing, ca, set(names), pool, now)
    if reason is None:
        data = {"tls.crt": existing["tls.crt"], "tls.key": existing["tls.key"], "ca.crt": bundle}
        return data, "trust bundle updated" if existing.get("ca.crt") != bundle else None
    lifetime = pool.spec.tls.auto.server_cert_duration
    if server:
        issued = pki.issue_server_certificate(ca, dns_names=names, lifetime=lifetime, now=now)
    else:
        issued = pki.issue_client_certificate(ca, common_name=f"gateway {pool.namespace}/{pool.name}",
                                              uris=names, lifetime=lifetime, now=now)
    key = issued.private_key_pem or b""
    return {"tls.crt": _text(issued.certificate_pem), "tls.key": _text(key), "ca.crt": bundle}, reason


def plan_pool_certificates(pool: Pool, existing: Mapping[str, SecretData], now: datetime, *,
                           ca_lifetime: timedelta = CA_LIFETIME) -> CertPlan:
    """Plan the five pool Secrets from their current data (missing Secrets: empty mappings)."""
    data: dict[str, SecretData] = {}
    changes: dict[str, str] = {}

    def record(name: str, result: tuple[dict[str, str], str | None]) -> dict[str, str]:
        data[name], reason = result
        if reason is not None:
            changes[name] = reason
        return result[0]

    tenant = record("tenant-ca", _ca_secret("tenant", existing.get("tenant-ca", {}), pool, now, ca_lifetime))
    worker = record("worker-ca", _ca_secret("worker", existing.get("worker-ca", {}), pool, now, ca_lifetime))
    tenant_ca, worker_ca = pki.load_ca(tenant["ca.crt"], tenant["ca.key"]), pki.load_ca(worker["ca.crt"],
                                                                                          worker["ca.key"])
    leaves = [("gateway-tls", tenant_ca, tenant["bundle.crt"], True, gateway_server_names(pool)),
              ("gateway-worker-client", worker_ca, worker["bundle.crt"], False,
               [f"buildkit://gateway/{pool.namespace}/{pool.name}"]),
              ("worker-tls", worker_ca, worker["bundle.crt"], True, [worker_server_name(pool)])]
    for name, ca, bundle, server, names in leaves:
        record(name, _leaf_secret(existing.get(name, {}), ca, bundle, server=server, names=names,
                                  pool=pool, now=now))
    return CertPlan(data=data, changes=changes)
