"""Allocation rules: lease bounds, token handling, renewal, claim order."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from buildkit_controller.core import tokens
from buildkit_controller.core.allocation import allocation_id_of, claim_order, claimable, new_allocation, renewed
from buildkit_controller.core.errors import PermanentError
from buildkit_controller.core.models import Identity, WorkerPhase
from buildkit_controller.core.testing import NOW, make_pool, make_worker

GATEWAY = make_pool({"gateway": {"tokenTTL": "1h", "maxTokenTTL": "6h"}}).spec.gateway
WHO = Identity(subject="ci-bot", method="token")
HOUR = timedelta(hours=1)


def test_a_new_allocation_stores_only_the_token_hash() -> None:
    made = new_allocation(identity=WHO, gateway=GATEWAY, now=NOW, ttl=None, job_id=None, metadata={"a": "b"})
    assert made.record.expires_at == NOW + HOUR  # tokenTTL by default
    assert made.token not in made.record.model_dump_json()
    assert tokens.verify_token(made.token, made.record.token_hash)
    assert made.token not in repr(made)
    assert made.record.job_id.startswith("job-") and tokens.is_valid_allocation_id(made.record.id)
    assert allocation_id_of(made.token) == made.record.id
    assert allocation_id_of("garbage") is None and allocation_id_of(made.record.id + ".") is None


def test_leases_never_exceed_max_token_ttl() -> None:
    made = new_allocation(identity=WHO, gateway=GATEWAY, now=NOW, ttl=48 * HOUR, job_id="j", metadata={})
    assert made.record.expires_at == NOW + 6 * HOUR
    later = renewed(made.record, GATEWAY, now=NOW + 5 * HOUR, ttl=3 * HOUR)
    assert later.expires_at == NOW + 6 * HOUR  # allocatedAt + maxTokenTTL, not now + ttl


def test_renewal_extends_and_never_shortens_and_expired_leases_stay_ended() -> None:
    record = new_allocation(identity=WHO, gateway=GATEWAY, now=NOW, ttl=2 * HOUR, job_id="j",
                            metadata={}).record
    assert renewed(record, GATEWAY, now=NOW + HOUR, ttl=2 * HOUR).expires_at == NOW + 3 * HOUR
    assert renewed(record, GATEWAY, now=NOW + HOUR, ttl=timedelta(minutes=5)).expires_at == NOW + 2 * HOUR
    with pytest.raises(PermanentError, match="already expired"):
        renewed(record, GATEWAY, now=NOW + 2 * HOUR, ttl=HOUR)


def test_only_idle_unallocated_workers_are_claimable_in_a_spread_order() -> None:
    workers = [make_worker(f"i{n}", WorkerPhase.IDLE) for n in range(6)] + [
        make_worker("busy", WorkerPhase.ALLOCATED, allocated=True),
        make_worker("new", WorkerPhase.PROVISIONING), make_worker("gone", WorkerPhase.FAILED)]
    candidates = [w for w in workers if claimable(w)]
    first = [w.name for w in claim_order(candidates, random.Random(1))]
    second = [w.name for w in claim_order(candidates, random.Random(2))]
    assert sorted(first) == sorted(second) == [f"i{n}" for n in range(6)]
    assert first != second
