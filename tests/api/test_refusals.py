"""Bad input and bad credentials get a clear 4xx and change nothing."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Cluster


async def snapshot(cluster: Cluster) -> list[tuple[str, str]]:
    return sorted((w["metadata"]["name"], w["metadata"]["resourceVersion"]) for w in await cluster.workers())


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer "},
                                     {"Authorization": "Bearer bkct_forgedforgedforged"},
                                     {"Authorization": "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9."}])
async def test_missing_forged_or_unsigned_credentials_get_401(cluster: Cluster, client: Any,
                                                               headers: dict[str, str]) -> None:
    pool = await cluster.pool()
    await cluster.idle_workers(pool, 1)
    before = await snapshot(cluster)
    response = await client.post("/api/v1/workers/allocate", json={"poolName": "builds"}, headers=headers)
    assert response.status_code == 401
    body = await response.get_json()
    assert body["error"] == "unauthorized" and "Traceback" not in body["message"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert await snapshot(cluster) == before


async def test_a_pool_the_identity_may_not_use_gets_403_and_nothing_changes(cluster: Cluster, client: Any) -> None:
    pool = await cluster.pool(auth={"rbac": {"rules": [{"users": ["release-bot"], "pools": ["*"]}]}})
    await cluster.idle_workers(pool, 2)
    before = await snapshot(cluster)
    response = await client.post("/api/v1/workers/allocate", json={"poolName": "builds"},
                                 headers=cluster.token("ci-bot"))
    assert response.status_code == 403 and (await response.get_json())["error"] == "forbidden"
    assert await snapshot(cluster) == before
    limited = cluster.token("scoped", pools=["other-*"])
    response = await client.post("/api/v1/workers/allocate", json={"poolName": "builds"}, headers=limited)
    assert response.status_code == 403


@pytest.mark.parametrize(("payload", "field"), [
    ({"poolName": 7}, "body.poolName"), ({"poolName": "Bad_Name"}, "body.poolName"),
    ({"poolName": "builds", "ttl": "forever"}, "body.ttl"),
    ({"poolName": "builds", "metadata": {"k": 5}}, "body.metadata.k"), ({}, "body.poolName"),
    ({"poolName": "builds", "csr": "not a csr"}, None)])
async def test_invalid_bodies_get_400_naming_the_field(cluster: Cluster, client: Any, payload: dict[str, Any],
                                                        field: str | None) -> None:
    pool = await cluster.pool()
    await cluster.idle_workers(pool, 1)
    before = await snapshot(cluster)
    response = await client.post("/api/v1/workers/allocate", json=payload, headers=cluster.token("ci-bot"))
    assert response.status_code == 400, await response.get_data()
    body = await response.get_json()
    assert body["error"] == "bad_request"
    if field:
        assert body["message"].startswith(field)
    assert await snapshot(cluster) == before


async def test_malformed_json_huge_bodies_and_unknown_pools(cluster: Cluster, client: Any) -> None:
    headers = {**cluster.token("ci-bot"), "Content-Type": "application/json"}
    malformed = await client.post("/api/v1/workers/allocate", data="{not json", headers=headers)
    assert malformed.status_code == 400
    huge = await client.post("/api/v1/workers/allocate", data="x" * (1024 * 1024), headers=headers)
    assert huge.status_code == 413
    unknown = await client.post("/api/v1/workers/allocate", json={"poolName": "nope"}, headers=headers)
    assert unknown.status_code == 404 and "nope" in (await unknown.get_json())["message"]
    assert await cluster.workers() == []


async def test_pools_lists_only_what_the_caller_may_use(cluster: Cluster, client: Any) -> None:
    await cluster.pool("open")
    await cluster.pool("closed", auth={"rbac": {"rules": [{"users": ["admin"], "pools": ["*"]}]}})
    response = await client.get("/api/v1/pools", headers=cluster.token("ci-bot"))
    assert [p["name"] for p in (await response.get_json())["pools"]] == ["open"]
    hidden = await client.get("/api/v1/pools/default/closed", headers=cluster.token("ci-bot"))
    assert hidden.status_code == 403


async def test_openapi_health_and_metrics_need_no_credentials(client: Any) -> None:
    document = await (await client.get("/api/v1/openapi.json")).get_json()
    assert "/api/v1/workers/allocate" in document["paths"]
    assert (await client.get("/healthz")).status_code == 200
    metrics = await (await client.get("/metrics")).get_data()
    assert b"buildkit_worker_allocations_total" in metrics


def test_published_openapi_matches_the_app() -> None:
    """docs/openapi.json is what `buildkit-controller api --print-openapi` prints."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).parent / "buildkit-controller"
    printed = subprocess.run([str(exe), "api", "--print-openapi"], capture_output=True, text=True, check=True,
                             timeout=60, cwd="/").stdout
    published = (Path(__file__).resolve().parents[2] / "docs" / "openapi.json").read_text()
    fix = "run: buildkit-controller api --print-openapi > docs/openapi.json"
    assert json.loads(printed) == json.loads(published), fix


def test_worker_gauge_counts_by_pool_and_phase() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from buildkit_controller.controller.api.metrics import ApiMetrics

    registry = CollectorRegistry()
    metrics = ApiMetrics(registry)
    body = {"metadata": {"namespace": "ci"}, "spec": {"poolRef": {"name": "builds"}}}
    metrics.count_workers([{**body, "status": {"phase": "Idle"}}, {**body, "status": {"phase": "Idle"}},
                           {**body, "status": {"phase": "Allocated"}}])
    text = generate_latest(registry).decode()
    assert 'buildkit_workers{phase="idle",pool="ci/builds"} 2.0' in text
    assert 'buildkit_workers{phase="allocated",pool="ci/builds"} 1.0' in text
    metrics.count_workers([])  # a pool that emptied leaves no stale series
    assert "ci/builds" not in generate_latest(registry).decode()
