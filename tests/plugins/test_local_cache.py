"""The ``local`` cache plugin, through the kernel and the worker pod builder."""

from __future__ import annotations

from typing import Any

import pytest

from buildkit_controller.controller.manifests import worker_pod
from buildkit_controller.core._loader import load_plugins
from buildkit_controller.core.errors import SpecError
from buildkit_controller.core.settings import PluginSettings
from buildkit_controller.core.sizing import merge_profiles, resolve_size
from buildkit_controller.core.testing import make_pool

HOST = load_plugins(PluginSettings())


def pod_volumes(options: dict[str, Any]) -> dict[str, Any]:
    pool = make_pool({"cache": {"backends": [{"type": "local", "local": options}]}})
    backend = pool.spec.cache.backends[0]
    HOST.call("cache", "local", "bkc_cache_validate", backend=backend, pool=pool)
    contribution = HOST.call("cache", "local", "bkc_cache_worker_pod", backend=backend, pool=pool)
    pod = worker_pod(name="w", namespace="ci", worker_uid="u", pool=pool,
                     size=resolve_size(pool.spec, merge_profiles(HOST.broadcast("bkc_sizing_profiles"))),
                     contributions=[contribution] if contribution else [])
    return {v["name"]: v for v in pod["spec"]["volumes"]}


def test_without_options_the_state_is_an_empty_dir() -> None:
    assert pod_volumes({})["buildkitd"] == {"name": "buildkitd", "emptyDir": {}}


def test_storage_class_and_size_give_each_worker_its_own_claim() -> None:
    volume = pod_volumes({"storageClass": "fast-ssd", "size": "80Gi"})["buildkitd"]
    claim = volume["ephemeral"]["volumeClaimTemplate"]["spec"]
    assert claim == {"accessModes": ["ReadWriteOnce"], "storageClassName": "fast-ssd",
                     "resources": {"requests": {"storage": "80Gi"}}}
    assert "emptyDir" not in volume


def test_size_alone_uses_the_default_storage_class() -> None:
    claim = pod_volumes({"size": "20Gi"})["buildkitd"]["ephemeral"]["volumeClaimTemplate"]["spec"]
    assert "storageClassName" not in claim and claim["resources"]["requests"]["storage"] == "20Gi"


@pytest.mark.parametrize(("options", "path"), [
    ({"size": "lots"}, "spec.cache.backends[].local.size"),
    ({"storageClass": 5}, "spec.cache.backends[].local.storageClass"),
    ({"capacity": "1Gi"}, "spec.cache.backends[].local.capacity"),
])
def test_bad_options_name_the_field(options: dict[str, Any], path: str) -> None:
    with pytest.raises(SpecError) as info:
        pod_volumes(options)
    assert info.value.path == path
