"""A real Kopf operator (subprocess) against a ``kubesim serve`` process, the emulated API server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes.client import ApiextensionsV1Api, CoreV1Api, CustomObjectsApi
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.slow

OPERATOR = Path(__file__).with_name("kopf_widget_operator.py")
G, V, P = "example.com", "v1", "widgets"


def _eventually(check: Callable[[], object], timeout: float = 15.0) -> object:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except (ApiException, KeyError, AssertionError):
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


@pytest.fixture
def kopf_operator(kubesim_proc, api_client, widget_crd, tmp_path) -> Iterator[subprocess.Popen[bytes]]:
    try:
        ApiextensionsV1Api(api_client).create_custom_resource_definition(widget_crd)
    except ApiException as exc:
        if exc.status != 409:
            raise
    log = (tmp_path / "kopf.log").open("wb")
    command = [
        sys.executable,
        "-m",
        "kopf",
        "run",
        "--standalone",
        "--all-namespaces",
        "--verbose",
        str(OPERATOR),
    ]
    process = subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "KUBECONFIG": str(kubesim_proc.kubeconfig)},
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        sys.stdout.write((tmp_path / "kopf.log").read_text()[-4000:])


def test_kopf_lifecycle_with_faults(kopf_operator, kubesim_proc, api_client, namespace, widget):
    """Acceptance 1 (Kopf): create → owned child + status; watch drop + 410 → recovery; delete → finalizer,
    delete handler, object gone, child garbage-collected."""
    core, custom = CoreV1Api(api_client), CustomObjectsApi(api_client)
    custom.create_namespaced_custom_object(G, V, namespace, P, widget("w", size=2))
    child = _eventually(lambda: core.read_namespaced_config_map("w-child", namespace))
    owner = custom.get_namespaced_custom_object(G, V, namespace, P, "w")
    assert child.metadata.owner_references[0].uid == owner["metadata"]["uid"]
    _eventually(
        lambda: custom.get_namespaced_custom_object(G, V, namespace, P, "w")["status"]["phase"] == "Created"
    )
    assert owner["metadata"]["finalizers"], "Kopf adds its finalizer because of the delete handler"
    events = _eventually(lambda: core.list_namespaced_event(namespace).items)
    assert (events[0].involved_object.name, events[0].reason) == ("w", "ChildCreated")

    # A watch stream that ends, then a re-watch answered with 410 Expired: Kopf must relist and go on.
    kubesim_proc.admin("/kubesim/faults", {"verb": "watch", "resource": "widgets", "status": 410})
    assert kubesim_proc.admin("/kubesim/watches/drop?resource=widgets")["dropped"] >= 1
    _eventually(lambda: kubesim_proc.admin("/kubesim/faults", method="GET") == [])  # Kopf hit the 410
    custom.patch_namespaced_custom_object(G, V, namespace, P, "w", {"spec": {"size": 7}})
    _eventually(lambda: core.read_namespaced_config_map("w-child", namespace).data["size"] == "7")

    custom.delete_namespaced_custom_object(G, V, namespace, P, "w")
    _eventually(lambda: core.read_namespaced_config_map("w-deleted", namespace))

    def gone(read: Callable[[], object]) -> bool:
        try:
            read()
        except ApiException as exc:
            return exc.status == 404
        return False

    _eventually(lambda: gone(lambda: custom.get_namespaced_custom_object(G, V, namespace, P, "w")))
    _eventually(lambda: gone(lambda: core.read_namespaced_config_map("w-child", namespace)))
