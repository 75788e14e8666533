"""The worker cache alone: which worker bodies make a live route, and why the others do not."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from buildkit_controller.gateway.cache import Refused, WorkerCache

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
ALLOCATION = "a" * 32


def body(name: str = "w1", *, endpoint: str = "tcp://10.1.2.3:1234", phase: str = "Allocated",
         ready: str = "True", serial: str = "42", expires: dt.datetime = NOW + dt.timedelta(hours=1),
         allocation: str | None = ALLOCATION) -> dict[str, Any]:
    spec: dict[str, Any] = {"poolRef": {"name": "p"}}
    if allocation:
        spec["allocation"] = {"id": allocation, "tokenHash": "sha256:x", "subject": "s", "jobId": "j",
                              "allocatedAt": "2026-11-30T11:00:00Z",
                              "expiresAt": expires.strftime("%Y-%m-%dT%H:%M:%SZ"), "certSerial": serial}
    return {"metadata": {"name": name, "namespace": "ns", "creationTimestamp": "2026-11-30T10:00:00Z"},
            "spec": spec, "status": {"phase": phase, "endpoint": endpoint,
                                     "conditions": [{"type": "Ready", "status": ready, "reason": "PodReady",
                                                     "lastTransitionTime": "2026-11-30T11:00:00Z"}]}}


def cache_of(*bodies: dict[str, Any]) -> WorkerCache:
    cache = WorkerCache()
    cache.replace(bodies)
    return cache


def refusal(cache: WorkerCache, serial: str = "42", now: dt.datetime = NOW) -> str:
    with pytest.raises(Refused) as caught:
        cache.lookup(ALLOCATION, serial, now)
    return caught.value.reason


def test_a_live_allocation_routes_to_its_worker_endpoint() -> None:
    route = cache_of(body()).lookup(ALLOCATION, "42", NOW)
    assert (route.worker, route.host, route.port) == ("w1", "10.1.2.3", 1234)


@pytest.mark.parametrize(("changes", "reason"), [
    ({"phase": "Idle"}, "worker-not-ready"),
    ({"phase": "Releasing"}, "worker-not-ready"),
    ({"ready": "False"}, "worker-not-ready"),
    ({"endpoint": ""}, "no-endpoint"),
    ({"endpoint": "tcp://169.254.169.254:80"}, "no-endpoint"),  # cloud metadata: never an upstream
    ({"endpoint": "tcp://worker.example:1234"}, "no-endpoint"),  # names could be steered by DNS
    ({"endpoint": "http://10.1.2.3:1234"}, "no-endpoint"),
    ({"serial": "43"}, "serial-mismatch"),
    ({"expires": NOW}, "expired"),
    ({"allocation": None}, "unknown-allocation"),
])
def test_anything_but_a_ready_allocated_worker_is_refused(changes: dict[str, Any], reason: str) -> None:
    assert refusal(cache_of(body(**changes))) == reason


def test_an_unsynced_cache_refuses_everything() -> None:
    cache = WorkerCache()
    assert refusal(cache) == "not-synced"


def test_two_workers_claiming_one_allocation_are_refused() -> None:
    assert refusal(cache_of(body("w1"), body("w2"))) == "ambiguous-allocation"


def test_watch_events_update_and_delete() -> None:
    cache = cache_of(body())
    changes: list[int] = []
    cache.on_change(lambda: changes.append(1))
    cache.apply("MODIFIED", body(endpoint="tcp://10.9.9.9:1234"))
    assert cache.lookup(ALLOCATION, "42", NOW).host == "10.9.9.9"
    cache.apply("DELETED", body())
    assert refusal(cache) == "unknown-allocation"
    assert len(changes) == 2


def test_a_malformed_worker_is_ignored_not_fatal() -> None:
    broken = body("w2", allocation="b" * 32)
    broken["spec"]["allocation"]["expiresAt"] = "not a time"
    cache = cache_of(body(), broken)
    assert cache.lookup(ALLOCATION, "42", NOW).worker == "w1"
