"""ServiceAccount tokens issued and reviewed by kubesim (the emulated API server), via the official client."""

from __future__ import annotations

import time

from joserfc import jwt
from joserfc.jwk import ECKey
from kubernetes.client import AuthenticationV1Api, CoreV1Api


def _issue(api_client, namespace: str, name: str, audience: str) -> str:
    core = CoreV1Api(api_client)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    request = {"spec": {"audiences": [audience], "expirationSeconds": 600}}
    issued = core.create_namespaced_service_account_token(name, namespace, request)
    assert issued.status.expiration_timestamp is not None
    return issued.status.token


def _review(api_client, token: str, audiences: list[str]):
    review = {"spec": {"token": token, "audiences": audiences}}
    return AuthenticationV1Api(api_client).create_token_review(review).status


def test_token_review_authenticates_issued_token_for_its_audience(api_client, namespace):
    """Acceptance 4: the reviewer learns the ServiceAccount's username and the matched audience."""
    token = _issue(api_client, namespace, "builder", "buildkit-gateway")
    status = _review(api_client, token, ["buildkit-gateway"])
    assert status.authenticated is True
    assert status.user.username == f"system:serviceaccount:{namespace}:builder"
    assert status.audiences == ["buildkit-gateway"]
    assert f"system:serviceaccounts:{namespace}" in status.user.groups
    account = CoreV1Api(api_client).read_namespaced_service_account("builder", namespace)
    assert status.user.uid == account.metadata.uid


def test_other_audience_and_forged_tokens_are_unauthenticated(api_client, namespace):
    token = _issue(api_client, namespace, "other", "buildkit-gateway")
    assert not _review(api_client, token, ["something-else"]).authenticated
    forged = jwt.encode(
        {"alg": "ES256"},
        {
            "iss": "https://kubernetes.default.svc.cluster.local",
            "aud": ["buildkit-gateway"],
            "sub": f"system:serviceaccount:{namespace}:other",
            "exp": int(time.time()) + 600,
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": "other", "uid": "x"}},
        },
        ECKey.generate_key("P-256"),
    )
    assert not _review(api_client, forged, ["buildkit-gateway"]).authenticated
    assert not _review(api_client, token[:-4] + "AAAA", ["buildkit-gateway"]).authenticated


def test_token_of_deleted_service_account_is_rejected(api_client, namespace):
    token = _issue(api_client, namespace, "temp", "aud")
    CoreV1Api(api_client).delete_namespaced_service_account("temp", namespace)
    assert not _review(api_client, token, ["aud"]).authenticated
