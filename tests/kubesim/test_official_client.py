"""The official ``kubernetes`` client against kubesim (the emulated API server), over verified HTTPS."""

from __future__ import annotations

import json
import threading

import kubernetes
import pytest
from kubernetes.client import AppsV1Api, CoreV1Api
from kubernetes.client.rest import ApiException


def _cm(name: str, labels: dict[str, str] | None = None, **data: str) -> dict:
    return {"metadata": {"name": name, "labels": labels or {}}, "data": data}


def test_crud_fills_server_metadata(api_client, namespace):
    """Create answers 201 with uid, resourceVersion, creationTimestamp and the URL's namespace."""
    core = CoreV1Api(api_client)
    created = core.create_namespaced_config_map(namespace, _cm("a", k="v"))
    assert created.metadata.namespace == namespace
    assert created.metadata.uid and int(created.metadata.resource_version) > 0
    assert created.metadata.creation_timestamp is not None
    assert core.read_namespaced_config_map("a", namespace).data == {"k": "v"}
    gen = core.create_namespaced_config_map(namespace, {"metadata": {"generateName": "gen-"}})
    assert gen.metadata.name.startswith("gen-") and len(gen.metadata.name) > 4
    core.delete_namespaced_config_map("a", namespace)
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("a", namespace)
    assert missing.value.status == 404
    assert json.loads(missing.value.body)["reason"] == "NotFound"


def test_duplicate_create_is_409_already_exists(api_client, namespace):
    core = CoreV1Api(api_client)
    core.create_namespaced_config_map(namespace, _cm("dup"))
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map(namespace, _cm("dup"))
    assert exc.value.status == 409
    assert json.loads(exc.value.body)["reason"] == "AlreadyExists"


def test_stale_put_is_409_conflict(api_client, namespace):
    """Acceptance 3: PUT with an old resourceVersion is refused; with the current one it succeeds."""
    core = CoreV1Api(api_client)
    first = core.create_namespaced_config_map(namespace, _cm("c", k="1"))
    first.data = {"k": "2"}
    second = core.replace_namespaced_config_map("c", namespace, first)
    assert int(second.metadata.resource_version) > int(first.metadata.resource_version)
    first.data = {"k": "3"}  # still carries the first resourceVersion
    with pytest.raises(ApiException) as exc:
        core.replace_namespaced_config_map("c", namespace, first)
    assert exc.value.status == 409
    assert json.loads(exc.value.body)["reason"] == "Conflict"
    assert core.read_namespaced_config_map("c", namespace).data == {"k": "2"}


def test_patch_types(api_client, namespace):
    """Merge patch deletes with null, JSON patch applies ops, a failing ``test`` op is 422."""
    core = CoreV1Api(api_client)
    core.create_namespaced_config_map(namespace, _cm("p", a="1", b="2"))
    patched = core.patch_namespaced_config_map("p", namespace, {"data": {"a": None, "c": "3"}})
    assert patched.data == {"b": "2", "c": "3"}
    api_client.set_default_header("Content-Type", "application/json-patch+json")
    try:
        patched = core.patch_namespaced_config_map(
            "p", namespace, [{"op": "add", "path": "/data/d", "value": "4"}]
        )
        assert patched.data["d"] == "4"
        with pytest.raises(ApiException) as exc:
            core.patch_namespaced_config_map(
                "p",
                namespace,
                [
                    {"op": "test", "path": "/data/b", "value": "wrong"},
                    {"op": "replace", "path": "/data/b", "value": "x"},
                ],
            )
        assert exc.value.status == 422
        assert json.loads(exc.value.body)["reason"] == "Invalid"
    finally:
        api_client.default_headers.pop("Content-Type")
    assert core.read_namespaced_config_map("p", namespace).data["b"] == "2"


def test_strategic_merge_patch_merges_containers_by_name(api_client, namespace):
    apps = AppsV1Api(api_client)
    labels = {"app": "web"}
    apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]},
                },
            },
        },
    )
    api_client.set_default_header("Content-Type", "application/strategic-merge-patch+json")
    try:
        patched = apps.patch_namespaced_deployment(
            "web",
            namespace,
            {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "b:2"}]}}}},
        )
    finally:
        api_client.default_headers.pop("Content-Type")
    images = {c.name: c.image for c in patched.spec.template.spec.containers}
    assert images == {"a": "a:1", "b": "b:2"}
    assert patched.metadata.generation == 2


