"""Fixtures for the kubesim conformance suite: kubesim is the emulated part, every client is real."""

from __future__ import annotations

import copy
import itertools
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest

from kubesim.testing import KubeSimProcess, kubesim, run_kubesim

__all__ = ["kubesim"]  # re-exported pytest fixture

_names = itertools.count()

WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                    {
                        "name": "Ready",
                        "type": "string",
                        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
                    },
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1, "maximum": 10},
                                    "color": {"type": "string", "enum": ["red", "blue"], "default": "red"},
                                    "name": {"type": "string", "pattern": "^[a-z]+$"},
                                    "ports": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "required": ["port"],
                                            "properties": {
                                                "port": {"type": "integer"},
                                                "protocol": {"type": "string", "default": "TCP"},
                                            },
                                        },
                                    },
                                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                                },
                            },
                            "status": {
                                "type": "object",
                                "properties": {
                                    "phase": {"type": "string"},
                                    "conditions": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "x-kubernetes-preserve-unknown-fields": True,
                                        },
                                    },
                                },
                            },
                        },
                    }
                },
            }
        ],
    },
}


def widget_body(name: str, /, **spec: object) -> dict:
    """A Widget custom resource."""
    return {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}


@pytest.fixture
def widget_crd() -> dict:
    """The Widget CRD (a deep copy, tests may change it)."""
    return copy.deepcopy(WIDGET_CRD)


@pytest.fixture
def widget():
    return widget_body


@pytest.fixture(scope="session")
def kubesim_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeSimProcess]:
    """One ``kubesim serve`` subprocess shared by the tests that use blocking clients and kubectl."""
    # example.com/shell runs the pod's own command (an image without an entrypoint)
    with run_kubesim(tmp_path_factory.mktemp("kubesim"), "--image", "example.com/shell=") as proc:
        yield proc


@pytest.fixture(autouse=True)
def _clear_shared_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    """Faults a test left on the shared server must not leak into the next test."""
    yield
    if "kubesim_proc" in request.fixturenames:
        request.getfixturevalue("kubesim_proc").admin("/kubesim/faults", method="DELETE")


@pytest.fixture
def api_client(kubesim_proc: KubeSimProcess) -> Iterator[kubernetes.client.ApiClient]:
    """The official client, configured from the kubeconfig kubesim wrote (HTTPS, verified CA)."""
    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(str(kubesim_proc.kubeconfig), client_configuration=config)
    with kubernetes.client.ApiClient(config) as client:
        yield client


@pytest.fixture
def namespace(api_client: kubernetes.client.ApiClient) -> str:
    """A fresh namespace in the shared server, so tests do not see each other's objects."""
    name = f"t{next(_names)}"
    kubernetes.client.CoreV1Api(api_client).create_namespace({"metadata": {"name": name}})
    return name


@pytest.fixture(scope="session")
def kubectl_bin() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip("kubectl is not on PATH")
    return path


@pytest.fixture
def kubectl(kubectl_bin: str, kubesim_proc: KubeSimProcess, tmp_path: Path):
    """Run kubectl against the shared server; returns CompletedProcess (check=False)."""
    import subprocess

    cache = tmp_path / "kubectl-cache"

    def run(*args: str, stdin: str | None = None, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        command = [
            kubectl_bin,
            "--kubeconfig",
            str(kubesim_proc.kubeconfig),
            "--cache-dir",
            str(cache),
            *args,
        ]
        return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=timeout, check=False)

    return run


@pytest.fixture
async def kubesim_images():
    """A kubesim whose ``example.com/shell`` image runs the pod's own command; with a CoreV1Api."""
    from kubernetes_asyncio import client

    from kubesim import KubeSim

    async with (
        KubeSim(images={"example.com/shell": []}) as sim,
        client.ApiClient(client.Configuration(host=sim.url)) as api,
    ):
        yield sim, client.CoreV1Api(api)


@pytest.fixture(scope="session", autouse=True)
def no_stray_pod_processes():
    """Acceptance 5: when the session ends, no process started for a kubesim pod is left.

    Pod processes carry ``KUBESIM_SESSION`` from kubesim's environment (in-process servers and
    ``kubesim serve`` children alike), so other kubesims on the machine are not counted."""
    import os
    import uuid

    from kubesim.kubelet.process import SESSION, pids_with

    os.environ[SESSION] = session = uuid.uuid4().hex
    yield
    deadline = time.monotonic() + 5
    while (left := pids_with(f"{SESSION}={session}".encode())) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"processes of kubesim pods outlived the test session: {left}"
