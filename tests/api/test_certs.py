"""``POST /api/v1/certs/request`` and ``POST /api/v1/workers/lookup`` through the Quart test client.

The TLS layer is stood in for by the ASGI TLS extension in the request scope, exactly what
``controller/api/tls.py`` fills in after OpenSSL verified the certificate (real TLS: test_tls.py).
"""

from __future__ import annotations

import base64
import json
import ssl
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from buildkit_controller.controller.api.certs import certificate_lifetime
from buildkit_controller.controller.api.identity import IDENTITY_CA_SECRET
from buildkit_controller.controller.manifests.names import API_VERSION
from buildkit_controller.controller.manifests.pool import WORKER_CA_KEY, pool_config_map
from buildkit_controller.controller.manifests.secrets import secret_text
from buildkit_controller.core import pki
from buildkit_controller.core.errors import AuthenticationError, CertificateVerificationError
from buildkit_controller.core.identity import issue_identity_certificate, plan_identity_ca, read_identity
from buildkit_controller.core.models import Pool

from .conftest import Cluster

CERTS = "/api/v1/certs/request"
LOOKUP = "/api/v1/workers/lookup"


def tls_scope(pem: str | bytes | None) -> dict[str, Any]:
    """The scope a TLS connection with this verified client certificate produces."""
    text = pem.decode() if isinstance(pem, bytes) else pem
    chain = [ssl.DER_cert_to_PEM_cert(ssl.PEM_cert_to_DER_cert(text))] if text else []
    return {"extensions": {"tls": {"client_cert_chain": chain}}}


async def publish_worker_ca(cluster: Cluster, pool: Pool, bundle: str | None = None) -> None:
    """What the operator does: the pool's ConfigMap with its worker CA's certificates (``bundle.crt``)."""
    if bundle is None:
        bundle = secret_text(await cluster.kube.get("v1", "Secret", f"{pool.name}-worker-ca", pool.namespace))[
            "bundle.crt"]
    await cluster.kube.create(pool_config_map(pool, "# buildkitd.toml\n", worker_ca=bundle))