def test_label_and_field_selectors_and_pagination(api_client, namespace):
    core = CoreV1Api(api_client)
    for i, tier in enumerate(["gold", "gold", "silver", "bronze"]):
        core.create_namespaced_config_map(
            namespace, _cm(f"s{i}", {"tier": tier, **({"x": "1"} if i else {})})
        )

    def names(**kw):
        return sorted(i.metadata.name for i in core.list_namespaced_config_map(namespace, **kw).items)

    assert names(label_selector="tier=gold") == ["s0", "s1"]
    assert names(label_selector="tier==gold,x") == ["s1"]
    # != and notin also match objects without the label, such as every namespace's kube-root-ca.crt
    assert names(label_selector="tier!=gold") == ["kube-root-ca.crt", "s2", "s3"]
    assert names(label_selector="tier in (silver, bronze)") == ["s2", "s3"]
    assert names(label_selector="tier notin (silver,bronze),!x") == ["kube-root-ca.crt", "s0"]
    assert names(field_selector="metadata.name=s2") == ["s2"]
    # every namespace also holds the kube-root-ca.crt ConfigMap, as on a real cluster
    assert names(field_selector="metadata.name!=s2") == ["kube-root-ca.crt", "s0", "s1", "s3"]
    page = core.list_namespaced_config_map(namespace, limit=3, label_selector="tier")
    assert len(page.items) == 3 and page.metadata._continue and page.metadata.remaining_item_count == 1
    rest = core.list_namespaced_config_map(
        namespace, limit=3, label_selector="tier", _continue=page.metadata._continue
    )
    assert [i.metadata.name for i in page.items + rest.items] == ["s0", "s1", "s2", "s3"]
    assert not rest.metadata._continue


def test_watch_from_resource_version_and_timeout(api_client, namespace):
    """Watch replays what happened after the given version, then ends at timeoutSeconds."""
    core = CoreV1Api(api_client)
    start = core.list_namespaced_config_map(namespace).metadata.resource_version
    core.create_namespaced_config_map(namespace, _cm("w"))
    core.patch_namespaced_config_map("w", namespace, {"data": {"k": "v"}})
    core.delete_namespaced_config_map("w", namespace)
    seen = [
        (e["type"], e["object"].metadata.name)
        for e in kubernetes.watch.Watch().stream(
            core.list_namespaced_config_map, namespace, resource_version=start, timeout_seconds=1
        )
    ]
    assert seen == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]


def test_watch_from_expired_version_is_410_and_relist_recovers(api_client, namespace, kubesim_proc):
    core = CoreV1Api(api_client)
    old = core.create_namespaced_config_map(namespace, _cm("e")).metadata.resource_version
    core.patch_namespaced_config_map("e", namespace, {"data": {"k": "v"}})
    kubesim_proc.admin("/kubesim/history/expire")
    with pytest.raises(ApiException) as exc:
        list(
            kubernetes.watch.Watch().stream(
                core.list_namespaced_config_map, namespace, resource_version=old, timeout_seconds=1
            )
        )
    assert exc.value.status == 410
    fresh = core.list_namespaced_config_map(namespace, field_selector="metadata.name=e")
    assert [i.data for i in fresh.items] == [{"k": "v"}]
    events = []
    watcher = kubernetes.watch.Watch()

    def consume():
        for event in watcher.stream(
            core.list_namespaced_config_map,
            namespace,
            resource_version=fresh.metadata.resource_version,
            timeout_seconds=2,
        ):
            events.append(event["type"])
            watcher.stop()

    thread = threading.Thread(target=consume)
    thread.start()
    core.patch_namespaced_config_map("e", namespace, {"data": {"k": "w"}})
    thread.join(5)
    assert events == ["MODIFIED"]


def test_http_admin_faults_fail_next_requests(api_client, namespace, kubesim_proc):
    """Faults injected over HTTP hit the next matching requests only."""
    core = CoreV1Api(api_client)
    rule = kubesim_proc.admin(
        "/kubesim/faults",
        {"verb": "create", "resource": "configmaps", "status": 500, "count": 2},
    )
    assert rule["count"] == 2
    for _ in range(2):
        with pytest.raises(ApiException) as exc:
            core.create_namespaced_config_map(namespace, _cm("f"))
        assert exc.value.status == 500
    assert core.create_namespaced_config_map(namespace, _cm("f")).metadata.name == "f"
    # urllib3 under the official client retries a 429 that carries Retry-After, transparently.
    kubesim_proc.admin(
        "/kubesim/faults",
        {"verb": "get", "resource": "configmaps", "status": 429, "retry_after": 0},
    )
    assert core.read_namespaced_config_map("f", namespace).metadata.name == "f"
    assert kubesim_proc.admin("/kubesim/faults", method="GET") == []


def test_discovery_and_version(api_client):
    assert "v1" in kubernetes.client.CoreApi(api_client).get_api_versions().versions
    groups = {g.name for g in kubernetes.client.ApisApi(api_client).get_api_versions().groups}
    assert {
        "apps",
        "coordination.k8s.io",
        "policy",
        "networking.k8s.io",
        "apiextensions.k8s.io",
        "authentication.k8s.io",
    } <= groups
    assert kubernetes.client.VersionApi(api_client).get_code().major == "1"
