"""Allocation rules: lease lengths, the record a worker keeps, which idle workers may be claimed.

A lease lasts the requested ``ttl`` (default ``gateway.tokenTTL``) and never beyond
``allocatedAt + gateway.maxTokenTTL``: renewals extend it up to that bound and no further, so a
leaked certificate or token has a hard end. The certificate's lifetime is the lease's.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from buildkit_controller.core import tokens
from buildkit_controller.core.errors import PermanentError
from buildkit_controller.core.models.hooks import Identity
from buildkit_controller.core.models.pool import GatewaySpec
from buildkit_controller.core.models.worker import AllocationRecord, Worker

__all__ = ["NewAllocation", "allocation_id_of", "claim_order", "claimable", "lease_end", "new_allocation", "renewed"]

_T = TypeVar("_T")


def allocation_id_of(token: str) -> str | None:
    """The allocation id a token names, or ``None`` for anything that is not one of our tokens."""
    allocation_id, dot, secret = token.partition(".")
    if not dot or not secret or not tokens.is_valid_allocation_id(allocation_id):
        return None
    return allocation_id


def lease_end(gateway: GatewaySpec, *, allocated_at: datetime, now: datetime,
              ttl: timedelta | None) -> datetime:
    """When a lease asked for ``ttl`` at ``now`` ends: capped at ``allocated_at + maxTokenTTL``."""
    wanted = now + (ttl or gateway.token_ttl)
    return min(wanted, allocated_at + gateway.max_token_ttl)


@dataclass(frozen=True, kw_only=True)
class NewAllocation:
    """A fresh allocation: the record to store and the token to hand out exactly once."""

    record: AllocationRecord
    token: str

    def __repr__(self) -> str:  # never print the token
        return f"NewAllocation(id={self.record.id!r})"


def new_allocation(*, identity: Identity, gateway: GatewaySpec, now: datetime, ttl: timedelta | None,
                   job_id: str | None, metadata: Mapping[str, str]) -> NewAllocation:
    """A new allocation id and token; only the token's hash goes into the record.

    The token is ``<allocation id>.<32 random bytes>``: the public id lets the API find the worker
    by label, the random part is the secret.
    """
    allocation_id = tokens.new_allocation_id()
    token = f"{allocation_id}.{tokens.new_token()}"
    record = AllocationRecord(
        id=allocation_id, token_hash=tokens.hash_token(token), subject=identity.subject,
        job_id=job_id or f"job-{allocation_id[:12]}", allocated_at=now,
        expires_at=lease_end(gateway, allocated_at=now, now=now, ttl=ttl), metadata=dict(metadata))
    return NewAllocation(record=record, token=token)


def renewed(record: AllocationRecord, gateway: GatewaySpec, *, now: datetime,
            ttl: timedelta | None) -> AllocationRecord:
    """The record with its lease extended; refused once the lease has ended."""
    if record.expired(now):
        raise PermanentError(f"allocation {record.id} has already expired")
    end = lease_end(gateway, allocated_at=record.allocated_at, now=now, ttl=ttl)
    return record.model_copy(update={"expires_at": max(end, record.expires_at)})


def claimable(worker: Worker) -> bool:
    """Idle, ready, unallocated and not going: the only workers an allocation may claim."""
    return worker.is_idle and not worker.deleting


def claim_order(candidates: Sequence[_T], rng: random.Random | None = None) -> list[_T]:
    """Candidates in a random order, so that concurrent requests (and API replicas) spread over
    different workers instead of all racing for the first one. Try them in this order and claim
    the first that is :func:`claimable` (callers may parse lazily: the order needs no parsing)."""
    order = list(candidates)
    (rng or random.Random()).shuffle(order)  # noqa: S311 - load spreading, not security
    return order
