"""CRDs on kubesim (the emulated API server): schema validation, defaulting, pruning, printer columns."""

from __future__ import annotations

import json

import aiohttp
import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.rest import ApiException

from kubesim import KubeSim

G, V, P = "example.com", "v1", "widgets"
# kubernetes_asyncio picks JSON patch for custom objects unless told (a real server then says 400).
MERGE = "application/merge-patch+json"


@pytest.fixture
async def custom(kubesim: KubeSim, widget_crd):
    async with client.ApiClient(client.Configuration(host=kubesim.url)) as api:
        await client.ApiextensionsV1Api(api).create_custom_resource_definition(widget_crd)
        yield client.CustomObjectsApi(api)


async def _invalid(custom, body: dict) -> dict:
    with pytest.raises(ApiException) as exc:
        await custom.create_namespaced_custom_object(G, V, "default", P, body)
    assert exc.value.status == 422
    status = json.loads(exc.value.body)
    assert status["reason"] == "Invalid"
    return status


async def test_wrong_type_is_422_naming_the_field(custom, widget):
    """Acceptance 2: a string where the schema says integer."""
    status = await _invalid(custom, widget("w", size="big"))
    assert "spec.size" in status["message"] and "integer" in status["message"]
    assert status["details"]["causes"][0]["field"] == "spec.size"


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"size": 0}, "spec.size"),
        ({"size": 11}, "spec.size"),
        ({"size": 1, "color": "green"}, "spec.color"),
        ({"size": 1, "name": "Bad Name"}, "spec.name"),
        ({"color": "red"}, "spec.size"),
        ({"size": 1, "ports": [{"protocol": "UDP"}]}, "spec.ports[0].port"),
        ({"size": 1, "ports": [{"port": "80"}]}, "spec.ports[0].port"),
    ],
)
async def test_schema_constraints(custom, widget, spec, field):
    status = await _invalid(custom, widget("w", **spec))
    assert field in status["message"]


async def test_defaults_and_pruning(custom, widget):
    """Defaults fill absent fields (also inside arrays); unknown fields vanish unless preserved."""
    body = widget("w", size=2, ports=[{"port": 80}], bogus=True, extra={"anything": {"goes": 1}})
    body["topLevelJunk"] = 1
    created = await custom.create_namespaced_custom_object(G, V, "default", P, body)
    assert created["spec"] == {
        "size": 2,
        "color": "red",
        "ports": [{"port": 80, "protocol": "TCP"}],
        "extra": {"anything": {"goes": 1}},
    }
    assert "topLevelJunk" not in created
    status = await custom.patch_namespaced_custom_object_status(
        G, V, "default", P, "w", {"status": {"phase": "Ready", "undeclared": "x"}}, _content_type=MERGE
    )
    assert status["status"] == {"phase": "Ready"}


async def test_strict_field_validation_refuses_unknown_custom_fields(custom, widget, kubesim: KubeSim):
    async with aiohttp.ClientSession() as http:
        url = f"{kubesim.url}/apis/{G}/{V}/namespaces/default/{P}?fieldValidation=Strict"
        async with http.post(url, json=widget("w", size=1, bogus=1)) as response:
            assert response.status == 400
            assert 'unknown field "spec.bogus"' in (await response.json())["message"]


async def test_status_subresource_split(custom, widget):
    await custom.create_namespaced_custom_object(G, V, "default", P, widget("s", size=1))
    main = await custom.patch_namespaced_custom_object(
        G, V, "default", P, "s", {"spec": {"size": 3}, "status": {"phase": "Nope"}}, _content_type=MERGE
    )
    assert main["spec"]["size"] == 3 and "status" not in main
    assert main["metadata"]["generation"] == 2
    status = await custom.patch_namespaced_custom_object_status(
        G, V, "default", P, "s", {"spec": {"size": 9}, "status": {"phase": "Up"}}, _content_type=MERGE
    )
    assert status["spec"]["size"] == 3 and status["status"]["phase"] == "Up"
    assert status["metadata"]["generation"] == 2, "status writes do not bump generation"
    labelled = await custom.patch_namespaced_custom_object(
        G, V, "default", P, "s", {"metadata": {"labels": {"a": "b"}}}, _content_type=MERGE
    )
    assert labelled["metadata"]["generation"] == 2, "metadata writes do not bump generation"


async def test_printer_columns_in_server_side_table(custom, widget, kubesim: KubeSim):
    await custom.create_namespaced_custom_object(G, V, "default", P, widget("t", size=4))
    await custom.patch_namespaced_custom_object_status(
        G,
        V,
        "default",
        P,
        "t",
        {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
        _content_type=MERGE,
    )
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{kubesim.url}/apis/{G}/{V}/namespaces/default/{P}", headers={"Accept": accept}) as resp,
    ):
        table = await resp.json()
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Size", "Ready", "Age"]
    assert table["rows"][0]["cells"][:3] == ["t", 4, "True"]
    assert table["rows"][0]["object"]["metadata"]["name"] == "t"


async def test_deleting_the_crd_removes_its_resources(custom, widget, kubesim: KubeSim):
    await custom.create_namespaced_custom_object(G, V, "default", P, widget("gone", size=1))
    async with client.ApiClient(client.Configuration(host=kubesim.url)) as api:
        await client.ApiextensionsV1Api(api).delete_custom_resource_definition("widgets.example.com")
    with pytest.raises(ApiException) as exc:
        await custom.list_namespaced_custom_object(G, V, "default", P)
    assert exc.value.status == 404
    assert kubesim.store.items("example.com/widgets") == []


async def test_crd_reports_established(kubesim: KubeSim, widget_crd):
    async with client.ApiClient(client.Configuration(host=kubesim.url)) as api:
        ext = client.ApiextensionsV1Api(api)
        await ext.create_custom_resource_definition(widget_crd)
        crd = await ext.read_custom_resource_definition("widgets.example.com")
    conditions = {c.type: c.status for c in crd.status.conditions}
    assert conditions["Established"] == "True"
    assert crd.status.accepted_names.kind == "Widget"


async def test_all_served_versions_share_storage(kubesim: KubeSim, widget_crd, widget):
    beta = {**widget_crd["spec"]["versions"][0], "name": "v1beta1", "storage": False}
    widget_crd["spec"]["versions"].append(beta)
    async with client.ApiClient(client.Configuration(host=kubesim.url)) as api:
        await client.ApiextensionsV1Api(api).create_custom_resource_definition(widget_crd)
        custom = client.CustomObjectsApi(api)
        await custom.create_namespaced_custom_object(G, V, "default", P, widget("both", size=1))
        seen = await custom.get_namespaced_custom_object(G, "v1beta1", "default", P, "both")
        groups = await client.ApisApi(api).get_api_versions()
    assert seen["apiVersion"] == "example.com/v1beta1" and seen["spec"]["size"] == 1
    group = next(g for g in groups.groups if g.name == G)
    assert [v.version for v in group.versions] == ["v1", "v1beta1"]
    assert group.preferred_version.version == "v1"
