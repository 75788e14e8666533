"""Manifest builders are pure: each example renders to a reviewed golden file.

Set UPDATE_GOLDEN=1 to rewrite the golden files after an intended change, then review the diff.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from buildkit_controller.controller.manifests import (
    WorkerImages,
    buildkitd_config,
    gateway_deployment,
    gateway_rbac,
    gateway_service,
    pool_config_map,
    worker_pod,
)
from buildkit_controller.controller.manifests.buildkitd import deep_merge
from buildkit_controller.controller.manifests.worker import PRESTOP_DRAIN
from buildkit_controller.core._loader import load_plugins
from buildkit_controller.core.models import PodContribution, Pool
from buildkit_controller.core.settings import PluginSettings
from buildkit_controller.core.sizing import merge_profiles, resolve_size

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
PROFILES = merge_profiles(load_plugins(PluginSettings()).broadcast("bkc_sizing_profiles"))


def example(name: str, **meta: Any) -> Pool:
    body = yaml.safe_load((ROOT / "examples" / name).read_text())
    body["metadata"] = {"namespace": "ci", "uid": "pool-uid-1", **body["metadata"], **meta}
    return Pool.from_body(body)


def check_golden(name: str, rendered: Any) -> None:
    text = rendered if isinstance(rendered, str) else yaml.safe_dump(rendered, sort_keys=False)
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"no golden file {path.name}: run with UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(), f"{name} changed: review, then UPDATE_GOLDEN=1"


def worker_for(pool: Pool, **kwargs: Any) -> dict[str, Any]:
    return worker_pod(name=f"{pool.name}-worker-abc12", namespace=pool.namespace, worker_uid="worker-uid",
                      pool=pool, size=resolve_size(pool.spec, PROFILES), **kwargs)


@pytest.mark.parametrize("name", ["pool-example.yaml", "pool-with-scheduling.yaml"])
def test_worker_pod_golden(name: str) -> None:
    check_golden(f"worker-pod.{name}", worker_for(example(name)))


def test_gateway_objects_golden() -> None:
    pool = example("pool-example.yaml")
    objects = [gateway_deployment(pool, image="buildkit-controller/gateway:0.1.0", certs_hash="abc"),
               gateway_service(pool), *gateway_rbac(pool)]
    check_golden("gateway.pool-example.yaml", objects)


@pytest.mark.parametrize("name", ["pool-example.yaml", "pool-with-local-cache.yaml"])
def test_config_map_golden(name: str) -> None:
    pool = example(name)
    check_golden(f"config.{name}",
                 pool_config_map(pool, buildkitd_config(pool, resolve_size(pool.spec, PROFILES))))


def test_a_worker_of_a_requested_size_gets_its_resources_and_its_own_config() -> None:
    pool = Pool.from_body({"metadata": {"name": "p", "namespace": "ci"}, "spec": {"maxSize": "lg"}})
    sized = {"lg": buildkitd_config(pool, resolve_size(pool.spec, PROFILES, "lg"))}
    config = pool_config_map(pool, buildkitd_config(pool, resolve_size(pool.spec, PROFILES)), sized)
    pod = worker_pod(name="w", namespace="ci", worker_uid="u", pool=pool, requested="lg",
                     size=resolve_size(pool.spec, PROFILES, "lg"))
    [volume] = [v for v in pod["spec"]["volumes"] if v["name"] == "config"]
    [item] = volume["configMap"]["items"]
    assert item["path"] == "buildkitd.toml"
    assert tomllib.loads(config["data"][item["key"]])["worker"]["oci"]["max-parallelism"] == 8
    assert tomllib.loads(config["data"]["buildkitd.toml"])["worker"]["oci"]["max-parallelism"] == 4
    assert pod["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "8", "memory": "8Gi"}
    default = worker_for(pool)
    assert "items" not in next(v for v in default["spec"]["volumes"] if v["name"] == "config")["configMap"]


def test_buildkitd_toml_carries_sizing_gc_and_plugin_fragments() -> None:
    pool = example("pool-with-local-cache.yaml")
    fragment = {"registry": {"mirror.example": {"http": True}},
                "worker": {"oci": {"gcpolicy": [{"all": True, "reservedSpace": 1}]}}}
    config = tomllib.loads(buildkitd_config(pool, resolve_size(pool.spec, PROFILES, "lg"), [fragment]))
    oci = config["worker"]["oci"]
    assert oci["max-parallelism"] == 4  # the pool's size (md): a request's lg is capped at md
    assert oci["gc"] is True
    assert oci["gcpolicy"] == [{"all": True, "keepDuration": "168h"},
                               {"all": True, "maxUsedSpace": 40 * 2**30},
                               {"all": True, "reservedSpace": 1}]
    assert config["registry"] == {"mirror.example": {"http": True}}
    assert config["worker"]["containerd"] == {"enabled": False}


def test_buildkit_config_is_used_verbatim() -> None:
    pool = Pool.from_body({"metadata": {"name": "p"}, "spec": {"buildkitConfig": "debug = true\n"}})
    assert buildkitd_config(pool, resolve_size(pool.spec, PROFILES)) == "debug = true\n"


def test_deep_merge_appends_tables_and_replaces_values() -> None:
    base: dict[str, Any] = {"a": {"b": 1, "l": [1]}, "c": 2}
    assert deep_merge(base, {"a": {"b": 3, "l": [2], "n": {"x": 1}}, "c": 4}) == {
        "a": {"b": 3, "l": [1, 2], "n": {"x": 1}}, "c": 4}


def test_security_profiles_choose_image_and_context() -> None:
    base = {"metadata": {"name": "p", "namespace": "ci", "uid": "u"}}
    images = WorkerImages(rootless="bk:rootless", rootful="bk:rootful")
    for profile, image, privileged, host_users in [("rootless", "bk:rootless", None, None),
                                                   ("userns", "bk:rootful", True, False),
                                                   ("privileged", "bk:rootful", True, None)]:
        pool = Pool.from_body({**base, "spec": {"worker": {"securityProfile": profile}}})
        pod = worker_for(pool, images=images)
        container = pod["spec"]["containers"][0]
        assert container["image"] == image
        assert container["securityContext"].get("privileged") is privileged
        assert pod["spec"].get("hostUsers") is host_users
        assert ("--oci-worker-no-process-sandbox" in container["args"]) is (profile == "rootless")


def test_cache_contributions_replace_the_state_volume_and_add_env() -> None:
    pool = example("pool-example.yaml")
    contribution = PodContribution(
        env=({"name": "AWS_REGION", "value": "eu-west-1"},),
        volumes=({"name": "buildkitd", "persistentVolumeClaim": {"claimName": "state"}},))
    pod = worker_for(pool, contributions=[contribution])
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["buildkitd"] == {"name": "buildkitd", "persistentVolumeClaim": {"claimName": "state"}}
    assert {"name": "AWS_REGION", "value": "eu-west-1"} in pod["spec"]["containers"][0]["env"]


def test_node_port_and_load_balancer_services() -> None:
    node = Pool.from_body({"metadata": {"name": "p", "namespace": "ci"},
                           "spec": {"gateway": {"serviceType": "NodePort", "nodePort": 31235}}})
    assert gateway_service(node)["spec"]["ports"][0]["nodePort"] == 31235
    lb = Pool.from_body({"metadata": {"name": "p", "namespace": "ci"}, "spec": {"gateway": {
        "serviceType": "LoadBalancer", "loadBalancerClass": "example.com/lb"}}})
    assert gateway_service(lb)["spec"]["loadBalancerClass"] == "example.com/lb"


def env(pod_ip: str) -> dict[str, str]:
    return {"POD_IP": pod_ip, "PATH": "/usr/bin:/bin"}


def test_prestop_drain_waits_for_open_connections_to_the_pod_ip() -> None:
    """The preStop script really blocks while a client is connected to POD_IP:1234 (loopback)."""
    pod_ip = "127.0.83.17"
    with socket.create_server((pod_ip, 1234)) as server:
        client = socket.create_connection((pod_ip, 1234))
        accepted, _ = server.accept()
        drain = subprocess.Popen(["/bin/sh", "-c", PRESTOP_DRAIN], env=env(pod_ip))
        try:
            time.sleep(3)
            assert drain.poll() is None, "preStop returned while a build connection was open"
            client.close()
            accepted.close()
            assert drain.wait(timeout=10) == 0
        finally:
            drain.kill()
    idle = subprocess.run(["/bin/sh", "-c", PRESTOP_DRAIN], env=env("127.0.83.18"), timeout=10, check=False)
    assert idle.returncode == 0
