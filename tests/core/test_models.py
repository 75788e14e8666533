"""Models parsed from CR bodies: the seed's example parses; bad specs name the bad field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from buildkit_controller.core.errors import SpecError
from buildkit_controller.core.models import (
    AllocationRequest,
    Pool,
    PoolSpec,
    Worker,
    WorkerPhase,
    parse_duration,
    parse_quantity,
)

ROOT = Path(__file__).resolve().parents[2]


def test_seed_readme_pool_example_parses_unchanged() -> None:
    body = yaml.safe_load((ROOT / "examples" / "pool-example.yaml").read_text())
    pool = Pool.from_body(body)
    assert (pool.name, pool.namespace) == ("my-buildkit-pool", "default")
    assert (pool.spec.scaling.min, pool.spec.scaling.max) == (0, 10)
    assert pool.spec.resources.buildkit.requests == {"cpu": "1", "memory": "2Gi"}
    assert [m.type for m in pool.spec.auth.methods] == ["mtls"]
    assert pool.spec.scaling.scale_down_delay == timedelta(minutes=15)
    assert pool.endpoint == "tcp://my-buildkit-pool.default.svc:1235"


def test_our_readme_shows_the_same_pool_example() -> None:
    readme = (ROOT / "README.md").read_text()
    example = (ROOT / "examples" / "pool-example.yaml").read_text()
    assert example.strip() in readme


@pytest.mark.parametrize(
    ("spec", "path", "words"),
    [
        ({"scaling": {"min": 5, "max": 2}}, "spec.scaling", "at least min"),
        ({"scaling": {"max": 0}}, "spec.scaling.max", "greater than or equal to 1"),
        ({"scaling": {"min": "two"}}, "spec.scaling.min", "integer"),
        ({"scaling": {"scaleDownDelay": "soon"}}, "spec.scaling.scaleDownDelay", "invalid duration"),
        ({"scaling": {"scaleDownSchedule": "61 * * * *"}}, "spec.scaling.scaleDownSchedule", "cron"),
        (
            {"resources": {"buildkit": {"limits": {"memory": "lots"}}}},
            "spec.resources.buildkit.limits.memory",
            "invalid quantity",
        ),
        ({"cache": {"backends": [{"type": "s3"}, {"s3": {}}]}}, "spec.cache.backends[1].type", "required"),
        ({"worker": {"securityProfile": "root"}}, "spec.worker.securityProfile", "rootless"),
        ({"gateway": {"tokenTTL": "48h"}}, "spec.gateway", "maxTokenTTL"),
        ({"gateway": {"nodePort": 80}}, "spec.gateway.nodePort", "30000"),
    ],
)
def test_invalid_specs_name_the_field(spec: dict[str, Any], path: str, words: str) -> None:
    with pytest.raises(SpecError) as info:
        PoolSpec.parse(spec)
    assert info.value.path == path
    assert words in str(info.value)


def test_cache_backend_and_auth_method_forms() -> None:
    spec = PoolSpec.parse(
        {
            "cache": {"backends": [{"type": "registry", "registry": {"endpoint": "r.example/cache"}}]},
            "auth": {"methods": ["token", {"type": "oidc", "oidc": {"issuer": "https://i"}}]},
            "worker": {"imagePullSecrets": [{"name": "pull"}, "other"]},
        }
    )
    assert spec.cache.backends[0].options == {"endpoint": "r.example/cache"}
    assert [(m.type, dict(m.options)) for m in spec.auth.methods] == [
        ("token", {}),
        ("oidc", {"issuer": "https://i"}),
    ]
    assert spec.worker.image_pull_secrets == ("pull", "other")


def test_specs_are_immutable() -> None:
    spec = PoolSpec.parse({})
    with pytest.raises(ValueError, match="frozen"):
        spec.scaling.min = 3  # type: ignore[misc]


def test_worker_from_body_reads_phase_allocation_and_deletion() -> None:
    body = {
        "metadata": {
            "name": "w1",
            "namespace": "ci",
            "creationTimestamp": "2026-06-01T10:00:00Z",
            "resourceVersion": "42",
            "deletionTimestamp": None,
        },
        "spec": {
            "poolRef": {"name": "p"},
            "allocation": {
                "id": "abc",
                "tokenHash": "sha256:ff",
                "subject": "alice",
                "jobId": "j1",
                "allocatedAt": "2026-06-01T10:05:00Z",
                "expiresAt": "2026-06-01T11:05:00Z",
            },
        },
        "status": {"phase": "Allocated", "podIP": "127.0.0.5"},
    }
    worker = Worker.from_body(body)
    assert worker.phase is WorkerPhase.ALLOCATED and not worker.is_idle
    assert worker.status.pod_ip == "127.0.0.5"
    assert worker.allocation is not None and worker.allocation.subject == "alice"
    assert worker.allocation.expired(datetime(2026, 6, 1, 11, 5, tzinfo=UTC))
    assert not worker.allocation.expired(datetime(2026, 6, 1, 11, 4, tzinfo=UTC))
    deleting = Worker.from_body(
        {**body, "metadata": {**body["metadata"], "deletionTimestamp": "2026-06-01T10:06:00Z"}}
    )
    assert deleting.phase is WorkerPhase.TERMINATING


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("15m", 900),
        ("1h30m", 5400),
        ("8760h", 8760 * 3600),
        ("500ms", 0.5),
        ("7d", 604800),
        ("0", 0),
        ("1.5h", 5400),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "15", "m", "1x", "1h 30m", "-5m", "1h-5m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Decimal("0.5")),
        (1, Decimal(1)),
        ("2Gi", Decimal(2 * 2**30)),
        ("1e3", Decimal(1000)),
        ("512Mi", Decimal(512 * 2**20)),
        ("1.5", Decimal("1.5")),
        ("4k", Decimal(4000)),
    ],
)
def test_quantities(text: str | int, value: Decimal) -> None:
    assert parse_quantity(text) == value


def test_allocation_ttl_is_clamped_to_one_minute_and_huge_durations_saturate() -> None:
    assert AllocationRequest.parse({"poolName": "p", "ttl": "10s"}).ttl == timedelta(minutes=1)
    assert parse_duration("99999999999999999h") > timedelta(days=100_000)


def test_allocation_request_uses_seed_field_names_and_validates() -> None:
    request = AllocationRequest.parse({"poolName": "my-buildkit-pool", "ttl": "1h"}, path="body")
    assert (request.pool_name, request.namespace, request.ttl) == (
        "my-buildkit-pool",
        "default",
        timedelta(hours=1),
    )
    for bad, where in [
        ({"poolName": "Bad_Name"}, "body.poolName"),
        ({"poolName": "p", "metadata": {str(n): "v" for n in range(17)}}, "body.metadata"),
        ({"poolName": "p", "jobId": "x" * 200}, "body.jobId"),
        ({}, "body.poolName"),
    ]:
        with pytest.raises(SpecError) as info:
            AllocationRequest.parse(bad, path="body")
        assert info.value.path == where
