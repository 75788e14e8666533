"""The built-in ``mtls`` auth method: identity certificates of the API's identity CA."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from buildkit_controller.core import pki
from buildkit_controller.core._aio import resolve, resolve_all
from buildkit_controller.core.errors import AuthenticationError, CertificateVerificationError
from buildkit_controller.core.identity import gateway_pool, issue_identity_certificate, read_identity
from buildkit_controller.core.models import AuthRequest, Identity, Runtime
from buildkit_controller.core.testing import AuthContract, host_with, make_pool
from buildkit_controller.plugins.mtls import MutualTLSAuth

NOW = datetime.now(UTC)
CA = pki.create_ca("identity", lifetime=timedelta(days=30), now=NOW - timedelta(days=1))


class TestMutualTLSContract(AuthContract):
    plugin_name = "mtls"

    @pytest.fixture
    def plugin(self) -> object:
        return MutualTLSAuth()


def authenticate(certificate: bytes | None, bundle: bytes = CA.certificate_pem) -> Any:
    host = host_with("auth", "mtls", MutualTLSAuth())
    host.configure(Runtime(process="api", identity_ca=lambda: bundle))
    request = AuthRequest(client_certificate=certificate.decode() if certificate else None)
    return asyncio.run(resolve(host.call("auth", "mtls", "bkc_authenticate", request=request)))


def identity_pem(ca: pki.CertificateAuthority = CA, **kwargs: Any) -> bytes:
    options = {"subject": "repo:octo/app", "pools": ["ci/builds"], "lifetime": timedelta(hours=1), **kwargs}
    return issue_identity_certificate(ca, **options).certificate_pem


def test_a_valid_identity_certificate_gives_its_subject_and_pools() -> None:
    identity = authenticate(identity_pem(pools=["ci/builds", "ci/other"]))
    assert isinstance(identity, Identity)
    assert (identity.subject, identity.method, identity.pools) == ("repo:octo/app", "mtls", ("ci/builds", "ci/other"))


def test_an_identity_certificate_identity_expires_with_the_certificate() -> None:
    pem = identity_pem()
    assert authenticate(pem).expires_at == pki.certificate_from_pem(pem).not_valid_after_utc


def test_abstains_without_a_client_certificate_even_with_a_bearer() -> None:
    host = host_with("auth", "mtls", MutualTLSAuth())
    request = AuthRequest(bearer="bkct_whatever")
    assert asyncio.run(resolve(host.call("auth", "mtls", "bkc_authenticate", request=request))) is None


@pytest.mark.parametrize(("make", "reason"), [
    (lambda: identity_pem(now=NOW - timedelta(hours=3)), "expired"),
    (lambda: identity_pem(pki.create_ca("other", lifetime=timedelta(days=1))), "unknown-issuer"),
    (lambda: pki.issue_client_certificate(CA, common_name="gw", uris=["buildkit://gateway/ci/builds"],
                                          lifetime=timedelta(hours=1)).certificate_pem, "bad-identity"),
    (lambda: pki.issue_server_certificate(CA, dns_names=["x"], lifetime=timedelta(hours=1)).certificate_pem,
     "wrong-usage"),
    (lambda: b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n", "rejected"),
])
def test_other_certificates_are_rejected(make: Any, reason: str) -> None:
    with pytest.raises(AuthenticationError) as info:
        authenticate(make())
    assert info.value.reason == reason and info.value.method == "mtls"


def test_without_an_identity_ca_every_certificate_is_rejected() -> None:
    with pytest.raises(AuthenticationError):
        authenticate(identity_pem(), bundle=b"")


def test_an_identity_certificate_cannot_request_certificates() -> None:
    host = host_with("auth", "mtls", MutualTLSAuth())
    mine = Identity(subject="x", method="mtls", pools=("ci/pool",))

    def votes(identity: Identity, action: str) -> list[Any]:
        return asyncio.run(resolve_all(host.pm.hook.bkc_authorize(identity=identity, pool=make_pool(),
                                                                  action=action)))
    assert [v.allowed for v in votes(mine, "certs")] == [False]
    assert votes(mine, "allocate") == []  # pluggy drops None results
    assert votes(Identity(subject="x", method="token"), "certs") == []


def test_identity_uris_round_trip_odd_subjects() -> None:
    subject = "system:serviceaccount:ci:builder/with spaces%and?query"
    certificate = issue_identity_certificate(CA, subject=subject, pools=["a/b"], lifetime=timedelta(hours=1))
    assert read_identity(certificate.certificate).subject == subject


def test_gateway_pool_is_read_from_the_gateway_uri() -> None:
    certificate = pki.issue_client_certificate(CA, common_name="gw", uris=["buildkit://gateway/ci/builds"],
                                               lifetime=timedelta(hours=1)).certificate
    assert gateway_pool(certificate) == ("ci", "builds")
    with pytest.raises(CertificateVerificationError, match="not a gateway"):
        gateway_pool(pki.certificate_from_pem(identity_pem()))
