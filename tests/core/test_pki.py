"""The pool PKI: what a gateway, a worker or a CI job would notice if a certificate were wrong."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import textwrap

import pytest
import time_machine
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from buildkit_controller.core import pki
from buildkit_controller.core.errors import CertificateVerificationError, PKIError
from buildkit_controller.core.pki import AllocationIdentity, Purpose
from buildkit_controller.core.tokens import new_allocation_id

NOW = dt.datetime(2031, 5, 4, 12, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
YEAR = dt.timedelta(days=365)
LEAF_EXTENSIONS = {
    ExtensionOID.BASIC_CONSTRAINTS,
    ExtensionOID.KEY_USAGE,
    ExtensionOID.EXTENDED_KEY_USAGE,
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    ExtensionOID.SUBJECT_KEY_IDENTIFIER,
    ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
}


@pytest.fixture(scope="module")
def tenant_ca() -> pki.CertificateAuthority:
    return pki.create_ca("default/pool tenant CA", lifetime=YEAR, now=NOW)


@pytest.fixture(scope="module")
def other_ca() -> pki.CertificateAuthority:
    # Same name on purpose: another pool (or an attacker) can pick any CA name.
    return pki.create_ca("default/pool tenant CA", lifetime=YEAR, now=NOW)


@pytest.fixture
def identity() -> AllocationIdentity:
    return AllocationIdentity(
        allocation_id=new_allocation_id(), pool="pool", namespace="default", job_id="42"
    )


def _allocation(ca: pki.CertificateAuthority, identity: AllocationIdentity, **kw: object) -> x509.Certificate:
    return pki.issue_allocation_certificate(ca, identity, lifetime=HOUR, now=NOW, **kw).certificate  # type: ignore[arg-type]


def _ext(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.Extension[x509.ExtensionType]:
    return cert.extensions.get_extension_for_class(kind)


def _csr_pem(
    key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey, **kw: bool
) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tenant-aaaa")])
    )
    if kw.get("hostile"):
        builder = (
            builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName(f"evil{i}.example") for i in range(10)]
                    + [x509.UniformResourceIdentifier(f"{pki.ALLOCATION_URI_PREFIX}someoneelse")]
                ),
                critical=False,
            )
            .add_extension(
                x509.NameConstraints(permitted_subtrees=[x509.DNSName("example")], excluded_subtrees=None),
                critical=True,
            )
        )
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.PEM)


def _weak_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505  the weak key under test


def _pem_from_der(der: bytes) -> bytes:
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{body}\n-----END CERTIFICATE REQUEST-----\n".encode()


# --- CA --------------------------------------------------------------------------------------------


def test_ca_is_a_bounded_p256_ca_that_can_only_sign_leaves(tenant_ca: pki.CertificateAuthority) -> None:
    cert = tenant_ca.certificate
    assert isinstance(tenant_ca.private_key, ec.EllipticCurvePrivateKey)
    assert tenant_ca.private_key.curve.name == "secp256r1"
    assert cert.subject == cert.issuer
    cert.verify_directly_issued_by(cert)
    constraints = _ext(cert, x509.BasicConstraints)
    assert constraints.critical and constraints.value == x509.BasicConstraints(ca=True, path_length=0)
    usage = _ext(cert, x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature
    assert _ext(cert, x509.SubjectKeyIdentifier).value.digest
    assert cert.not_valid_before_utc == NOW - pki.BACKDATE
    assert cert.not_valid_after_utc == NOW + YEAR


@pytest.mark.parametrize("lifetime", [dt.timedelta(0), -DAY, pki.MAX_CA_LIFETIME + DAY])
def test_ca_lifetime_must_be_positive_and_bounded(lifetime: dt.timedelta) -> None:
    with pytest.raises(PKIError, match="lifetime"):
        pki.create_ca("ca", lifetime=lifetime, now=NOW)


def test_ca_key_is_not_in_its_repr(tenant_ca: pki.CertificateAuthority) -> None:
    assert "private_key" not in repr(tenant_ca)
    assert tenant_ca.private_key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")


def test_ca_round_trips_through_its_secret(
    tenant_ca: pki.CertificateAuthority, identity: AllocationIdentity
) -> None:
    loaded = pki.load_ca(tenant_ca.certificate_pem, tenant_ca.private_key_pem.decode())
    leaf = _allocation(loaded, identity)
    pki.verify_certificate(leaf, [tenant_ca.certificate], purpose=Purpose.CLIENT, now=NOW)


def test_load_ca_refuses_a_key_of_another_ca(
    tenant_ca: pki.CertificateAuthority, other_ca: pki.CertificateAuthority
) -> None:
    with pytest.raises(PKIError, match="does not match"):
        pki.load_ca(tenant_ca.certificate_pem, other_ca.private_key_pem)


def test_load_ca_refuses_a_leaf_certificate(tenant_ca: pki.CertificateAuthority) -> None:
    leaf = pki.issue_server_certificate(tenant_ca, dns_names=["a.example"], lifetime=HOUR, now=NOW)
    assert leaf.private_key_pem is not None
    with pytest.raises(PKIError, match="not a CA"):
        pki.load_ca(leaf.certificate_pem, leaf.private_key_pem)


def test_load_ca_refuses_garbage_without_echoing_it() -> None:
    secret = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END PRIVATE KEY-----\n"
    with pytest.raises(PKIError) as caught:
        pki.private_key_from_pem(secret)
    assert "c2VjcmV0" not in str(caught.value)


# --- leaf templates --------------------------------------------------------------------------------


def test_server_certificate_template(tenant_ca: pki.CertificateAuthority) -> None:
    issued = pki.issue_server_certificate(
        tenant_ca, dns_names=["pool.default.svc"], ip_addresses=["10.0.0.7"], lifetime=DAY, now=NOW
    )
    cert = issued.certificate
    assert {ext.oid for ext in cert.extensions} == LEAF_EXTENSIONS
    assert list(_ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    sans = _ext(cert, x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["pool.default.svc"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["10.0.0.7"]
    usage = _ext(cert, x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature
    assert not (usage.value.key_cert_sign or usage.value.crl_sign or usage.value.key_encipherment)
    constraints = _ext(cert, x509.BasicConstraints)
    assert constraints.critical and not constraints.value.ca
    ca_ski = _ext(tenant_ca.certificate, x509.SubjectKeyIdentifier).value.digest
    assert _ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier == ca_ski
    assert cert.not_valid_before_utc == NOW - dt.timedelta(seconds=60)
    assert cert.not_valid_after_utc == NOW + DAY
    assert cert.serial_number > 2**64
    assert isinstance(issued.private_key, ec.EllipticCurvePrivateKey)
    assert issued.private_key.public_key() == cert.public_key()
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)


def test_server_certificate_needs_a_name(tenant_ca: pki.CertificateAuthority) -> None:
    with pytest.raises(PKIError, match="at least one"):
        pki.issue_server_certificate(tenant_ca, lifetime=DAY, now=NOW)
    with pytest.raises(PKIError, match="DNS name"):
        pki.issue_server_certificate(tenant_ca, dns_names=["bücher.example"], lifetime=DAY, now=NOW)
    with pytest.raises(PKIError, match="IP address"):
        pki.issue_server_certificate(tenant_ca, ip_addresses=["10.0.0.300"], lifetime=DAY, now=NOW)


def test_client_certificate_is_for_clients_only(tenant_ca: pki.CertificateAuthority) -> None:
    cert = pki.issue_client_certificate(
        tenant_ca, common_name="gateway", uris=["buildkit://gateway/default/pool"], lifetime=DAY, now=NOW
    ).certificate
    assert {ext.oid for ext in cert.extensions} == LEAF_EXTENSIONS
    assert list(_ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    with pytest.raises(PKIError, match="URI SAN"):
        pki.issue_client_certificate(tenant_ca, common_name="x", uris=[], lifetime=DAY, now=NOW)


def test_leaf_never_outlives_its_ca() -> None:
    short_ca = pki.create_ca("short", lifetime=HOUR, now=NOW)
    cert = pki.issue_server_certificate(short_ca, dns_names=["a.example"], lifetime=YEAR, now=NOW).certificate
    assert cert.not_valid_after_utc == short_ca.certificate.not_valid_after_utc


def test_refuses_to_issue_with_an_expired_ca(
    tenant_ca: pki.CertificateAuthority, identity: AllocationIdentity
) -> None:
    with pytest.raises(PKIError, match="rotate"):
        pki.issue_allocation_certificate(tenant_ca, identity, lifetime=HOUR, now=NOW + 2 * YEAR)


@pytest.mark.parametrize("lifetime", [dt.timedelta(0), -HOUR])
def test_leaf_lifetime_must_be_positive(
    tenant_ca: pki.CertificateAuthority, identity: AllocationIdentity, lifetime: dt.timedelta
) -> None:
    with pytest.raises(PKIError, match="positive"):
        pki.issue_allocation_certificate(tenant_ca, identity, lifetime=lifetime, now=NOW)


def test_naive_times_are_refused(tenant_ca: pki.CertificateAuthority) -> None:
    with pytest.raises(ValueError, match="aware"):
        pki.needs_renewal(tenant_ca.certificate, rotate_before_expiry=DAY, now=dt.datetime(2031, 1, 1))


def test_serials_are_unique_and_large(
    tenant_ca: pki.CertificateAuthority, identity: AllocationIdentity
) -> None:
    serials = {_allocation(tenant_ca, identity).serial_number for _ in range(1000)}
    assert len(serials) == 1000
    assert min(serials) > 2**64


# --- allocation certificates -----------------------------------------------------------------------


def test_allocation_id_round_trips_through_the_uri_san(
    tenant_ca: pki.CertificateAuthority, identity: AllocationIdentity
) -> None:
    issued = pki.issue_allocation_certificate(tenant_ca, identity, lifetime=HOUR, now=NOW)
    cert = pki.certificate_from_pem(issued.certificate_pem)
    sans = _ext(cert, x509.SubjectAlternativeName).value
    assert list(sans) == [x509.UniformResourceIdentifier(f"buildkit://allocation/{identity.allocation_id}")]
    assert pki.allocation_id_from_certificate(cert) == identity.allocation_id
    assert list(_ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "default/pool/42"


def test_allocation_certificate_with_its_key_is_usable(
    tenant_ca: pki.CertificateAuthority, identity: AllocationIdentity
) -> None:
    issued = pki.issue_allocation_certificate(tenant_ca, identity, lifetime=HOUR, now=NOW)
    assert "private_key" not in repr(issued)
    assert issued.private_key_pem is not None
    key = pki.private_key_from_pem(issued.private_key_pem)
    assert key.public_key() == issued.certificate.public_key()


NAMES = st.one_of(st.text(max_size=20), st.text(min_size=30, max_size=300))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pool=NAMES, namespace=NAMES, job_id=NAMES)
@example(pool="p" * 253, namespace="n" * 63, job_id="j" * 200)
@example(pool="ビルド" * 30, namespace="名前空間" * 20, job_id="🚀" * 64)
@example(pool="", namespace="", job_id="")
def test_allocation_cn_stays_within_64_characters_whatever_the_names(
    tenant_ca: pki.CertificateAuthority, pool: str, namespace: str, job_id: str
) -> None:
    identity = AllocationIdentity(
        allocation_id=new_allocation_id(), pool=pool, namespace=namespace, job_id=job_id
    )
    cert = _allocation(tenant_ca, identity)
    (cn,) = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert isinstance(cn.value, str)
    assert 1 <= len(cn.value.encode()) <= 64
    assert cn.value.isascii() and cn.value.isprintable()
    assert pki.allocation_id_from_certificate(cert) == identity.allocation_id


@pytest.mark.parametrize("bad_id", ["", "UPPER", "a/b", "../x", "a" * 33, "with space"])
def test_allocation_identity_refuses_ids_that_could_escape_the_uri(bad_id: str) -> None:
    with pytest.raises(PKIError, match="allocation id"):
        AllocationIdentity(allocation_id=bad_id, pool="p", namespace="n")


@pytest.mark.parametrize(
    "uris",
    [
        ["buildkit://allocation/abc", "buildkit://allocation/def"],
        ["buildkit://allocation/abc", "spiffe://example.org/x"],
        ["buildkit://allocation/"],
        ["buildkit://allocation/../admin"],
        ["spiffe://example.org/alloc/abc"],
        ["BUILDKIT://allocation/abc"],
    ],
)
def test_allocation_id_needs_exactly_one_allocation_uri(
    tenant_ca: pki.CertificateAuthority, uris: list[str]
) -> None:
    cert = pki.issue_client_certificate(
        tenant_ca, common_name="x", uris=uris, lifetime=HOUR, now=NOW
    ).certificate
    with pytest.raises(CertificateVerificationError) as caught:
        pki.allocation_id_from_certificate(cert)
    assert caught.value.reason == "bad-identity"


def test_allocation_id_absent_from_a_server_certificate(tenant_ca: pki.CertificateAuthority) -> None:
    cert = pki.issue_server_certificate(
        tenant_ca, dns_names=["a.example"], lifetime=HOUR, now=NOW
    ).certificate
    with pytest.raises(CertificateVerificationError, match="found 0") as caught:
        pki.allocation_id_from_certificate(cert)
    assert caught.value.reason == "bad-identity"


# --- CSRs ------------------------------------------------------------------------------------------


def test_csr_is_signed_for_the_clients_own_key(
    tenant_ca: pki.CertificateAuthority, identity: AllocationIdentity
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    issued = pki.sign_csr(tenant_ca, _csr_pem(key), identity, lifetime=HOUR, now=NOW)
    assert issued.private_key is None and issued.private_key_pem is None
    assert issued.certificate.public_key() == key.public_key()
    pki.verify_certificate(issued.certificate, [tenant_ca.certificate], purpose=Purpose.CLIENT, now=NOW)
    assert pki.allocation_id_from_certificate(issued.certificate) == identity.allocation_id


def test_csr_requests_are_ignored(tenant_ca: pki.CertificateAuthority, identity: AllocationIdentity) -> None:
    csr_pem = _csr_pem(ec.generate_private_key(ec.SECP256R1()), hostile=True)
    cert = pki.sign_csr(tenant_ca, csr_pem.decode(), identity, lifetime=HOUR, now=NOW).certificate
    assert {ext.oid for ext in cert.extensions} == LEAF_EXTENSIONS
    assert not _ext(cert, x509.BasicConstraints).value.ca
    assert list(_ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert list(_ext(cert, x509.SubjectAlternativeName).value) == [
        x509.UniformResourceIdentifier(identity.uri)
    ]
    assert cert.subject.rfc4514_string() == "CN=default/pool/42"
    with pytest.raises(CertificateVerificationError, match="wrong usage") as caught:
        pki.verify_certificate(cert, [tenant_ca.certificate], purpose=Purpose.SERVER, now=NOW)
    assert caught.value.reason == "wrong-usage"


def test_csr_with_a_tampered_subject_is_rejected(
    tenant_ca: pki.CertificateAuthority, identity: AllocationIdentity
) -> None:
    der = x509.load_pem_x509_csr(_csr_pem(ec.generate_private_key(ec.SECP256R1()))).public_bytes(
        serialization.Encoding.DER
    )
    tampered = der.replace(b"tenant-aaaa", b"tenant-bbbb")
    assert tampered != der
    assert x509.load_der_x509_csr(tampered).subject.rfc4514_string() == "CN=tenant-bbbb"
    with pytest.raises(PKIError, match="signature is invalid"):
        pki.sign_csr(tenant_ca, _pem_from_der(tampered), identity, lifetime=HOUR, now=NOW)


def test_csr_with_a_flipped_signature_byte_is_rejected(
    tenant_ca: pki.CertificateAuthority, identity: AllocationIdentity
) -> None:
    der = bytearray(
        x509.load_pem_x509_csr(_csr_pem(ed25519.Ed25519PrivateKey.generate())).public_bytes(
            serialization.Encoding.DER
        )
    )
    der[-1] ^= 0x01  # the last byte belongs to the signature BIT STRING
    with pytest.raises(PKIError, match="signature is invalid"):
        pki.sign_csr(tenant_ca, _pem_from_der(bytes(der)), identity, lifetime=HOUR, now=NOW)


@pytest.mark.parametrize(
    "pem",
    [
        b"",
        b"not a csr",
        b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        b"-----BEGIN CERTIFICATE REQUEST-----\n" + b"A" * 70_000 + b"\n-----END CERTIFICATE REQUEST-----\n",
    ],
)
def test_unparseable_csr_is_a_pki_error(
    tenant_ca: pki.CertificateAuthority, identity: AllocationIdentity, pem: bytes
) -> None:
    with pytest.raises(PKIError, match=r"CSR|certificate signing request"):
        pki.sign_csr(tenant_ca, pem, identity, lifetime=HOUR, now=NOW)


@pytest.mark.parametrize(
    "make_key",
    [
        lambda: ec.generate_private_key(ec.SECP384R1()),
        ed25519.Ed25519PrivateKey.generate,
        lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    ],
    ids=["p384", "ed25519", "rsa2048"],
)
def test_csr_key_types_accepted(
    tenant_ca: pki.CertificateAuthority, identity: AllocationIdentity, make_key: object
) -> None:
    key = make_key()  # type: ignore[operator]
    cert = pki.sign_csr(tenant_ca, _csr_pem(key), identity, lifetime=HOUR, now=NOW).certificate
    pki.verify_certificate(cert, [tenant_ca.certificate], purpose=Purpose.CLIENT, now=NOW)


def test_load_csr_alone_refuses_weak_keys() -> None:
    with pytest.raises(PKIError, match="RSA-1024"):
        pki.load_csr(_csr_pem(_weak_rsa_key()))


@pytest.mark.parametrize(
    ("make_key", "named"),
    [
        (_weak_rsa_key, "RSA-1024"),
        (lambda: ec.generate_private_key(ec.SECP521R1()), "secp521r1"),
        (lambda: ec.generate_private_key(ec.SECP256K1()), "secp256k1"),
    ],
    ids=["rsa1024", "p521", "secp256k1"],
)
def test_csr_weak_or_odd_keys_refused(
    tenant_ca: pki.CertificateAuthority, identity: AllocationIdentity, make_key: object, named: str
) -> None:
    key = make_key()  # type: ignore[operator]
    with pytest.raises(PKIError, match=f"unsupported key .*{named}"):
        pki.sign_csr(tenant_ca, _csr_pem(key), identity, lifetime=HOUR, now=NOW)


# --- verification ----------------------------------------------------------------------------------


def test_client_certificate_from_another_ca_is_rejected(
    tenant_ca: pki.CertificateAuthority, other_ca: pki.CertificateAuthority, identity: AllocationIdentity
) -> None:
    foreign = _allocation(other_ca, identity)
    with pytest.raises(CertificateVerificationError, match="unknown issuer") as caught:
        pki.verify_certificate(foreign, [tenant_ca.certificate], purpose=Purpose.CLIENT, now=NOW)
    assert caught.value.reason == "unknown-issuer"
    chain = pki.verify_certificate(foreign, [other_ca.certificate], purpose=Purpose.CLIENT, now=NOW)
    assert chain == [foreign, other_ca.certificate]


def test_worker_ca_certificates_are_not_accepted_by_the_tenant_side(
    tenant_ca: pki.CertificateAuthority,
) -> None:
    worker_ca = pki.create_ca("default/pool worker CA", lifetime=YEAR, now=NOW)
    gateway_client = pki.issue_client_certificate(
        worker_ca, common_name="gateway", uris=["buildkit://gateway/default/pool"], lifetime=DAY, now=NOW
    ).certificate
    with pytest.raises(CertificateVerificationError, match="unknown issuer") as caught:
        pki.verify_certificate(gateway_client, [tenant_ca.certificate], purpose=Purpose.CLIENT, now=NOW)
    assert caught.value.reason == "unknown-issuer"


def test_expired_certificate_is_rejected(
    tenant_ca: pki.CertificateAuthority, identity: AllocationIdentity
) -> None:
    cert = _allocation(tenant_ca, identity)
    pki.verify_certificate(cert, [tenant_ca.certificate], purpose=Purpose.CLIENT, now=NOW + HOUR)
    with pytest.raises(CertificateVerificationError, match=r"^expired") as caught:
        pki.verify_certificate(
            cert, [tenant_ca.certificate], purpose=Purpose.CLIENT, now=NOW + HOUR + dt.timedelta(seconds=1)
        )
    assert caught.value.reason == "expired"


def test_not_yet_valid_certificate_is_rejected_beyond_the_backdate(
    tenant_ca: pki.CertificateAuthority, identity: AllocationIdentity
) -> None:
    cert = _allocation(tenant_ca, identity)
    pki.verify_certificate(cert, [tenant_ca.certificate], purpose=Purpose.CLIENT, now=NOW - pki.BACKDATE)
    with pytest.raises(CertificateVerificationError, match="not yet valid") as caught:
        pki.verify_certificate(
            cert, [tenant_ca.certificate], purpose=Purpose.CLIENT, now=NOW - 2 * pki.BACKDATE
        )
    assert caught.value.reason == "not-yet-valid"


def test_expiry_follows_the_wall_clock_when_no_time_is_given(
    tenant_ca: pki.CertificateAuthority, identity: AllocationIdentity
) -> None:
    cert = _allocation(tenant_ca, identity)
    with time_machine.travel(NOW + dt.timedelta(minutes=30), tick=False):
        pki.verify_certificate(cert, [tenant_ca.certificate], purpose=Purpose.CLIENT)
        assert not pki.needs_renewal(cert, rotate_before_expiry=dt.timedelta(minutes=10))
    with time_machine.travel(NOW + 2 * HOUR, tick=False):
        with pytest.raises(CertificateVerificationError, match=r"^expired") as caught:
            pki.verify_certificate(cert, [tenant_ca.certificate], purpose=Purpose.CLIENT)
        assert caught.value.reason == "expired"
        assert pki.needs_renewal(cert, rotate_before_expiry=dt.timedelta(minutes=10))


def test_server_and_client_certificates_do_not_swap_roles(tenant_ca: pki.CertificateAuthority) -> None:
    server = pki.issue_server_certificate(tenant_ca, dns_names=["pool.default.svc"], lifetime=DAY, now=NOW)
    client = pki.issue_client_certificate(
        tenant_ca, common_name="c", uris=["buildkit://gateway/default/pool"], lifetime=DAY, now=NOW
    )
    bundle = [tenant_ca.certificate]
    pki.verify_certificate(server.certificate, bundle, purpose=Purpose.SERVER, now=NOW)
    pki.verify_certificate(client.certificate, bundle, purpose=Purpose.CLIENT, now=NOW)
    with pytest.raises(CertificateVerificationError, match="wrong usage") as caught:
        pki.verify_certificate(server.certificate, bundle, purpose=Purpose.CLIENT, now=NOW)
    assert caught.value.reason == "wrong-usage"
    with pytest.raises(CertificateVerificationError, match="wrong usage") as caught:
        pki.verify_certificate(client.certificate, bundle, purpose=Purpose.SERVER, now=NOW)
    assert caught.value.reason == "wrong-usage"


def test_server_certificate_is_checked_against_the_name_dialled(tenant_ca: pki.CertificateAuthority) -> None:
    cert = pki.issue_server_certificate(
        tenant_ca, dns_names=["pool.default.svc"], ip_addresses=["10.1.2.3"], lifetime=DAY, now=NOW
    ).certificate
    for name in ("pool.default.svc", "10.1.2.3"):
        pki.verify_certificate(
            cert, [tenant_ca.certificate], purpose=Purpose.SERVER, now=NOW, server_name=name
        )
    with pytest.raises(CertificateVerificationError, match=r"^rejected") as caught:
        pki.verify_certificate(
            cert, [tenant_ca.certificate], purpose=Purpose.SERVER, now=NOW, server_name="pool.other.svc"
        )
    assert caught.value.reason == "rejected"


def test_empty_trust_bundle_trusts_nothing(
    tenant_ca: pki.CertificateAuthority, identity: AllocationIdentity
) -> None:
    with pytest.raises(CertificateVerificationError, match="unknown issuer") as caught:
        pki.verify_certificate(_allocation(tenant_ca, identity), [], purpose=Purpose.CLIENT, now=NOW)
    assert caught.value.reason == "unknown-issuer"


def test_a_tenant_cannot_mint_certificates_with_its_own_key(
    tenant_ca: pki.CertificateAuthority, identity: AllocationIdentity
) -> None:
    issued = pki.issue_allocation_certificate(tenant_ca, identity, lifetime=HOUR, now=NOW)
    assert issued.private_key is not None
    with pytest.raises(PKIError, match="not a CA"):
        pki.CertificateAuthority(certificate=issued.certificate, private_key=issued.private_key)
    minted = (
        x509.CertificateBuilder()
        .subject_name(issued.certificate.subject)
        .issuer_name(issued.certificate.subject)
        .public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - HOUR)
        .not_valid_after(NOW + HOUR)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(identity.uri)]), critical=False
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issued.private_key.public_key()),
            critical=False,
        )
        .sign(issued.private_key, hashes.SHA256())
    )
    with pytest.raises(CertificateVerificationError, match="unknown issuer") as caught:
        pki.verify_certificate(minted, [tenant_ca.certificate], purpose=Purpose.CLIENT, now=NOW)
    assert caught.value.reason == "unknown-issuer"
    # Even a bundle that wrongly contains the tenant's own certificate does not make it an issuer.
    with pytest.raises(CertificateVerificationError, match=r"^rejected") as caught:
        pki.verify_certificate(
            minted, [tenant_ca.certificate, issued.certificate], purpose=Purpose.CLIENT, now=NOW
        )
    assert caught.value.reason == "rejected"


def test_server_name_must_be_an_a_label(tenant_ca: pki.CertificateAuthority) -> None:
    cert = pki.issue_server_certificate(tenant_ca, dns_names=["xn--bcher-kva.example"], lifetime=DAY, now=NOW)
    bundle = [tenant_ca.certificate]
    pki.verify_certificate(
        cert.certificate, bundle, purpose=Purpose.SERVER, now=NOW, server_name="xn--bcher-kva.example"
    )
    with pytest.raises(PKIError, match="A-label"):
        pki.verify_certificate(
            cert.certificate, bundle, purpose=Purpose.SERVER, now=NOW, server_name="bücher.example"
        )


# --- rotation and trust bundles --------------------------------------------------------------------


def test_rotation_overlap_trusts_leaves_of_the_old_and_the_new_ca(identity: AllocationIdentity) -> None:
    old = pki.create_ca("default/pool tenant CA", lifetime=dt.timedelta(days=30), now=NOW)
    later = NOW + dt.timedelta(days=20)
    new = pki.create_ca("default/pool tenant CA", lifetime=dt.timedelta(days=30), now=later)
    old_leaf = pki.issue_allocation_certificate(old, identity, lifetime=DAY, now=later).certificate
    new_leaf = pki.issue_allocation_certificate(new, identity, lifetime=DAY, now=later).certificate
    bundle = pki.certificates_from_pem(
        pki.merge_trust_bundle(old.certificate_pem, new.certificate_pem, now=later)
    )
    for leaf, issuer in ((old_leaf, old), (new_leaf, new)):
        chain = pki.verify_certificate(leaf, bundle, purpose=Purpose.CLIENT, now=later + HOUR)
        assert chain[-1] == issuer.certificate
    with pytest.raises(CertificateVerificationError, match="unknown issuer") as caught:
        pki.verify_certificate(old_leaf, [new.certificate], purpose=Purpose.CLIENT, now=later + HOUR)
    assert caught.value.reason == "unknown-issuer"


def test_merge_drops_expired_and_duplicate_cas() -> None:
    old = pki.create_ca("old", lifetime=DAY, now=NOW)
    new = pki.create_ca("new", lifetime=YEAR, now=NOW)
    both = pki.merge_trust_bundle(old.certificate_pem, new.certificate_pem, new.certificate_pem.decode(), "")
    assert pki.certificates_from_pem(both) == [old.certificate, new.certificate]
    later = pki.merge_trust_bundle(both, now=NOW + 2 * DAY)
    assert pki.certificates_from_pem(later) == [new.certificate]


def test_merge_refuses_leaves_and_an_all_expired_bundle(tenant_ca: pki.CertificateAuthority) -> None:
    leaf = pki.issue_server_certificate(tenant_ca, dns_names=["a.example"], lifetime=DAY, now=NOW)
    with pytest.raises(PKIError, match="not a CA"):
        pki.merge_trust_bundle(tenant_ca.certificate_pem, leaf.certificate_pem, now=NOW)
    with pytest.raises(PKIError, match="empty"):
        pki.merge_trust_bundle(tenant_ca.certificate_pem, now=NOW + 2 * YEAR)


class RotatingPool(RuleBasedStateMachine):
    """PKI-01: every unexpired leaf verifies against the bundle while CAs rotate and time passes."""

    ca_lifetime = dt.timedelta(days=30)
    rotate_before = dt.timedelta(days=10)

    @initialize()
    def start(self) -> None:
        self.now = NOW
        self.cas = [pki.create_ca("rotating CA", lifetime=self.ca_lifetime, now=self.now)]
        self.leaves: list[x509.Certificate] = []

    @rule(hours=st.integers(min_value=0, max_value=24 * 12))
    def advance(self, hours: int) -> None:
        self.now += dt.timedelta(hours=hours)
        current = self.cas[-1].certificate
        if pki.needs_renewal(current, rotate_before_expiry=self.rotate_before, now=self.now):
            self.cas.append(pki.create_ca("rotating CA", lifetime=self.ca_lifetime, now=self.now))

    @rule(hours=st.integers(min_value=1, max_value=24 * 40))
    def issue(self, hours: int) -> None:
        identity = AllocationIdentity(allocation_id=new_allocation_id(), pool="p", namespace="n")
        issued = pki.issue_allocation_certificate(
            self.cas[-1], identity, lifetime=dt.timedelta(hours=hours), now=self.now
        )
        self.leaves.append(issued.certificate)

    @invariant()
    def unexpired_leaves_verify(self) -> None:
        if not hasattr(self, "cas"):
            return
        bundle = pki.certificates_from_pem(
            pki.merge_trust_bundle(*(ca.certificate_pem for ca in self.cas), now=self.now)
        )
        assert len(bundle) <= 2, "at most the current and the previous CA are ever trusted"
        for leaf in self.leaves:
            if leaf.not_valid_after_utc >= self.now:
                pki.verify_certificate(leaf, bundle, purpose=Purpose.CLIENT, now=self.now)


TestRotatingPool = RotatingPool.TestCase
TestRotatingPool.settings = settings(max_examples=25, stateful_step_count=20, deadline=None)


# --- renewal ---------------------------------------------------------------------------------------


def test_renews_rotate_before_expiry_ahead_of_not_after(tenant_ca: pki.CertificateAuthority) -> None:
    cert = pki.issue_server_certificate(
        tenant_ca, dns_names=["a.example"], lifetime=dt.timedelta(days=90), now=NOW
    ).certificate
    due = cert.not_valid_after_utc - dt.timedelta(days=15)
    assert pki.renewal_time(cert, dt.timedelta(days=15)) == due
    assert not pki.needs_renewal(
        cert, rotate_before_expiry=dt.timedelta(days=15), now=due - dt.timedelta(seconds=1)
    )
    assert pki.needs_renewal(cert, rotate_before_expiry=dt.timedelta(days=15), now=due)


def test_short_certificates_renew_at_two_thirds_of_their_lifetime(
    tenant_ca: pki.CertificateAuthority,
) -> None:
    cert = pki.issue_server_certificate(
        tenant_ca, dns_names=["a.example"], lifetime=HOUR, now=NOW
    ).certificate
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    two_thirds = cert.not_valid_before_utc + lifetime * 2 / 3
    # rotateBeforeExpiry of 30 days on a one-hour certificate would renew it forever: 2/3 rule applies.
    assert pki.renewal_time(cert, dt.timedelta(days=30)) == two_thirds
    assert not pki.needs_renewal(cert, rotate_before_expiry=dt.timedelta(days=30), now=NOW)
    assert not pki.needs_renewal(
        cert, rotate_before_expiry=dt.timedelta(days=30), now=two_thirds - dt.timedelta(seconds=1)
    )
    assert pki.needs_renewal(cert, rotate_before_expiry=dt.timedelta(days=30), now=two_thirds)
    assert pki.renewal_time(cert, dt.timedelta(0)) == two_thirds, "no rotateBeforeExpiry means the default"


def test_rotate_before_expiry_applies_while_the_lifetime_is_at_least_three_times_it(
    tenant_ca: pki.CertificateAuthority,
) -> None:
    cert = pki.issue_server_certificate(
        tenant_ca, dns_names=["a.example"], lifetime=HOUR, now=NOW
    ).certificate
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc  # 61 minutes with the backdate
    rotate_before = dt.timedelta(minutes=20)
    assert lifetime >= 3 * rotate_before
    assert pki.renewal_time(cert, rotate_before) == cert.not_valid_after_utc - rotate_before


@settings(max_examples=200, deadline=None)
@given(
    lifetime=st.timedeltas(min_value=dt.timedelta(seconds=1), max_value=pki.MAX_CA_LIFETIME),
    rotate_before=st.timedeltas(min_value=-YEAR, max_value=20 * YEAR),
)
def test_renewal_time_always_falls_inside_the_validity(
    lifetime: dt.timedelta, rotate_before: dt.timedelta
) -> None:
    cert = pki.create_ca("renewal", lifetime=lifetime, now=NOW).certificate
    not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    when = pki.renewal_time(cert, rotate_before)
    lifetime_seen, tick = not_after - not_before, dt.timedelta(microseconds=1)
    assert not_before <= when <= not_after
    # Never earlier than 2/3 of the way through, so a certificate is not renewed as soon as it exists.
    assert when >= not_before + lifetime_seen * 2 / 3 - tick
    if rotate_before > dt.timedelta(0):
        assert when < not_after, "renewal happens before expiry, never at it"
        assert not_after - when <= rotate_before, "never earlier than rotate_before_expiry asks"


# --- PEM, fingerprints, serials --------------------------------------------------------------------


def test_pem_round_trips(tenant_ca: pki.CertificateAuthority) -> None:
    issued = pki.issue_server_certificate(tenant_ca, dns_names=["a.example"], lifetime=DAY, now=NOW)
    assert issued.certificate_pem.startswith(b"-----BEGIN CERTIFICATE-----")
    assert pki.certificate_from_pem(issued.certificate_pem.decode()) == issued.certificate
    key_pem = issued.private_key_pem
    assert key_pem is not None and key_pem.startswith(b"-----BEGIN PRIVATE KEY-----"), "PKCS#8"
    assert pki.private_key_from_pem(key_pem).public_key() == issued.certificate.public_key()


def test_certificate_from_pem_wants_exactly_one(tenant_ca: pki.CertificateAuthority) -> None:
    with pytest.raises(PKIError, match="found 2"):
        pki.certificate_from_pem(tenant_ca.certificate_pem * 2)
    with pytest.raises(PKIError, match="not a PEM certificate"):
        pki.certificate_from_pem("hello")


def test_fingerprint_and_serial_formats(
    tenant_ca: pki.CertificateAuthority, identity: AllocationIdentity
) -> None:
    cert = _allocation(tenant_ca, identity)
    fingerprint = pki.fingerprint_sha256(cert)
    assert fingerprint == hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    assert len(fingerprint) == 64 and fingerprint == fingerprint.lower() and ":" not in fingerprint
    assert int(pki.serial_decimal(cert)) == cert.serial_number == int(pki.serial_hex(cert), 16)
    assert pki.serial_hex(cert) == pki.serial_hex(cert).lower()
