"""Real kubectl (v1.32) against a ``kubesim serve`` process (the emulated API server) over HTTPS."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import yaml

pytestmark = pytest.mark.slow


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def widgets(kubectl, widget_crd):
    """The Widget CRD applied with kubectl (without --validate=false: kubesim serves /openapi/v3)."""
    _ok(kubectl("apply", "-f", "-", stdin=json.dumps(widget_crd)))


def _manifest(namespace: str, widget) -> str:
    wid = widget("w1", size=3)
    wid["metadata"].update(namespace=namespace, labels={"tier": "gold"})
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cm1", "namespace": namespace},
        "data": {"a": "b"},
    }
    return yaml.safe_dump_all([wid, cm])


def test_apply_get_with_printer_columns_and_reapply(kubectl, widgets, namespace, widget):
    manifest = _manifest(namespace, widget)
    out = _ok(kubectl("apply", "-f", "-", stdin=manifest))
    assert "widget.example.com/w1 created" in out and "configmap/cm1 created" in out
    assert "unchanged" in _ok(kubectl("apply", "-f", "-", stdin=manifest))
    table = _ok(kubectl("get", "widgets", "-n", namespace)).splitlines()
    assert table[0].split() == ["NAME", "SIZE", "READY", "AGE"]
    assert table[1].split()[:2] == ["w1", "3"]
    assert _ok(kubectl("get", "wd", "-n", namespace, "-l", "tier!=gold", "-o", "name")) == ""
    obj = json.loads(_ok(kubectl("get", "widget", "w1", "-n", namespace, "-o", "json")))
    assert obj["spec"] == {"size": 3, "color": "red"}


def test_apply_with_unknown_field_fails_server_side(kubectl, namespace):
    bad = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "bad", "namespace": namespace},
        "data": {},
        "dta": {},
    }
    result = kubectl("apply", "-f", "-", stdin=json.dumps(bad))
    assert result.returncode != 0
    assert 'unknown field "dta"' in result.stderr


def test_patch_label_wait_delete(kubectl, widgets, namespace, widget):
    _ok(kubectl("apply", "-f", "-", stdin=_manifest(namespace, widget)))
    _ok(kubectl("patch", "widget", "w1", "-n", namespace, "--type", "merge", "-p", '{"spec":{"size":5}}'))
    _ok(
        kubectl(
            "patch",
            "widget",
            "w1",
            "-n",
            namespace,
            "--type",
            "json",
            "-p",
            '[{"op":"replace","path":"/spec/color","value":"blue"}]',
        )
    )
    _ok(kubectl("patch", "configmap", "cm1", "-n", namespace, "-p", '{"data":{"c":"d"}}'))  # strategic
    _ok(kubectl("label", "configmap", "cm1", "-n", namespace, "team=a"))
    cm = json.loads(_ok(kubectl("get", "cm", "cm1", "-n", namespace, "-o", "json")))
    assert cm["data"] == {"a": "b", "c": "d"} and cm["metadata"]["labels"] == {"team": "a"}
    status = '{"status":{"conditions":[{"type":"Ready","status":"True"}]}}'
    _ok(
        kubectl(
            "patch",
            "widget",
            "w1",
            "-n",
            namespace,
            "--type",
            "merge",
            "--subresource",
            "status",
            "-p",
            status,
        )
    )
    assert "condition met" in _ok(
        kubectl("wait", "--for=condition=Ready", "widget/w1", "-n", namespace, "--timeout=5s")
    )
    row = _ok(kubectl("get", "widget", "w1", "-n", namespace, "--no-headers")).split()
    assert row[:3] == ["w1", "5", "True"]
    described = _ok(kubectl("describe", "widget", "w1", "-n", namespace))  # lists events by field selector
    assert "Size:   5" in described and "Events:" in described
    _ok(kubectl("delete", "widget", "w1", "-n", namespace))
    assert "No resources found" in kubectl("get", "widgets", "-n", namespace).stderr


def test_get_watch_streams_changes(kubectl_bin, kubesim_proc, tmp_path, kubectl, namespace):
    _ok(
        kubectl(
            "apply",
            "-f",
            "-",
            stdin=yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "watched", "namespace": namespace},
                }
            ),
        )
    )
    command = [
        kubectl_bin,
        "--kubeconfig",
        str(kubesim_proc.kubeconfig),
        "--cache-dir",
        str(tmp_path / "c"),
        "get",
        "configmaps",
        "-n",
        namespace,
        "-w",
        "--request-timeout=8s",
    ]
    watcher = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        _ok(kubectl("label", "configmap", "watched", "-n", namespace, "seen=yes"))
        _ok(kubectl("delete", "configmap", "watched", "-n", namespace))
        time.sleep(0.5)
    finally:
        watcher.terminate()
        out, _ = watcher.communicate(timeout=10)
    lines = [line.split() for line in out.splitlines()]
    assert lines[0][:2] == ["NAME", "DATA"]
    assert sum(1 for line in lines if line and line[0] == "watched") >= 2


def test_kubectl_wait_for_deletion_and_version(kubectl, namespace):
    _ok(
        kubectl(
            "apply",
            "-f",
            "-",
            stdin=yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": "s", "namespace": namespace},
                    "stringData": {"k": "v"},
                }
            ),
        )
    )
    secret = json.loads(_ok(kubectl("get", "secret", "s", "-n", namespace, "-o", "json")))
    assert secret["data"] == {"k": "dg=="}
    _ok(kubectl("delete", "secret", "s", "-n", namespace, "--wait=false"))
    _ok(kubectl("wait", "--for=delete", "secret/s", "-n", namespace, "--timeout=5s"))
    assert "Server Version: v1.32.0-kubesim" in _ok(kubectl("version"))


def test_scale_and_server_side_apply(kubectl, namespace):
    labels = {"app": "web"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            },
        },
    }
    assert "serverside-applied" in _ok(kubectl("apply", "--server-side", "-f", "-", stdin=json.dumps(deployment)))
    assert "scaled" in _ok(kubectl("scale", "deployment/web", "-n", namespace, "--replicas=3"))
    got = json.loads(_ok(kubectl("get", "deployment", "web", "-n", namespace, "-o", "json")))
    assert got["spec"]["replicas"] == 3 and got["metadata"]["generation"] == 2


def test_logs_wait_and_nodes_of_a_running_pod(kubectl, namespace):
    """kubectl against the simulated kubelet: the pod runs its command, ``kubectl wait`` sees it
    Ready, ``kubectl logs`` shows its output, ``kubectl get nodes`` lists the simulated node."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "talker", "namespace": namespace},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "example.com/shell:1",
                    "command": ["/bin/sh", "-c", "echo hello from $HOSTNAME; exec sleep 300"],
                }
            ]
        },
    }
    _ok(kubectl("apply", "-f", "-", stdin=json.dumps(pod)))
    _ok(kubectl("wait", "-n", namespace, "--for=condition=Ready", "pod/talker", "--timeout=10s"))
    deadline = time.monotonic() + 5
    while "hello" not in (logs := _ok(kubectl("logs", "-n", namespace, "talker"))) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert logs == "hello from talker\n"
    assert "kubesim-node" in _ok(kubectl("get", "nodes", "-o", "name"))
    _ok(kubectl("delete", "pod", "-n", namespace, "talker", "--wait=true", "--timeout=10s"))