class KubeCalls:
    """Records the (verb, kind, name) of every get and list a Kube object makes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, kube: Any) -> None:
        self.calls: list[tuple[str, str, str | None]] = []
        get, listing = kube.get, kube.list

        async def spy_get(api_version: str, kind: str, name: str, namespace: str | None) -> Any:
            self.calls.append(("get", kind, name))
            return await get(api_version, kind, name, namespace)

        async def spy_list(api_version: str, kind: str, namespace: str | None, labels: Any = None) -> Any:
            self.calls.append(("list", kind, namespace))
            return await listing(api_version, kind, namespace, labels)

        monkeypatch.setattr(kube, "get", spy_get)
        monkeypatch.setattr(kube, "list", spy_list)

    def secrets(self) -> list[tuple[str, str, str | None]]:
        return [call for call in self.calls if call[1] == "Secret"]


async def request_cert(client: Any, headers: dict[str, str], **body: Any) -> Any:
    return await client.post(CERTS, json={"pools": ["builds"], **body}, headers=headers)


async def test_identity_certificate_is_issued_seed_style(cluster: Cluster, client: Any) -> None:
    await cluster.pool()
    response = await request_cert(client, cluster.token("ci-bot"), duration="30m")
    assert response.status_code == 200, await response.get_data()
    assert response.headers["Cache-Control"] == "no-store"
    answer = await response.get_json()
    assert answer["endpoints"] == {"builds": "tcp://builds.default.svc:1235"}
    assert answer["clientKey"].startswith("-----BEGIN PRIVATE KEY-----")  # raw PEM, as the seed
    certificate = x509.load_pem_x509_certificate(answer["clientCert"].encode())
    bundle = pki.certificates_from_pem(answer["caCert"])
    pki.verify_certificate(certificate, bundle, purpose=pki.Purpose.CLIENT)
    found = read_identity(certificate)
    assert (found.subject, found.pools) == ("ci-bot", ("default/builds",))
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert lifetime == timedelta(minutes=31)  # 30m + the 60 s backdate
    # Nothing about the certificate is stored: only the identity CA Secret exists.
    secret = await cluster.kube.get("v1", "Secret", IDENTITY_CA_SECRET, "buildkit-system")
    assert answer["clientCert"] not in str(secret_text(secret))
    assert answer["clientKey"] not in str(secret_text(secret))


async def test_the_identity_ca_is_not_any_pool_tenant_ca(cluster: Cluster, client: Any) -> None:
    await cluster.pool()
    answer = await (await request_cert(client, cluster.token("ci-bot"))).get_json()
    tenant = secret_text(await cluster.kube.get("v1", "Secret", "builds-tenant-ca", "default"))
    certificate = x509.load_pem_x509_certificate(answer["clientCert"].encode())
    with pytest.raises(CertificateVerificationError, match="unknown issuer"):
        pki.verify_certificate(certificate, pki.certificates_from_pem(tenant["bundle.crt"]),
                               purpose=pki.Purpose.CLIENT)


async def test_lifetime_is_capped_by_the_pools_max_token_ttl(cluster: Cluster, client: Any) -> None:
    await cluster.pool(gateway={"tokenTTL": "10m", "maxTokenTTL": "2h"})
    await cluster.pool("other", namespace="ci")
    capped = await (await request_cert(client, cluster.token("ci-bot"), pools=["builds", "ci/other"],
                                       duration="100h")).get_json()
    certificate = x509.load_pem_x509_certificate(capped["clientCert"].encode())
    assert certificate.not_valid_after_utc - certificate.not_valid_before_utc == timedelta(hours=2, minutes=1)
    assert capped["pools"] == ["ci/other", "default/builds"]
    default = await (await request_cert(client, cluster.token("ci-bot"))).get_json()
    certificate = x509.load_pem_x509_certificate(default["clientCert"].encode())
    assert certificate.not_valid_after_utc - certificate.not_valid_before_utc == timedelta(minutes=11)


def test_certificate_lifetime_rule() -> None:
    from buildkit_controller.core.testing import make_pool

    pools = [make_pool({"gateway": {"maxTokenTTL": "3h"}}), make_pool({"gateway": {"tokenTTL": "5m"}})]
    assert certificate_lifetime(pools, None) == timedelta(minutes=5)
    assert certificate_lifetime(pools, timedelta(hours=9)) == timedelta(hours=3)
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    hour = now + timedelta(hours=1)
    assert certificate_lifetime(pools, timedelta(hours=9), now=now, until=hour) == timedelta(hours=1)
    assert certificate_lifetime(pools, None, now=now, until=hour) == timedelta(minutes=5)
    with pytest.raises(AuthenticationError, match="expired"):
        certificate_lifetime(pools, None, now=now, until=now)


async def service_account_token(cluster: Cluster, seconds: int = 600) -> str:
    """A bound ServiceAccount token for the API's audience, minted by kubesim's TokenRequest."""
    await cluster.kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ci"}})
    await cluster.kube.create({"apiVersion": "v1", "kind": "ServiceAccount",
                               "metadata": {"name": "builder", "namespace": "ci"}})
    answer = await cluster.kube.request("POST", "/api/v1/namespaces/ci/serviceaccounts/builder/token", {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"audiences": ["buildkit-controller"], "expirationSeconds": seconds}})
    return str(answer["status"]["token"])


async def test_an_identity_certificate_never_outlives_the_token_it_came_from(cluster: Cluster, client: Any) -> None:
    await cluster.pool(gateway={"maxTokenTTL": "24h"})
    token = await service_account_token(cluster)
    part = token.split(".")[1]
    expiry = datetime.fromtimestamp(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))["exp"], UTC)
    response = await client.post(CERTS, json={"pools": ["builds"], "duration": "2h"},
                                 headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, await response.get_data()
    answer = await response.get_json()
    certificate = x509.load_pem_x509_certificate(answer["clientCert"].encode())
    assert certificate.not_valid_after_utc == expiry  # not 2 h: the token expires in 10 minutes
    assert answer["expiresAt"] == expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert read_identity(certificate).subject == "system:serviceaccount:ci:builder"


async def test_identity_certificates_only_for_and_at_pools_that_accept_mtls(cluster: Cluster, client: Any) -> None:
    await cluster.pool("tokens-only", auth={"methods": ["token"]})
    await cluster.pool("both", auth={"methods": ["token", "mtls"]})
    refused = await request_cert(client, cluster.token("ci-bot"), pools=["both", "tokens-only"])
    assert refused.status_code == 403
    assert "default/tokens-only does not accept identity certificates" in (await refused.get_json())["message"]
    scope = tls_scope((await issue(client, cluster, pools=["both"]))["clientCert"])
    assert (await client.get("/api/v1/pools/default/both", scope_base=scope)).status_code == 200
    await cluster.kube.patch(API_VERSION, "BuildKitPool", "both", "default", {"spec": {"auth": {"methods": ["token"]}}})
    used = await client.get("/api/v1/pools/default/both", scope_base=scope)  # minted before the pool changed
    assert used.status_code == 403 and "does not accept mtls" in (await used.get_json())["message"]


@pytest.mark.parametrize(("body", "field"), [
    ({"pools": []}, "body.pools"), ({"pools": ["Bad_Name"]}, "body.pools[0]"),
    ({"pools": ["builds"], "duration": "forever"}, "body.duration"),
    ({"pools": ["builds"], "duration": "0"}, "body.duration"),
    ({"pools": ["builds"], "duration": "10s"}, "body.duration"),
    ({"pools": ["builds"], "csr": "not a csr"}, None), ({}, "body.pools")])
async def test_bad_requests_get_400(cluster: Cluster, client: Any, body: dict[str, Any], field: str | None) -> None:
    await cluster.pool()
    response = await client.post(CERTS, json=body, headers=cluster.token("ci-bot"))
    assert response.status_code == 400, await response.get_data()
    if field:
        assert (await response.get_json())["message"].startswith(field)


async def test_rbac_unknown_and_ambiguous_pools(cluster: Cluster, client: Any) -> None:
    await cluster.pool("closed", auth={"rbac": {"rules": [{"users": ["admin"], "pools": ["*"]}]}})
    await cluster.pool("twin", namespace="a")
    await cluster.pool("twin", namespace="b")
    headers = cluster.token("ci-bot")
    assert (await request_cert(client, headers, pools=["closed"])).status_code == 403
    assert (await request_cert(client, headers, pools=["nope"])).status_code == 404
    assert (await request_cert(client, headers, pools=["twin"])).status_code == 400
    assert (await request_cert(client, headers, pools=["a/twin"])).status_code == 200
    assert (await request_cert(client, cluster.token("admin"), pools=["closed"])).status_code == 200
    assert (await client.post(CERTS, json={"pools": ["a/twin"]})).status_code == 401


async def test_a_csr_is_signed_and_no_key_is_returned(cluster: Cluster, client: Any) -> None:
    await cluster.pool()
    private = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "admin")]))
           .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
           .sign(private, hashes.SHA256()))
    response = await request_cert(client, cluster.token("ci-bot"), csr=csr.public_bytes(Encoding.PEM).decode())
    answer = await response.get_json()
    assert response.status_code == 200 and "clientKey" not in answer
    certificate = x509.load_pem_x509_certificate(answer["clientCert"].encode())
    assert certificate.public_key() == private.public_key()
    assert not certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert read_identity(certificate).subject == "ci-bot"  # the CSR's CN is ignored


async def issue(client: Any, cluster: Cluster, subject: str = "ci-bot", **body: Any) -> dict[str, Any]:
    response = await request_cert(client, cluster.token(subject), **body)
    assert response.status_code == 200, await response.get_data()
    return await response.get_json()  # type: ignore[no-any-return]


async def test_identity_certificate_authenticates_within_its_pools(cluster: Cluster, client: Any) -> None:
    pool = await cluster.pool()
    await cluster.pool("elsewhere")
    await cluster.idle_workers(pool, 1)
    scope = tls_scope((await issue(client, cluster))["clientCert"])
    allowed = await client.post("/api/v1/workers/allocate", json={"poolName": "builds"}, scope_base=scope)
    assert allowed.status_code == 200, await allowed.get_data()
    outside = await client.post("/api/v1/workers/allocate", json={"poolName": "elsewhere"}, scope_base=scope)
    assert outside.status_code == 403
    listed = await (await client.get("/api/v1/pools", scope_base=scope)).get_json()
    assert [p["name"] for p in listed["pools"]] == ["builds"]
    # An identity certificate cannot mint another (its lifetime cap would mean nothing).
    again = await client.post(CERTS, json={"pools": ["builds"]}, scope_base=scope)
    assert again.status_code == 403


async def seed_identity_ca(cluster: Cluster, age: timedelta) -> pki.CertificateAuthority:
    """An identity CA made ``age`` ago, stored where the API keeps it."""
    data, _ = plan_identity_ca({}, datetime.now(UTC) - age)
    await cluster.kube.create({"apiVersion": "v1", "kind": "Secret", "metadata": {
        "name": IDENTITY_CA_SECRET, "namespace": "buildkit-system"},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}})
    return pki.load_ca(data["ca.crt"], data["ca.key"])


async def test_expired_or_foreign_certificates_get_401(cluster: Cluster, client: Any) -> None:
    await cluster.pool()
    ca = await seed_identity_ca(cluster, timedelta(days=1))
    await issue(client, cluster)  # the API loads the seeded CA
    stale = issue_identity_certificate(ca, subject="ci-bot", pools=["default/builds"], lifetime=timedelta(hours=1),
                                       now=datetime.now(UTC) - timedelta(hours=3))
    stranger = pki.create_ca("stranger", lifetime=timedelta(days=1))
    foreign = issue_identity_certificate(stranger, subject="ci-bot", pools=["default/builds"],
                                         lifetime=timedelta(hours=1))
    for certificate, reason in ((stale, "expired"), (foreign, "unknown-issuer")):
        response = await client.get("/api/v1/pools", scope_base=tls_scope(certificate.certificate_pem))
        assert response.status_code == 401, await response.get_data()
        assert reason in (await response.get_json())["message"]


async def test_lookup_is_for_the_pool_gateway_only(cluster: Cluster, client: Any) -> None:
    pool = await cluster.pool()
    other = await cluster.pool("other")
    await publish_worker_ca(cluster, pool)
    await publish_worker_ca(cluster, other)
    await cluster.idle_workers(pool, 1)
    allocated = await (await client.post("/api/v1/workers/allocate", json={"poolName": "builds"},
                                         headers=cluster.token("ci-bot"))).get_json()
    body = {"token": allocated["token"]}
    gateway = secret_text(await cluster.kube.get("v1", "Secret", "builds-gateway-worker-client", "default"))
    found = await client.post(LOOKUP, json=body, scope_base=tls_scope(gateway["tls.crt"]))
    assert found.status_code == 200, await found.get_data()
    assert await found.get_json() == {"workerEndpoint": "tcp://127.0.9.1:1234",
                                      "workerName": allocated["workerName"], "poolName": "builds"}
    unknown = await client.post(LOOKUP, json={"token": allocated["token"][:-2] + "xx"},
                                scope_base=tls_scope(gateway["tls.crt"]))
    assert unknown.status_code == 404
    foreign = secret_text(await cluster.kube.get("v1", "Secret", "other-gateway-worker-client", other.namespace))
    assert (await client.post(LOOKUP, json=body, scope_base=tls_scope(foreign["tls.crt"]))).status_code == 404
    assert (await client.post(LOOKUP, json=body, headers=cluster.token("ci-bot"))).status_code == 401
    identity = (await issue(client, cluster))["clientCert"]
    assert (await client.post(LOOKUP, json=body, scope_base=tls_scope(identity))).status_code == 403


async def test_lookup_checks_the_published_worker_ca_and_reads_no_ca_secret(
        cluster: Cluster, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    pool = await cluster.pool()
    await cluster.idle_workers(pool, 1)
    allocated = await (await client.post("/api/v1/workers/allocate", json={"poolName": "builds"},
                                         headers=cluster.token("ci-bot"))).get_json()
    gateway = secret_text(await cluster.kube.get("v1", "Secret", "builds-gateway-worker-client", "default"))
    worker_ca = secret_text(await cluster.kube.get("v1", "Secret", "builds-worker-ca", "default"))["bundle.crt"]
    ask = {"json": {"token": allocated["token"]}, "scope_base": tls_scope(gateway["tls.crt"])}
    spy = KubeCalls(monkeypatch, cluster.kube)
    refused = await client.post(LOOKUP, **ask)  # the operator has not published the worker CA yet
    assert refused.status_code == 401 and "unknown-issuer" in (await refused.get_json())["message"]
    await publish_worker_ca(cluster, pool, bundle="garbage")
    assert (await client.post(LOOKUP, **ask)).status_code == 401
    await cluster.kube.delete("v1", "ConfigMap", "builds-config", "default")
    await publish_worker_ca(cluster, pool, worker_ca)
    found = await client.post(LOOKUP, **ask)
    assert found.status_code == 200, await found.get_data()
    assert ("get", "ConfigMap", "builds-config") in spy.calls
    assert spy.secrets() == []  # neither the worker CA Secret nor any other


def test_the_published_key_is_the_operators() -> None:
    assert WORKER_CA_KEY == "worker-ca.crt"


async def test_lookup_of_a_worker_without_an_endpoint_is_a_404(cluster: Cluster, client: Any) -> None:
    pool = await cluster.pool()
    await publish_worker_ca(cluster, pool)
    await cluster.idle_workers(pool, 1)
    allocated = await (await client.post("/api/v1/workers/allocate", json={"poolName": "builds"},
                                         headers=cluster.token("ci-bot"))).get_json()
    gateway = secret_text(await cluster.kube.get("v1", "Secret", "builds-gateway-worker-client", "default"))
    await cluster.kube.patch(API_VERSION, "BuildKitWorker", allocated["workerName"], "default",
                             {"status": {"endpoint": None}}, status=True)  # its pod went away
    response = await client.post(LOOKUP, json={"token": allocated["token"]}, scope_base=tls_scope(gateway["tls.crt"]))
    assert response.status_code == 404, await response.get_data()
    assert "no endpoint yet" in (await response.get_json())["message"]
