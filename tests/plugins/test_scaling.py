"""Scaling decisions of the built-in ``minidle`` and ``schedule`` policies, called through pluggy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from buildkit_controller.core._loader import load_plugins
from buildkit_controller.core.models import ScalingDecision, Worker, WorkerPhase
from buildkit_controller.core.settings import PluginSettings
from buildkit_controller.core.testing import NOW, make_pool, make_worker
from buildkit_controller.plugins.schedule import window_active

IDLE = WorkerPhase.IDLE
MIN = timedelta(minutes=1)


@pytest.fixture(scope="module")
def host() -> Any:
    return load_plugins(PluginSettings())


def decide(host: Any, spec: dict[str, Any], workers: list[Worker], *, now: datetime = NOW,
           demand: int = 0) -> ScalingDecision:
    pool = make_pool(spec)
    result: ScalingDecision = host.call("scaling", pool.spec.scaling.policy_name, "bkc_scaling_decide",
                                        pool=pool, workers=workers, now=now, demand=demand)
    return result


def removed(decision: ScalingDecision) -> list[str]:
    return [r.name for r in decision.remove]


def idle(name: str, minutes: int, now: datetime = NOW) -> Worker:
    return make_worker(name, IDLE, idle_for=timedelta(minutes=minutes), now=now)


def test_scale_to_zero_removes_idle_workers_only_after_the_delay(host: Any) -> None:
    workers = [idle("old", 20), idle("new", 5)]
    decision = decide(host, {"scaling": {"min": 0}}, workers)
    assert removed(decision) == ["old"]
    assert decision.create == 0
    assert "scaleDownDelay 15m" in decision.remove[0].reason
    later = decide(host, {"scaling": {"min": 0}}, [idle("new", 16)])
    assert removed(later) == ["new"]


def test_empty_min_zero_pool_stays_empty(host: Any) -> None:
    decision = decide(host, {"scaling": {"min": 0}}, [])
    assert (decision.create, decision.remove, decision.desired) == (0, (), 0)


def test_min_idle_refill_counts_starting_workers(host: Any) -> None:
    workers = [idle("a", 1), make_worker("b", WorkerPhase.PROVISIONING)]
    assert decide(host, {"scaling": {"min": 3}}, workers).create == 1
    busy = [make_worker("x", WorkerPhase.ALLOCATED, allocated=True)]
    # Allocated workers are not idle: the pool refills min idle beside them.
    assert decide(host, {"scaling": {"min": 2}}, busy).create == 2


def test_max_caps_creation_whatever_min_and_demand(host: Any) -> None:
    assert decide(host, {"scaling": {"min": 3, "max": 3}}, []).create == 3
    assert decide(host, {"scaling": {"min": 2, "max": 3}}, [], demand=10).create == 3
    busy = [make_worker(f"b{n}", WorkerPhase.ALLOCATED, allocated=True) for n in range(2)]
    assert decide(host, {"scaling": {"min": 2, "max": 3}}, busy).create == 1
    # Workers on their way out still hold pods: they count toward max too.
    going = [make_worker("t", WorkerPhase.TERMINATING), *busy]
    assert decide(host, {"scaling": {"min": 2, "max": 3}}, going).create == 0


def test_demand_creates_workers_for_waiting_requests(host: Any) -> None:
    decision = decide(host, {"scaling": {"min": 0, "max": 10}}, [], demand=2)
    assert decision.create == 2
    assert decision.desired == 2


def test_lowering_min_removes_surplus_longest_idle_first_after_delay(host: Any) -> None:
    workers = [idle("a", 16), idle("b", 30), idle("c", 10)]
    decision = decide(host, {"scaling": {"min": 1}}, workers)
    assert removed(decision) == ["b", "a"]
    assert decide(host, {"scaling": {"min": 1, "scaleDownDelay": "1h"}}, workers).remove == ()


def test_lowering_max_removes_idle_workers_at_once(host: Any) -> None:
    workers = [idle(f"i{n}", 1) for n in range(4)]
    decision = decide(host, {"scaling": {"min": 0, "max": 2}}, workers)
    # Two go at once to get back under max; the other two wait for scaleDownDelay like any idle worker.
    assert len(decision.remove) == 2
    assert all(r.reason == "above max 2" for r in decision.remove)


def test_allocation_ttl_expiry_removes_the_worker(host: Any) -> None:
    expired = make_worker("e", WorkerPhase.ALLOCATED, allocated=True, expires_in=-MIN)
    live = make_worker("l", WorkerPhase.ALLOCATED, allocated=True, expires_in=MIN, age=timedelta(days=1))
    decision = decide(host, {"scaling": {"min": 0}}, [expired, live])
    assert removed(decision) == ["e"]
    assert decision.remove[0].reason == "allocation expired"


def test_idle_timeout_releases_only_allocations_without_connections(host: Any) -> None:
    spec = {"scaling": {"min": 0, "idleTimeout": "30m"}}
    quiet = make_worker("q", WorkerPhase.ALLOCATED, allocated=True, idle_for=timedelta(minutes=31))
    busy = make_worker("b", WorkerPhase.ALLOCATED, allocated=True, idle_for=timedelta(minutes=31),
                       connections=1)
    recent = make_worker("r", WorkerPhase.ALLOCATED, allocated=True, idle_for=timedelta(minutes=29))
    assert removed(decide(host, spec, [quiet, busy, recent])) == ["q"]


def test_failed_workers_are_removed_and_replaced(host: Any) -> None:
    decision = decide(host, {"scaling": {"min": 1}}, [make_worker("f", WorkerPhase.FAILED)])
    assert removed(decision) == ["f"]
    assert decision.remove[0].reason == "worker failed"


@pytest.mark.parametrize(("clock", "active"), [
    ("00:00", True), ("03:30", True), ("06:59", True), ("07:00", False), ("12:00", False),
    ("23:59", False)])
def test_cron_window_is_active_for_its_whole_length(clock: str, active: bool) -> None:
    hour, minute = map(int, clock.split(":"))
    now = datetime(2026, 6, 2, hour, minute, 30, tzinfo=UTC)
    assert window_active("* 0-6 * * *", None, now) is active


@pytest.mark.parametrize(("when", "active"), [
    (datetime(2026, 6, 1, 22, 0, tzinfo=UTC), True),
    (datetime(2026, 6, 1, 22, 3, tzinfo=UTC), True),  # the seed's 2-minute window had closed here
    (datetime(2026, 6, 2, 6, 59, tzinfo=UTC), True),
    (datetime(2026, 6, 2, 7, 0, tzinfo=UTC), False),
    (datetime(2026, 6, 1, 21, 59, tzinfo=UTC), False),
])
def test_cron_start_with_duration_holds_the_window(when: datetime, active: bool) -> None:
    assert window_active("0 22 * * *", timedelta(hours=9), when) is active


def test_schedule_policy_keeps_no_idle_workers_inside_the_window(host: Any) -> None:
    spec = {"scaling": {"min": 2, "scaleDownSchedule": "* 0-6 * * *"}}
    night = datetime(2026, 6, 2, 3, 30, tzinfo=UTC)
    day = datetime(2026, 6, 2, 12, 0, tzinfo=UTC)
    workers_night = [idle("a", 20, night), idle("b", 20, night)]
    assert sorted(removed(decide(host, spec, workers_night, now=night))) == ["a", "b"]
    assert decide(host, spec, [], now=night).create == 0
    assert decide(host, spec, [], now=night, demand=1).create == 1  # allocations still served
    assert decide(host, spec, [], now=day).create == 2
    assert decide(host, spec, [idle("a", 20, day), idle("b", 20, day)], now=day).remove == ()


def test_pool_with_schedule_defaults_to_the_schedule_policy() -> None:
    scheduled = make_pool({"scaling": {"scaleDownSchedule": "0 20 * * 1-5"}})
    assert scheduled.spec.scaling.policy_name == "schedule"
    assert make_pool({}).spec.scaling.policy_name == "minidle"
    assert make_pool({"scaling": {"policy": "custom"}}).spec.scaling.policy_name == "custom"
