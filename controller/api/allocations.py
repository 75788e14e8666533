"""Allocating workers: claim a warm one or start one, wait until it serves, hand out credentials.

All state lives in BuildKitWorkers, so any number of API replicas can serve. Correctness under
concurrency comes from the API server: a claim is a merge patch carrying the ``resourceVersion``
the worker was seen at (409 if anyone else touched it: try the next one), and a new worker only
gets a pod through the operator's admission (never more than ``max``). At capacity, requests wait in
a FIFO per pool (per replica) up to ``queue_timeout``, then get ``CapacityError`` (503 with
Retry-After). A request that fails or whose client goes away deletes what it claimed or created.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from buildkit_controller.controller.manifests.names import (
    API_VERSION,
    IDLE_LABEL,
    POOL_LABEL,
    owner_reference,
    secret_names,
)
from buildkit_controller.controller.manifests.secrets import secret_text
from buildkit_controller.controller.reconciler.context import utcnow
from buildkit_controller.controller.reconciler.kube import Kube
from buildkit_controller.core import pki
from buildkit_controller.core.allocation import NewAllocation, claim_order, claimable
from buildkit_controller.core.errors import CapacityError, ConfigError, SpecError
from buildkit_controller.core.models import (
    AllocationRecord,
    AllocationRequest,
    Pool,
    SizeProfile,
    Worker,
    WorkerPhase,
)
from buildkit_controller.core.sizing import resolve_size

__all__ = ["ALLOCATION_LABEL", "AllocationSettings", "Allocator", "Credentials"]

log = logging.getLogger(__name__)
ALLOCATION_LABEL = "buildkit.smrt-devops.net/allocation"
#: The fast path reads one page of workers labelled idle: O(1) in the pool's size; concurrent
#: requests shuffle it, so a page a few times the usual concurrency keeps claim conflicts rare.
CLAIM_PAGE = 64


@dataclass(frozen=True, kw_only=True)
class AllocationSettings:
    #: How long a request may wait for capacity before a 503.
    queue_timeout: float = 30.0
    #: How long a new worker may take to become ready.
    ready_timeout: float = 180.0
    poll_interval: float = 0.25


@dataclass(frozen=True, kw_only=True)
class Credentials:
    """What the client gets back (PEMs base64-encoded by the route, as the seed did)."""

    worker: str
    ca_bundle: bytes
    certificate: bytes
    private_key: bytes | None
    serial: str
    #: The worker's size profile; ``None`` when the pool sets explicit resources.
    size: str | None = None


def _record_json(record: AllocationRecord) -> dict[str, Any]:
    return record.model_dump(mode="json", by_alias=True, exclude_none=True)


def _maybe_idle(body: Mapping[str, Any]) -> bool:
    """A cheap look at the raw body before parsing it (most of a busy pool's workers are not idle):
    :func:`claimable` still decides on the parsed worker."""
    return (body.get("status") or {}).get("phase") == WorkerPhase.IDLE and not (body.get("spec") or {}).get(
        "allocation") and not body["metadata"].get("deletionTimestamp")


def _ready(body: Mapping[str, Any], allocation_id: str) -> bool:
    worker = Worker.from_body(body)
    conditions = {c.get("type"): c.get("status") for c in (body.get("status") or {}).get("conditions") or []}
    return (worker.allocation is not None and worker.allocation.id == allocation_id
            and worker.phase in (WorkerPhase.IDLE, WorkerPhase.ALLOCATED)
            and conditions.get("Ready") == "True" and bool(worker.status.endpoint))


@dataclass
class Allocator:
    kube: Kube
    settings: AllocationSettings = field(default_factory=AllocationSettings)
    clock: Callable[[], datetime] = utcnow
    #: Called with (pool, seconds) when a worker created for a request becomes ready.
    on_started: Callable[[Pool, float], None] | None = None
    #: The size profiles the enabled sizing plugins offer (requests may name one).
    profiles: Callable[[], Mapping[str, SizeProfile]] = dict
    _queues: defaultdict[tuple[str, str], asyncio.Lock] = field(default_factory=lambda: defaultdict(asyncio.Lock))

    async def _workers(self, pool: Pool) -> list[dict[str, Any]]:
        return await self.kube.list(API_VERSION, "BuildKitWorker", pool.namespace, {POOL_LABEL: pool.name})

    def size_for(self, pool: Pool, requested: str | None) -> str | None:
        """The size profile workers for this request get; ``None`` when the pool's own size is it."""
        if requested is None:
            return None
        profiles = self.profiles()
        try:
            wanted = resolve_size(pool.spec, profiles, requested).profile
            return None if wanted == resolve_size(pool.spec, profiles).profile else wanted
        except SpecError as exc:
            raise SpecError(f"body.{exc.path}" if exc.path == "size" else exc.path, exc.reason) from None
        except ConfigError as exc:  # e.g. no sizing plugin offers a default to cap the request at
            raise SpecError("body.size", str(exc)) from None

    def _profile(self, pool: Pool, size: str | None) -> str | None:
        """The profile a worker of ``size`` runs at, for the answer (``None``: explicit resources)."""
        try:
            return size or resolve_size(pool.spec, self.profiles()).profile
        except ConfigError:  # no sizing plugin: the operator reports that on the pool
            return None

    async def _claim(self, pool: Pool, bodies: list[dict[str, Any]], record: AllocationRecord,
                     accept: Callable[[Worker], bool]) -> str | None:
        """Claim an idle worker that ``accept`` likes, guarded by its resourceVersion."""
        for body in claim_order([b for b in bodies if _maybe_idle(b)]):
            worker = Worker.from_body(body)  # parsed only until one is claimed
            if not (claimable(worker) and accept(worker)):
                continue
            patch = {"metadata": {"resourceVersion": body["metadata"]["resourceVersion"],
                                  "labels": {ALLOCATION_LABEL: record.id, IDLE_LABEL: None}},
                     "spec": {"allocation": _record_json(record)}}
            try:
                await self.kube.patch(API_VERSION, "BuildKitWorker", worker.name, pool.namespace, patch)
            except ApiException as exc:
                if exc.status in (404, 409):  # someone else got it first, or it went away
                    continue
                raise
            return worker.name
        return None

    async def _create(self, pool: Pool, record: AllocationRecord, size: str | None) -> str:
        body = {"apiVersion": API_VERSION, "kind": "BuildKitWorker",
                "metadata": {"generateName": f"{pool.name}-worker-", "namespace": pool.namespace,
                             "labels": {POOL_LABEL: pool.name, ALLOCATION_LABEL: record.id},
                             "ownerReferences": [owner_reference("BuildKitPool", pool.name, pool.uid or "")]},
                "spec": {"poolRef": {"name": pool.name, "namespace": pool.namespace},
                         "allocation": _record_json(record), **({"size": size} if size else {})}}
        created = await self.kube.create(body)
        return str(created["metadata"]["name"])

    @staticmethod
    def _room(pool: Pool, bodies: list[dict[str, Any]]) -> bool:
        """Below ``max``, counting as the operator's admission does: a worker being deleted still
        holds its slot until its pod has drained and gone; a failed one does not."""
        holding = [b for b in bodies if (b.get("status") or {}).get("phase") != "Failed"]
        return len(holding) < pool.spec.scaling.max

    async def _evict(self, pool: Pool, bodies: list[dict[str, Any]], record: AllocationRecord,
                     size: str | None) -> bool:
        """At ``max`` with idle workers of another size only, claim one of them and delete it so that
        a worker of ``size`` fits; one at a time (not while another worker is still going)."""
        if any(b["metadata"].get("deletionTimestamp") for b in bodies):
            return False
        victim = await self._claim(pool, bodies, record, lambda w: w.size != size)
        if victim is None:
            return False
        log.info("pool %s/%s: deleting idle worker %s to make room for a %s worker", pool.namespace, pool.name,
                 victim, size or "default-size")
        await self._discard(pool, victim)
        return True

    async def _obtain(self, pool: Pool, record: AllocationRecord, size: str | None,
                      deadline: float) -> tuple[str, bool]:
        """A worker for ``record``: claimed (``False``) or created (``True``)."""
        loop = asyncio.get_running_loop()
        queue = self._queues[(pool.namespace, pool.name)]
        if not queue.locked():  # nobody waiting: claim without queueing (claims are race-safe anyway)
            idle = await self.kube.list(API_VERSION, "BuildKitWorker", pool.namespace,
                                        {POOL_LABEL: pool.name, IDLE_LABEL: "true"}, limit=CLAIM_PAGE)
            name = await self._claim(pool, idle, record, lambda w: w.size == size)
            if name is not None:
                return name, False
        async with queue:  # FIFO: asyncio.Lock wakes waiters in order
            while True:
                bodies = await self._workers(pool)
                name = await self._claim(pool, bodies, record, lambda w: w.size == size)
                if name is not None:
                    return name, False
                if self._room(pool, bodies):
                    return await self._create(pool, record, size), True
                if await self._evict(pool, bodies, record, size):
                    continue
                if loop.time() >= deadline:
                    raise CapacityError(f"pool {pool.namespace}/{pool.name} has no free worker "
                                        f"(max {pool.spec.scaling.max})", delay=5)
                await asyncio.sleep(self.settings.poll_interval)

    async def _wait_ready(self, pool: Pool, name: str, allocation_id: str) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + self.settings.ready_timeout
        while asyncio.get_running_loop().time() < deadline:
            body = await self.kube.get(API_VERSION, "BuildKitWorker", name, pool.namespace)
            if body is None or (body.get("status") or {}).get("phase") == "Failed":
                message = (body or {}).get("status", {}).get("message", "it was deleted")
                raise CapacityError(f"worker {name} could not start: {message}", delay=5)
            if _ready(body, allocation_id):
                return body
            await asyncio.sleep(self.settings.poll_interval)
        raise CapacityError(f"worker {name} was not ready within {self.settings.ready_timeout:.0f}s", delay=10)

    async def _credentials(self, pool: Pool, record: AllocationRecord, csr: str | None,
                           worker: str, job_id: str) -> Credentials:
        secret = secret_text(await self.kube.get("v1", "Secret", secret_names(pool.name)["tenant-ca"],
                                                    pool.namespace))
        if "ca.key" not in secret:
            raise CapacityError(f"pool {pool.namespace}/{pool.name} has no certificates yet", delay=5)
        ca = pki.load_ca(secret["ca.crt"], secret["ca.key"])
        identity = pki.AllocationIdentity(allocation_id=record.id, pool=pool.name, namespace=pool.namespace,
                                          job_id=job_id)
        lifetime = record.expires_at - self.clock()
        issued = (pki.sign_csr(ca, csr, identity, lifetime=lifetime) if csr
                  else pki.issue_allocation_certificate(ca, identity, lifetime=lifetime))
        return Credentials(worker=worker, ca_bundle=secret["bundle.crt"].encode(),
                           certificate=issued.certificate_pem, private_key=issued.private_key_pem,
                           serial=pki.serial_decimal(issued.certificate))

    async def _discard(self, pool: Pool, name: str) -> None:
        try:
            await self.kube.delete(API_VERSION, "BuildKitWorker", name, pool.namespace)
        except (ApiException, OSError) as exc:  # best effort; the lease expires anyway
            log.warning("could not delete worker %s after a failed allocation: %s", name, exc)

    async def allocate(self, pool: Pool, made: NewAllocation, request: AllocationRequest) -> Credentials:
        """Give ``made`` a ready worker of ``pool`` and credentials for it."""
        if request.csr:
            pki.load_csr(request.csr)  # a bad CSR is the caller's error: refuse before taking a worker
        size = self.size_for(pool, request.size)
        deadline = asyncio.get_running_loop().time() + self.settings.queue_timeout
        name, created = await self._obtain(pool, made.record, size, deadline)
        started = asyncio.get_running_loop().time()
        try:
            await self._wait_ready(pool, name, made.record.id)
            if created and self.on_started is not None:
                self.on_started(pool, asyncio.get_running_loop().time() - started)
            credentials = await self._credentials(pool, made.record, request.csr, name, made.record.job_id)
            certificate = pki.certificate_from_pem(credentials.certificate)
            await self.kube.patch(API_VERSION, "BuildKitWorker", name, pool.namespace, {"spec": {"allocation": {
                "certSerial": credentials.serial, "certFingerprint": pki.fingerprint_sha256(certificate)}}})
        except BaseException:  # includes CancelledError: a client that went away leaves nothing
            await asyncio.shield(self._discard(pool, name))
            raise
        return dataclasses.replace(credentials, size=self._profile(pool, size))
