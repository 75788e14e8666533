"""Worker phases from pod states (pure): no stuck deletions, no destroyed builds on a probe miss."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from buildkit_controller.controller.reconciler.lifecycle import observe
from buildkit_controller.core.models import WorkerPhase
from buildkit_controller.core.testing import NOW, make_worker

TEN_MIN = timedelta(minutes=10)


def pod(phase: str = "Running", *, ready: bool = True, ip: str | None = "127.0.1.5",
        unschedulable: bool = False, exit_code: int | None = None) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": "True" if ready else "False"}]
    if unschedulable:
        conditions = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                       "message": "0/3 nodes are available: node(s) didn't match node selector"}]
    status: dict[str, Any] = {"phase": phase, "conditions": conditions}
    if ip:
        status["podIP"] = ip
    if exit_code is not None:
        status["containerStatuses"] = [{"name": "buildkitd", "state": {"terminated": {
            "exitCode": exit_code, "reason": "Error"}}}]
    return {"status": status}


def worker(phase: WorkerPhase, **kwargs: Any) -> Any:
    made = make_worker("w", phase, **kwargs)
    return made.model_copy(update={"status": made.status.model_copy(update={"pod_name": "w"})})


def test_a_new_worker_asks_for_its_pod() -> None:
    fresh = make_worker("w", WorkerPhase.PENDING)
    result = observe(fresh, None, NOW, unschedulable_timeout=TEN_MIN)
    assert (result.phase, result.create_pod) == (WorkerPhase.PROVISIONING, True)


def test_ready_pod_makes_an_idle_or_allocated_worker_with_its_endpoint() -> None:
    idle = observe(worker(WorkerPhase.PROVISIONING), pod(), NOW, unschedulable_timeout=TEN_MIN)
    assert (idle.phase, idle.endpoint, idle.ready) == (WorkerPhase.IDLE, "tcp://127.0.1.5:1234", True)
    claimed = observe(worker(WorkerPhase.PROVISIONING, allocated=True), pod(), NOW,
                      unschedulable_timeout=TEN_MIN)
    assert claimed.phase is WorkerPhase.ALLOCATED


def test_a_failed_probe_never_destroys_an_allocated_worker() -> None:
    busy = observe(worker(WorkerPhase.ALLOCATED, allocated=True), pod(ready=False), NOW,
                   unschedulable_timeout=TEN_MIN)
    assert busy.phase is WorkerPhase.ALLOCATED
    assert busy.conditions["Ready"][0] == "False"
    idle = observe(worker(WorkerPhase.IDLE), pod(ready=False), NOW, unschedulable_timeout=TEN_MIN)
    assert idle.phase is WorkerPhase.PROVISIONING  # not claimable until ready again, but not failed


def test_unschedulable_is_reported_then_failed_after_the_timeout() -> None:
    young = make_worker("w", WorkerPhase.PROVISIONING, age=timedelta(minutes=3))
    waiting = observe(young, pod("Pending", unschedulable=True, ip=None), NOW, unschedulable_timeout=TEN_MIN)
    assert waiting.phase is WorkerPhase.PROVISIONING
    assert waiting.conditions["Scheduled"][:2] == ("False", "Unschedulable")
    assert "node selector" in waiting.message
    old = make_worker("w", WorkerPhase.PROVISIONING, age=timedelta(minutes=11))
    failed = observe(old, pod("Pending", unschedulable=True, ip=None), NOW, unschedulable_timeout=TEN_MIN)
    assert failed.phase is WorkerPhase.FAILED and "unschedulable for 0:11:00" in failed.message


def test_an_ended_or_vanished_pod_fails_the_worker() -> None:
    crashed = observe(worker(WorkerPhase.IDLE), pod("Failed", exit_code=137), NOW,
                      unschedulable_timeout=TEN_MIN)
    assert crashed.phase is WorkerPhase.FAILED and "code 137" in crashed.message
    vanished = observe(worker(WorkerPhase.ALLOCATED, allocated=True), None, NOW,
                       unschedulable_timeout=TEN_MIN)
    assert (vanished.phase, vanished.create_pod) == (WorkerPhase.FAILED, False)


def test_deleting_workers_terminate_and_failed_ones_stay_failed() -> None:
    gone = worker(WorkerPhase.IDLE).model_copy(update={"deleting": True})
    assert observe(gone, pod(), NOW, unschedulable_timeout=TEN_MIN).phase is WorkerPhase.TERMINATING
    dead = worker(WorkerPhase.FAILED)
    assert observe(dead, pod(), NOW, unschedulable_timeout=TEN_MIN).phase is WorkerPhase.FAILED


def test_pool_connections_are_the_sum_of_what_gateways_report() -> None:
    from buildkit_controller.controller.reconciler.status import PoolView, pool_status

    workers = [make_worker("a", WorkerPhase.ALLOCATED, allocated=True, connections=2),
               make_worker("b", WorkerPhase.ALLOCATED, allocated=True, connections=3),
               make_worker("c", WorkerPhase.IDLE)]
    view = PoolView(generation=1, endpoint="tcp://p.ci.svc:1235", gateway={"readyReplicas": 1, "replicas": 1},
                    gateway_replicas=1, workers=workers, desired=3)
    status = pool_status(view, {}, NOW)
    assert status["connections"] == {"active": 5}
    assert status["phase"] == "Running"
