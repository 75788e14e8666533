"""Contract tests for plugin authors (a pytest plugin, loaded automatically when installed).

Subclass the contract for your hook family and provide a ``plugin`` fixture returning an instance
of your plugin class; pytest then runs every contract test against it::

    from buildkit_controller.core.testing import ScalingContract

    class TestMyPolicy(ScalingContract):
        @pytest.fixture
        def plugin(self):
            return MyPolicy()

Cache contracts also need ``backend_options`` (valid options) and ``invalid_backend_options``;
auth and credential contracts need nothing more. Each test gets a fresh plugin manager holding
only your plugin (``plugin_host``), so hooks are called exactly as the kernel calls them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from buildkit_controller.core._loader import PluginHost, new_plugin_manager
from buildkit_controller.core.errors import AuthenticationError, SpecError
from buildkit_controller.core.models import (
    AllocationRecord,
    AuthDecision,
    AuthRequest,
    CacheBackend,
    CacheOptions,
    Credential,
    CredentialContext,
    Identity,
    PodContribution,
    Pool,
    PoolSpec,
    Runtime,
    ScalingDecision,
    SizeProfile,
    Worker,
    WorkerPhase,
    parse_quantity,
)

__all__ = [
    "AuthContract",
    "CacheContract",
    "CredentialsContract",
    "ScalingContract",
    "SizingContract",
    "host_with",
    "make_pool",
    "make_worker",
]

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def host_with(group: str, name: str, plugin: object) -> PluginHost:
    """A fresh plugin host with one plugin registered as ``<group>:<name>`` (no entry points)."""
    pm = new_plugin_manager()
    pm.register(plugin, name=f"{group}:{name}")
    pm.check_pending()
    return PluginHost(pm, {group: (name,)})


def make_pool(spec: Mapping[str, Any] | None = None, name: str = "pool", namespace: str = "ci") -> Pool:
    """A pool with ``spec`` parsed exactly as the reconciler parses CR bodies."""
    return Pool(name=name, namespace=namespace, spec=PoolSpec.parse(spec or {}))


def make_worker(name: str, phase: WorkerPhase, *, age: timedelta = timedelta(hours=1),
                idle_for: timedelta | None = None, allocated: bool = False,
                expires_in: timedelta = timedelta(hours=1), connections: int = 0,
                now: datetime = NOW, pool: str = "pool") -> Worker:
    """A worker of ``pool`` in ``phase``, created ``age`` ago, idle for ``idle_for``."""
    allocation = AllocationRecord(
        id=f"a{name}", token_hash="sha256:00",  # noqa: S106  a placeholder hash, no secret
        subject="ci", job_id="job", allocated_at=now - age,
        expires_at=now + expires_in) if allocated else None
    last = now - idle_for if idle_for is not None else None
    return Worker.model_validate({
        "name": name, "namespace": "ci", "poolRef": {"name": pool}, "created": now - age,
        "allocation": allocation,
        "status": {"phase": phase, "readyAt": now - age, "lastActivityAt": last,
                   "activeConnections": connections}})


# ---------------------------------------------------------------------------------------------------
@pytest.fixture
def plugin_host(request: pytest.FixtureRequest) -> PluginHost:
    """The contract class's plugin alone in a fresh plugin manager, under its ``group``."""
    cls = request.cls
    plugin = request.getfixturevalue("plugin")
    return host_with(cls.group, cls.plugin_name, plugin)


class _Contract:
    group = ""
    plugin_name = "under-test"

    @pytest.fixture
    def plugin(self) -> object:  # pragma: no cover - always overridden
        raise NotImplementedError("provide a `plugin` fixture returning your plugin instance")

    @pytest.mark.parametrize("process", ["api", "operator", "gateway", "bkctl"])
    def test_configure_takes_any_process_without_io(self, plugin_host: PluginHost, process: str) -> None:
        runtime = Runtime(process=process, environ={"HOME": "/nonexistent"})  # type: ignore[arg-type]
        plugin_host.pm.hook.bkc_configure.call_historic(kwargs={"runtime": runtime})


