"""Every built-in plugin passes the contract suite plugin authors get from core.testing.

The auth, cache and credential contracts are also run against small example plugins defined here,
so that the contracts themselves (and the hooks they call) are exercised before the built-in auth
and cache plugins arrive.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from buildkit_controller.core import hookimpl
from buildkit_controller.core._aio import resolve_all
from buildkit_controller.core.errors import AuthenticationError, SpecError
from buildkit_controller.core.models import (
    AuthDecision,
    AuthRequest,
    CacheBackend,
    CacheOptions,
    Credential,
    CredentialContext,
    Identity,
    PodContribution,
    Pool,
)
from buildkit_controller.core.testing import (
    AuthContract,
    CacheContract,
    CredentialsContract,
    ScalingContract,
    SizingContract,
    make_pool,
)
from buildkit_controller.plugins.local import LocalCache
from buildkit_controller.plugins.minidle import MinIdleScaling
from buildkit_controller.plugins.schedule import ScheduleScaling
from buildkit_controller.plugins.tshirt import TShirtSizing


class TestTShirt(SizingContract):
    plugin_name = "tshirt"

    @pytest.fixture
    def plugin(self) -> object:
        return TShirtSizing()


class TestMinIdle(ScalingContract):
    plugin_name = "minidle"

    @pytest.fixture
    def plugin(self) -> object:
        return MinIdleScaling()


class TestSchedule(ScalingContract):
    plugin_name = "schedule"

    @pytest.fixture
    def plugin(self) -> object:
        return ScheduleScaling()


class TestLocal(CacheContract):
    plugin_name = "local"

    @pytest.fixture
    def plugin(self) -> object:
        return LocalCache()

    @pytest.fixture
    def backend_options(self) -> Mapping[str, Any]:
        return {"storageClass": "fast", "size": "80Gi"}

    @pytest.fixture
    def invalid_backend_options(self) -> Mapping[str, Any]:
        return {"size": "huge"}


class ExampleCache:
    """A cache plugin as a third party would write one."""

    @hookimpl
    def bkc_cache_validate(self, backend: CacheBackend, pool: Pool) -> None:
        if not isinstance(backend.options.get("bucket"), str):
            raise SpecError("spec.cache.backends[].example.bucket", "a bucket name is required")

    @hookimpl
    def bkc_cache_buildkitd_config(self, backend: CacheBackend, pool: Pool) -> Mapping[str, Any]:
        return {"worker": {"oci": {"gckeepstorage": 1000}}}

    @hookimpl
    def bkc_cache_worker_pod(self, backend: CacheBackend, pool: Pool) -> PodContribution:
        return PodContribution(env=({"name": "BUCKET", "value": backend.options["bucket"]},))

    @hookimpl
    def bkc_cache_client_options(self, backend: CacheBackend, pool: Pool) -> CacheOptions:
        bucket = backend.options["bucket"]
        return CacheOptions(cache_from=(f"type=example,bucket={bucket}",))


class TestExampleCache(CacheContract):
    plugin_name = "example"

    @pytest.fixture
    def plugin(self) -> object:
        return ExampleCache()

    @pytest.fixture
    def backend_options(self) -> Mapping[str, Any]:
        return {"bucket": "cache"}

    @pytest.fixture
    def invalid_backend_options(self) -> Mapping[str, Any]:
        return {"bucket": 7}


class ExampleAuth:
    """A static-token auth method: abstains on other credentials, rejects near-misses."""

    @hookimpl
    async def bkc_authenticate(self, request: AuthRequest) -> Identity | None:
        if not request.bearer or not request.bearer.startswith("ex_"):
            return None
        if request.bearer != "ex_good":
            raise AuthenticationError("unknown example token", method="example")
        return Identity(subject="ci-bot", method="example")

    @hookimpl
    def bkc_authorize(self, identity: Identity, pool: Pool, action: str) -> AuthDecision | None:
        if pool.name.startswith("private-"):
            return AuthDecision(allowed=False, reason="private pools are closed to example tokens")
        return None


class TestExampleAuth(AuthContract):
    plugin_name = "example"

    @pytest.fixture
    def plugin(self) -> object:
        return ExampleAuth()

    def test_rejects_a_near_miss_without_echoing_it(self, plugin_host: Any) -> None:
        with pytest.raises(AuthenticationError) as info:
            self.authenticate(plugin_host, AuthRequest(bearer="ex_bad"))
        assert "ex_bad" not in str(info.value)
        assert self.authenticate(plugin_host, AuthRequest(bearer="ex_good")) == Identity(
            subject="ci-bot", method="example")


    async def test_denies_private_pools(self, plugin_host: Any) -> None:
        votes = await resolve_all(plugin_host.pm.hook.bkc_authorize(
            identity=Identity(subject="ci-bot", method="example"), pool=make_pool(name="private-x"),
            action="allocate"))
        assert [v.allowed for v in votes] == [False]


class ExampleCredentials:
    @hookimpl
    def bkc_credential(self, context: CredentialContext) -> Credential | None:
        token = context.environ.get("EXAMPLE_TOKEN")
        return Credential(token=token, source="EXAMPLE_TOKEN") if token else None


class TestExampleCredentials(CredentialsContract):
    plugin_name = "example"

    @pytest.fixture
    def plugin(self) -> object:
        return ExampleCredentials()
