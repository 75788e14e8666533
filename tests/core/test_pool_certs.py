"""Pool certificate plans: creation, idempotence, renewal, CA rotation with overlap, tenant/worker split."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from buildkit_controller.core import pki
from buildkit_controller.core.errors import CertificateVerificationError, PermanentError
from buildkit_controller.core.pool_certs import plan_pool_certificates
from buildkit_controller.core.testing import make_pool

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def cert(plan: Any, name: str, key: str = "tls.crt") -> Any:
    return pki.certificate_from_pem(plan.data[name][key])


def verify(leaf: Any, bundle_pem: str, purpose: pki.Purpose, now: datetime,
           server_name: str | None = None) -> None:
    pki.verify_certificate(leaf, pki.certificates_from_pem(bundle_pem), purpose=purpose, now=now,
                           server_name=server_name)


def test_a_new_pool_gets_two_cas_and_three_leaves_that_chain_correctly() -> None:
    pool = make_pool(name="builds", namespace="ci")
    plan = plan_pool_certificates(pool, {}, T0)
    assert set(plan.changes) == {"tenant-ca", "worker-ca", "gateway-tls", "gateway-worker-client",
                                 "worker-tls"}
    tenant, worker = plan.data["tenant-ca"]["bundle.crt"], plan.data["worker-ca"]["bundle.crt"]
    assert tenant != worker
    verify(cert(plan, "gateway-tls"), tenant, pki.Purpose.SERVER, T0, "builds.ci.svc")
    verify(cert(plan, "worker-tls"), worker, pki.Purpose.SERVER, T0, "buildkit-worker.builds.ci")
    verify(cert(plan, "gateway-worker-client"), worker, pki.Purpose.CLIENT, now=T0)
    # What buildkitd trusts (its ca.crt) is the worker CA only: a tenant-CA client certificate fails.
    tenant_ca = pki.load_ca(plan.data["tenant-ca"]["ca.crt"], plan.data["tenant-ca"]["ca.key"])
    intruder = pki.issue_client_certificate(tenant_ca, common_name="x", uris=["buildkit://x"],
                                            lifetime=DAY, now=T0)
    with pytest.raises(CertificateVerificationError):
        verify(intruder.certificate, plan.data["worker-tls"]["ca.crt"], pki.Purpose.CLIENT, T0)


def test_planning_again_changes_nothing() -> None:
    pool = make_pool()
    first = plan_pool_certificates(pool, {}, T0)
    again = plan_pool_certificates(pool, first.data, T0 + DAY)
    assert again.changes == {}
    assert again.data == first.data
    assert again.gateway_hash == first.gateway_hash


def test_a_new_external_hostname_reissues_only_the_gateway_certificate() -> None:
    first = plan_pool_certificates(make_pool(), {}, T0)
    moved = make_pool({"networking": {"external": {"hostname": "builds.example.com"}}})
    plan = plan_pool_certificates(moved, first.data, T0 + DAY)
    assert plan.changes == {"gateway-tls": "reissued: names changed"}
    assert plan.gateway_hash != first.gateway_hash
    verify(cert(plan, "gateway-tls"), plan.data["tenant-ca"]["bundle.crt"], pki.Purpose.SERVER,
           T0 + DAY, "builds.example.com")


def test_short_leaves_renew_at_two_thirds_of_their_life() -> None:
    pool = make_pool({"tls": {"auto": {"serverCertDuration": "3h"}}})
    first = plan_pool_certificates(pool, {}, T0)
    assert plan_pool_certificates(pool, first.data, T0 + timedelta(minutes=110)).changes == {}
    later = plan_pool_certificates(pool, first.data, T0 + timedelta(minutes=125))
    assert later.changes == {"gateway-tls": "renewed", "gateway-worker-client": "renewed",
                             "worker-tls": "renewed"}


def test_ca_rotation_overlaps_so_no_certificate_in_use_stops_verifying() -> None:
    # Leaves are capped at their CA's expiry; renew them late so only the rotation reissues them.
    pool = make_pool({"tls": {"auto": {"rotateBeforeExpiry": "120h"}}})
    life = timedelta(days=90)
    plan = plan_pool_certificates(pool, {}, T0, ca_lifetime=life)
    old_gateway = cert(plan, "gateway-tls")
    staged = plan_pool_certificates(pool, plan.data, T0 + life * 0.7, ca_lifetime=life)
    assert staged.changes["tenant-ca"] == "next CA staged"
    assert staged.changes["gateway-tls"] == "trust bundle updated"  # trusts the next CA before it signs
    assert len(pki.certificates_from_pem(staged.data["tenant-ca"]["bundle.crt"])) == 2
    rotated = plan_pool_certificates(pool, staged.data, T0 + life * 0.85, ca_lifetime=life)
    assert rotated.changes["tenant-ca"] == "rotated to the next CA"
    assert rotated.changes["gateway-tls"] == "reissued: not signed by the current CA"
    bundle = rotated.data["tenant-ca"]["bundle.crt"]
    for leaf in (old_gateway, cert(rotated, "gateway-tls")):  # old and new both verify during overlap
        verify(leaf, bundle, pki.Purpose.SERVER, T0 + life * 0.85, "pool.ci.svc")
    after = plan_pool_certificates(pool, rotated.data, T0 + life * 1.01, ca_lifetime=life)
    assert len(pki.certificates_from_pem(after.data["tenant-ca"]["bundle.crt"])) == 1  # old CA expired


def test_an_unreadable_ca_secret_is_an_error_not_a_silent_new_ca() -> None:
    plan = plan_pool_certificates(make_pool(), {}, T0)
    broken = {**plan.data, "tenant-ca": {**plan.data["tenant-ca"], "ca.key": "garbage"}}
    with pytest.raises(PermanentError, match="tenant CA Secret of pool pool is unreadable") as info:
        plan_pool_certificates(make_pool(), broken, T0)
    assert "PRIVATE KEY" not in str(info.value)


def test_gateway_hash_ignores_worker_only_changes() -> None:
    first = plan_pool_certificates(make_pool(), {}, T0)
    without_worker_cert = {k: v for k, v in first.data.items() if k != "worker-tls"}
    plan = plan_pool_certificates(make_pool(), without_worker_cert, T0)
    assert plan.changes == {"worker-tls": "issued"}
    assert plan.gateway_hash == first.gateway_hash