class SizingContract(_Contract):
    """Profiles are well-formed, uniquely named and ranked, requests never exceed limits."""

    group = "sizing"

    def profiles(self, host: PluginHost) -> list[SizeProfile]:
        result = host.call(self.group, self.plugin_name, "bkc_sizing_profiles")
        return list(result or [])

    def test_offers_profiles_with_unique_names_and_ranks(self, plugin_host: PluginHost) -> None:
        profiles = self.profiles(plugin_host)
        assert profiles, "a sizing plugin must offer at least one profile"
        assert len({p.name for p in profiles}) == len(profiles)
        assert len({p.rank for p in profiles}) == len(profiles)
        assert sum(p.default for p in profiles) <= 1

    def test_requests_do_not_exceed_limits(self, plugin_host: PluginHost) -> None:
        for profile in self.profiles(plugin_host):
            for resource, request in profile.resources.requests.items():
                limit = profile.resources.limits.get(resource)
                assert limit is None or parse_quantity(request) <= parse_quantity(limit), profile.name
            assert profile.max_parallelism >= 1


def _scenarios() -> list[tuple[str, dict[str, Any], list[Worker], int]]:
    idle = [make_worker(f"i{n}", WorkerPhase.IDLE, idle_for=timedelta(hours=2)) for n in range(4)]
    busy = [make_worker(f"b{n}", WorkerPhase.ALLOCATED, allocated=True) for n in range(3)]
    return [
        ("empty, min 0", {"scaling": {"min": 0}}, [], 0),
        ("empty, min 3", {"scaling": {"min": 3, "max": 5}}, [], 0),
        ("demand beyond max", {"scaling": {"min": 2, "max": 3}}, busy[:2], 10),
        ("idle above min", {"scaling": {"min": 1}}, idle, 0),
        ("max lowered", {"scaling": {"min": 0, "max": 2}}, idle + busy, 0),
        ("all allocated at max", {"scaling": {"min": 1, "max": 3}}, busy, 5),
    ]


class ScalingContract(_Contract):
    """Decisions never exceed ``max``, never remove live allocations, and name real workers."""

    group = "scaling"

    def decide(self, host: PluginHost, pool: Pool, workers: list[Worker], demand: int) -> ScalingDecision:
        decision = host.call(self.group, self.plugin_name, "bkc_scaling_decide",
                             pool=pool, workers=workers, now=NOW, demand=demand)
        assert isinstance(decision, ScalingDecision)
        return decision

    @pytest.mark.parametrize("case", range(len(_scenarios())), ids=[s[0] for s in _scenarios()])
    def test_respects_max_and_allocations(self, plugin_host: PluginHost, case: int) -> None:
        _, spec, workers, demand = _scenarios()[case]
        pool = make_pool(spec)
        decision = self.decide(plugin_host, pool, workers, demand)
        names = {w.name for w in workers}
        removed = [r.name for r in decision.remove]
        assert len(removed) == len(set(removed)) and set(removed) <= names
        assert decision.create >= 0
        assert len(workers) + decision.create <= max(pool.spec.scaling.max, len(workers))
        assert not {w.name for w in workers if w.allocation is not None} & set(removed)
        assert all(r.reason for r in decision.remove)

    def test_is_deterministic(self, plugin_host: PluginHost) -> None:
        _, spec, workers, demand = _scenarios()[3]
        first = self.decide(plugin_host, make_pool(spec), workers, demand)
        assert self.decide(plugin_host, make_pool(spec), workers, demand) == first


