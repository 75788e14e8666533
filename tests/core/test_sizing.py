"""Size resolution with the built-in ``tshirt`` profiles, loaded as the controller loads them."""

from __future__ import annotations

from typing import Any

import pytest

from buildkit_controller.core._loader import load_plugins
from buildkit_controller.core.errors import ConfigError, SpecError
from buildkit_controller.core.models import PoolSpec, SizeProfile
from buildkit_controller.core.settings import PluginSettings
from buildkit_controller.core.sizing import merge_profiles, requestable, resolve_size


@pytest.fixture(scope="module")
def profiles() -> Any:
    host = load_plugins(PluginSettings())
    return merge_profiles(host.broadcast("bkc_sizing_profiles"))


def resolve(profiles: Any, spec: dict[str, Any], requested: str | None = None) -> Any:
    return resolve_size(PoolSpec.parse(spec), profiles, requested)


def test_seed_sizes_and_parallelism(profiles: Any) -> None:
    table = {
        name: (dict(p.resources.requests), dict(p.resources.limits), p.max_parallelism)
        for name, p in profiles.items()
    }
    assert table == {
        "sm": ({"cpu": "500m", "memory": "512Mi"}, {"cpu": "2", "memory": "2Gi"}, 2),
        "md": ({"cpu": "1", "memory": "2Gi"}, {"cpu": "4", "memory": "4Gi"}, 4),
        "lg": ({"cpu": "2", "memory": "4Gi"}, {"cpu": "8", "memory": "8Gi"}, 8),
        "xl": ({"cpu": "4", "memory": "8Gi"}, {"cpu": "16", "memory": "16Gi"}, 16),
    }


def test_default_is_md_and_size_selects_a_profile(profiles: Any) -> None:
    assert resolve(profiles, {}).profile == "md"
    assert resolve(profiles, {"size": "lg"}).resources.limits == {"cpu": "8", "memory": "8Gi"}


def test_explicit_resources_win_over_size(profiles: Any) -> None:
    resolved = resolve(profiles, {"size": "xl", "resources": {"buildkit": {"limits": {"cpu": "3"}}}})
    assert resolved.profile is None
    assert resolved.resources.limits == {"cpu": "3"}
    assert resolved.max_parallelism == 3


def test_request_size_is_capped_at_the_pool_maximum(profiles: Any) -> None:
    assert resolve(profiles, {"size": "md", "maxSize": "lg"}, "xl").profile == "lg"
    assert resolve(profiles, {"size": "md", "maxSize": "lg"}, "sm").profile == "sm"
    assert resolve(profiles, {"size": "sm"}, "xl").profile == "sm"  # no maxSize: size is the cap
    assert resolve(profiles, {}, "lg").profile == "md"  # neither: the default is the cap


def test_requestable_sizes_stop_at_the_pool_maximum(profiles: Any) -> None:
    def names(spec: dict[str, Any]) -> list[str]:
        return [p.name for p in requestable(PoolSpec.parse(spec), profiles)]

    assert names({"size": "sm", "maxSize": "lg"}) == ["sm", "md", "lg"]
    assert names({"size": "sm"}) == ["sm"]
    assert names({}) == ["sm", "md"]
    with pytest.raises(SpecError) as info:
        names({"maxSize": "huge"})
    assert info.value.path == "spec.maxSize"


def test_unknown_sizes_name_the_field(profiles: Any) -> None:
    with pytest.raises(SpecError, match="unknown size 'huge'") as info:
        resolve(profiles, {"size": "huge"})
    assert info.value.path == "spec.size"
    with pytest.raises(SpecError) as info:
        resolve(profiles, {}, "huge")
    assert info.value.path == "size"


def test_the_same_profile_name_from_two_plugins_is_refused(profiles: Any) -> None:
    twice = [list(profiles.values()), [profiles["md"]]]
    with pytest.raises(ConfigError, match="'md' is offered by more than one plugin"):
        merge_profiles(twice)
    without_default = {
        "x": SizeProfile(name="x", rank=1, resources=profiles["sm"].resources, max_parallelism=1)
    }
    with pytest.raises(ConfigError, match="default"):
        resolve_size(PoolSpec.parse({}), without_default)
