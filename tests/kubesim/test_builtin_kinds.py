"""Every built-in kind kubesim (the emulated API server) serves: discovery, CRUD and strict fields."""

from __future__ import annotations

import aiohttp
import pytest

from kubesim import KubeSim

_LABELS = {"app": "x"}
_TEMPLATE = {"metadata": {"labels": _LABELS}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
KINDS = [
    ("/api/v1", "pods", "Pod", {"spec": {"containers": [{"name": "c", "image": "i"}]}}),
    ("/api/v1", "services", "Service", {"spec": {"ports": [{"port": 80}]}}),
    ("/api/v1", "endpoints", "Endpoints", {"subsets": [{"addresses": [{"ip": "127.0.0.2"}]}]}),
    ("/api/v1", "secrets", "Secret", {"data": {"k": "dg=="}}),
    ("/api/v1", "configmaps", "ConfigMap", {"data": {"k": "v"}}),
    ("/api/v1", "serviceaccounts", "ServiceAccount", {}),
    ("/api/v1", "events", "Event", {"involvedObject": {"kind": "Pod", "name": "p"}, "reason": "R"}),
    (
        "/apis/apps/v1",
        "deployments",
        "Deployment",
        {"spec": {"selector": {"matchLabels": _LABELS}, "template": _TEMPLATE}},
    ),
    (
        "/apis/apps/v1",
        "replicasets",
        "ReplicaSet",
        {"spec": {"selector": {"matchLabels": _LABELS}, "template": _TEMPLATE}},
    ),
    ("/apis/coordination.k8s.io/v1", "leases", "Lease", {"spec": {"holderIdentity": "me"}}),
    ("/apis/policy/v1", "poddisruptionbudgets", "PodDisruptionBudget", {"spec": {"minAvailable": 1}}),
    ("/apis/networking.k8s.io/v1", "networkpolicies", "NetworkPolicy", {"spec": {"podSelector": {}}}),
]


@pytest.mark.parametrize(("prefix", "plural", "kind", "body"), KINDS, ids=[k[1] for k in KINDS])
async def test_builtin_kind_roundtrip(kubesim: KubeSim, prefix, plural, kind, body):
    base = f"{kubesim.url}{prefix}/namespaces/default/{plural}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{kubesim.url}{prefix}") as response:
            names = [r["name"] for r in (await response.json())["resources"]]
        assert plural in names
        async with http.post(base, json={"metadata": {"name": "x"}, **body}) as response:
            assert response.status == 201, await response.text()
            created = await response.json()
        assert created["kind"] == kind and created["metadata"]["namespace"] == "default"
        async with http.get(base) as response:
            listed = await response.json()
        assert listed["kind"] == f"{kind}List" and "x" in [i["metadata"]["name"] for i in listed["items"]]
        async with http.post(base, json={"metadata": {"name": "y"}, "bogus": 1, **body}) as response:
            assert response.status == 400
            assert 'unknown field "bogus"' in (await response.json())["message"]
        # gracePeriodSeconds=0: a pod bound by the kubelet would otherwise linger while it terminates
        async with http.delete(f"{base}/x", params={"gracePeriodSeconds": "0"}) as response:
            assert response.status == 200
        async with http.get(f"{base}/x") as response:
            assert response.status == 404
            status = await response.json()
        assert (status["kind"], status["reason"], status["code"]) == ("Status", "NotFound", 404)


async def test_protobuf_bodies_are_refused_with_415(kubesim: KubeSim):
    """kubectl's imperative `create configmap` sends protobuf; kubesim speaks JSON and YAML only."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{kubesim.url}/api/v1/namespaces/default/configmaps",
            data=b"k8s\x00",
            headers={"Content-Type": "application/vnd.kubernetes.protobuf"},
        ) as response,
    ):
        assert response.status == 415


async def test_openapi_v3_advertises_field_validation(kubesim: KubeSim):
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{kubesim.url}/openapi/v3") as response:
            root = await response.json()
        async with http.get(kubesim.url + root["paths"]["apis/apps/v1"]["serverRelativeURL"]) as response:
            doc = await response.json()
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"]["kind"] == "Deployment"
    assert {"name": "fieldValidation", "in": "query"}.items() <= patch["parameters"][0].items()


@pytest.mark.parametrize(
    ("metadata", "status", "text"),
    [
        ({"name": "Upper"}, 422, "RFC 1123 subdomain"),
        ({"name": "ok", "labels": {"k": "v" * 64}}, 422, "no more than 63 characters"),
        ({"name": "ok", "labels": {"bad key!": "v"}}, 422, "name part must consist"),
        ({"name": "ok", "resourceVersion": "5"}, 400, "resourceVersion should not be set"),
        ({}, 422, "name or generateName is required"),
    ],
)
async def test_metadata_validation(kubesim: KubeSim, metadata, status, text):
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{kubesim.url}/api/v1/namespaces/default/configmaps", json={"metadata": metadata}
        ) as response,
    ):
        assert response.status == status
        assert text in (await response.json())["message"]


async def test_field_validation_warn_drops_unknown_fields_with_a_warning(kubesim: KubeSim):
    url = f"{kubesim.url}/api/v1/namespaces/default/configmaps?fieldValidation=Warn"
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, json={"metadata": {"name": "w"}, "data": {}, "bogus": 1}) as response,
    ):
        assert response.status == 201
        assert "bogus" not in await response.json()
        assert response.headers.getall("Warning") == ['299 - "unknown field \\"bogus\\""']


@pytest.mark.parametrize(
    ("path", "body", "patch", "field"),
    [
        (
            "pods",
            {"spec": {"containers": [{"name": "c", "image": "i"}]}},
            {"spec": {"restartPolicy": "Never"}},
            "spec",
        ),
        ("configmaps", {"immutable": True, "data": {"k": "v"}}, {"data": {"k": "w"}}, "data"),
        (
            "services",
            {"spec": {"ports": [{"port": 80}]}},
            {"spec": {"clusterIP": "10.96.9.9"}},
            "spec.clusterIPs[0]",
        ),
    ],
)
async def test_immutable_fields_are_422(kubesim: KubeSim, path, body, patch, field):
    base = f"{kubesim.url}/api/v1/namespaces/default/{path}"
    merge = {"Content-Type": "application/merge-patch+json"}
    async with aiohttp.ClientSession() as http:
        async with http.post(base, json={"metadata": {"name": "m"}, **body}) as response:
            assert response.status == 201
        async with http.patch(f"{base}/m", json=patch, headers=merge) as response:
            assert response.status == 422
            assert (await response.json())["details"]["causes"][0]["field"] == field
        async with http.patch(f"{base}/m", json={"metadata": {"labels": {"ok": "yes"}}}, headers=merge) as r:
            assert r.status == 200, "metadata stays writable"