class CacheContract(_Contract):
    """Options are validated with a field path; renderers return the documented types."""

    group = "cache"

    @pytest.fixture
    def backend_options(self) -> Mapping[str, Any]:  # pragma: no cover - always overridden
        raise NotImplementedError

    @pytest.fixture
    def invalid_backend_options(self) -> Mapping[str, Any]:  # pragma: no cover - always overridden
        raise NotImplementedError

    def _backend(self, options: Mapping[str, Any]) -> CacheBackend:
        return CacheBackend(type=self.plugin_name, options=options)

    def test_accepts_valid_and_rejects_invalid_options(
            self, plugin_host: PluginHost, backend_options: Mapping[str, Any],
            invalid_backend_options: Mapping[str, Any]) -> None:
        pool = make_pool()
        call = plugin_host.call
        assert call(self.group, self.plugin_name, "bkc_cache_validate",
                    backend=self._backend(backend_options), pool=pool) is None
        with pytest.raises(SpecError) as info:
            call(self.group, self.plugin_name, "bkc_cache_validate",
                 backend=self._backend(invalid_backend_options), pool=pool)
        assert info.value.path, "SpecError must name the offending field"

    def test_renderers_return_documented_types(self, plugin_host: PluginHost,
                                               backend_options: Mapping[str, Any]) -> None:
        kwargs = {"backend": self._backend(backend_options), "pool": make_pool()}
        expected = {"bkc_cache_buildkitd_config": Mapping, "bkc_cache_worker_pod": PodContribution,
                    "bkc_cache_client_options": CacheOptions}
        for hook, kind in expected.items():
            result = plugin_host.call(self.group, self.plugin_name, hook, **kwargs)
            assert result is None or isinstance(result, kind), hook


class AuthContract(_Contract):
    """Abstains without a credential; rejects garbage only with ``AuthenticationError``."""

    group = "auth"

    def authenticate(self, host: PluginHost, request: AuthRequest) -> Identity | None:
        async def run() -> Any:
            from buildkit_controller.core._aio import resolve  # noqa: PLC0415  keep import-time light

            return await resolve(host.call(self.group, self.plugin_name, "bkc_authenticate",
                                           request=request))
        result: Identity | None = asyncio.run(run())
        return result

    def test_abstains_without_credentials(self, plugin_host: PluginHost) -> None:
        assert self.authenticate(plugin_host, AuthRequest()) is None

    @pytest.mark.parametrize("garbage", ["x", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "\u2603" * 300])
    def test_garbage_is_abstained_or_rejected(self, plugin_host: PluginHost, garbage: str) -> None:
        try:
            identity = self.authenticate(plugin_host, AuthRequest(bearer=garbage))
        except AuthenticationError as exc:
            assert garbage not in str(exc), "a rejection must not echo the credential"
        else:
            assert identity is None, "a garbage credential must never authenticate"


    @pytest.mark.parametrize("action", ["allocate", "release", "renew", "status", "list", "certs"])
    def test_authorize_votes_with_a_reason_or_abstains(self, plugin_host: PluginHost, action: str) -> None:
        async def run() -> Any:
            from buildkit_controller.core._aio import resolve_all  # noqa: PLC0415  keep import-time light

            return await resolve_all(plugin_host.pm.hook.bkc_authorize(
                identity=Identity(subject="someone", method=self.plugin_name), pool=make_pool(),
                action=action))
        for vote in asyncio.run(run()):
            assert isinstance(vote, AuthDecision) and vote.reason


class CredentialsContract(_Contract):
    """Abstains in an empty environment; a found credential never shows its token in ``repr``."""

    group = "credentials"

    def test_abstains_in_an_empty_environment(self, plugin_host: PluginHost) -> None:
        async def run() -> Any:
            from buildkit_controller.core._aio import resolve  # noqa: PLC0415  keep import-time light

            return await resolve(plugin_host.call(self.group, self.plugin_name, "bkc_credential",
                                                  context=CredentialContext(environ={})))
        assert asyncio.run(run()) is None

    def test_credential_repr_hides_the_token(self) -> None:
        fake = "s3cr3t"
        assert fake not in repr(Credential(token=fake, source="test"))
