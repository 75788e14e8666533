"""One CA-rotation plan for every CA Secret (pool tenant and worker CAs, the API's identity CA), and
one reader of URI SANs for every certificate identity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from buildkit_controller.core import identity, pki, pool_certs
from buildkit_controller.core.errors import PKIError
from buildkit_controller.core.testing import make_pool

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LIFE = timedelta(days=90)


def bundle_size(data: dict[str, str]) -> int:
    return len(pki.certificates_from_pem(data["bundle.crt"]))


def test_a_ca_is_created_staged_rotated_and_dropped_once_expired() -> None:
    created, reason = pki.plan_ca_rotation({}, "test CA", T0, LIFE)
    assert reason == "created" and bundle_size(created) == 1
    assert pki.plan_ca_rotation(created, "test CA", T0 + LIFE * 0.5, LIFE) == (created, None)
    staged, reason = pki.plan_ca_rotation(created, "test CA", T0 + LIFE * 0.7, LIFE)
    assert reason == "next CA staged" and bundle_size(staged) == 2 and staged["ca.crt"] == created["ca.crt"]
    rotated, reason = pki.plan_ca_rotation(staged, "test CA", T0 + LIFE * 0.85, LIFE)
    assert reason == "rotated to the next CA" and rotated["ca.crt"] == staged["next.crt"]
    assert "next.crt" not in rotated and bundle_size(rotated) == 2  # the old CA is trusted until it expires
    dropped, reason = pki.plan_ca_rotation(rotated, "test CA", T0 + LIFE * 1.01, LIFE)
    assert reason == "expired CAs dropped" and bundle_size(dropped) == 1


def test_an_unreadable_ca_is_an_error_without_the_key_in_it() -> None:
    created, _ = pki.plan_ca_rotation({}, "test CA", T0, LIFE)
    with pytest.raises(PKIError) as info:
        pki.plan_ca_rotation({**created, "ca.key": "garbage"}, "test CA", T0, LIFE)
    assert "garbage" not in str(info.value)


def test_pool_and_identity_cas_share_the_one_rotation_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    names: list[str] = []
    real = pki.plan_ca_rotation

    def spy(existing: Any, common_name: str, now: datetime, lifetime: timedelta) -> Any:
        names.append(common_name)
        return real(existing, common_name, now, lifetime)

    monkeypatch.setattr(pki, "plan_ca_rotation", spy)
    pool_certs.plan_pool_certificates(make_pool(name="builds", namespace="ci"), {}, T0)
    identity.plan_identity_ca({}, T0)
    assert names == ["ci/builds tenant CA", "ci/builds worker CA", "buildkit-controller identity CA"]


def test_identity_and_gateway_uris_come_from_the_one_san_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    ca = pki.create_ca("identity", lifetime=LIFE)
    leaf = identity.issue_identity_certificate(ca, subject="ci", pools=["ci/builds"], lifetime=timedelta(hours=1))
    assert pki.uri_sans(leaf.certificate) == ["buildkit://identity/ci", "buildkit://pool/ci/builds"]
    server = pki.issue_server_certificate(ca, dns_names=["x"], lifetime=timedelta(hours=1))
    assert pki.uri_sans(server.certificate) == []
    monkeypatch.setattr(pki, "uri_sans", lambda certificate: ["buildkit://gateway/ns/pool"])
    assert identity.gateway_pool(leaf.certificate) == ("ns", "pool")
