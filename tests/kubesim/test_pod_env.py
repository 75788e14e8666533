"""What a container process sees, as the real kubelet would set it up.

Emulated: ``$(VAR)`` expansion in command/args (``$$`` escapes, unknown references stay),
configMapKeyRef and envFrom with a prefix, the downward API (env and volume), ``workingDir``,
ConfigMap volumes and a ``subPath`` file mount, the automounted ServiceAccount directory, per-container
logs, and a pod that waits (``ContainerCreating``) until the Secret it mounts exists.
"""

from __future__ import annotations

import asyncio


async def _log_when(core, name: str, container: str, lines: int, timeout: float = 10.0) -> str:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        log = await core.read_namespaced_pod_log(name, "default", container=container)
        if log.count("\n") >= lines:
            return log
        assert asyncio.get_running_loop().time() < deadline, f"log so far: {log!r}"
        await asyncio.sleep(0.05)


async def test_env_expansion_volumes_and_working_dir(kubesim_images):
    _, core = kubesim_images
    await core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}, "data": {"key": "cm-value"}})
    env = [
        {"name": "GREETING", "value": "hello"},
        {"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "key"}}},
        {"name": "POD_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "COMBINED", "value": "$(GREETING)-$(POD_NS)"},
    ]
    expand = {
        "name": "expand",
        "image": "example.com/shell",
        "env": env,
        "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
        "command": ["/bin/echo"],
        "args": ["$(GREETING)", "$$(GREETING)", "$(UNKNOWN)", "$(FROM_CM)", "$(COMBINED)", "$(CM_key)"],
    }
    script = "cat key; echo; cat /etc/one/only.txt; echo; cat /etc/podinfo/labels; echo; pwd; "
    script += "ls /var/run/secrets/kubernetes.io/serviceaccount; sleep 300"
    files = {
        "name": "files",
        "image": "example.com/shell",
        "workingDir": "/etc/cfg",
        "command": ["/bin/sh", "-c", script],
        "volumeMounts": [
            {"name": "cfg", "mountPath": "/etc/cfg"},
            {"name": "cfg", "mountPath": "/etc/one/only.txt", "subPath": "key"},
            {"name": "podinfo", "mountPath": "/etc/podinfo"},
        ],
    }
    volumes = [
        {"name": "cfg", "configMap": {"name": "cm"}},
        {
            "name": "podinfo",
            "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]},
        },
    ]
    body = {
        "metadata": {"name": "env", "labels": {"app": "env"}},
        "spec": {"restartPolicy": "Never", "containers": [expand, files], "volumes": volumes},
    }
    await core.create_namespaced_pod("default", body)
    assert await _log_when(core, "env", "expand", 1) == "hello $(GREETING) $(UNKNOWN) cm-value hello-default cm-value\n"
    log = await _log_when(core, "env", "files", 7)
    assert log.splitlines() == ["cm-value", "cm-value", 'app="env"', "/etc/cfg", "ca.crt", "namespace", "token"]
    pod = await core.read_namespaced_pod("env", "default")
    states = {s.name: s.state for s in pod.status.container_statuses}
    assert states["expand"].terminated.reason == "Completed" and states["files"].running is not None
    assert pod.status.phase == "Running"


async def test_pod_waits_for_its_secret(kubesim_images):
    _, core = kubesim_images
    container = {
        "name": "main",
        "image": "example.com/shell",
        "command": ["/bin/sh", "-c", "cat /s/v; sleep 300"],
        "volumeMounts": [{"name": "s", "mountPath": "/s"}],
    }
    spec = {"containers": [container], "volumes": [{"name": "s", "secret": {"secretName": "late"}}]}
    await core.create_namespaced_pod("default", {"metadata": {"name": "waits"}, "spec": spec})
    await asyncio.sleep(0.5)
    pod = await core.read_namespaced_pod("waits", "default")
    assert pod.status.phase == "Pending"
    assert pod.status.container_statuses[0].state.waiting.reason == "ContainerCreating"
    await core.create_namespaced_secret("default", {"metadata": {"name": "late"}, "stringData": {"v": "there"}})
    deadline = asyncio.get_running_loop().time() + 10
    while (log := await core.read_namespaced_pod_log("waits", "default")) != "there":
        assert asyncio.get_running_loop().time() < deadline, log
        await asyncio.sleep(0.05)


async def test_unmountable_volume_is_a_create_container_error(kubesim_images):
    _, core = kubesim_images
    container = {
        "name": "main",
        "image": "example.com/shell",
        "command": ["/bin/sh", "-c", "sleep 300"],
        "volumeMounts": [{"name": "h", "mountPath": "/data"}],
    }
    volume = {"name": "h", "hostPath": {"path": "/nonexistent/kubesim-test-path"}}
    spec = {"containers": [container], "volumes": [volume]}
    await core.create_namespaced_pod("default", {"metadata": {"name": "broken"}, "spec": spec})
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        pod = await core.read_namespaced_pod("broken", "default")
        waiting = pod.status.container_statuses and pod.status.container_statuses[0].state.waiting
        if waiting and waiting.reason == "CreateContainerError":
            break
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    assert "/nonexistent/kubesim-test-path" in waiting.message and pod.status.phase == "Pending"


async def test_init_containers_run_in_order_before_the_containers(kubesim_images):
    """Init containers share the pod's volumes, run one after another to success (a failing one is
    retried), and only then do the containers start; ``Initialized`` turns True."""
    _, core = kubesim_images
    mount = [{"name": "work", "mountPath": "/work-dir"}]

    def shell(name: str, script: str) -> dict:
        return {"name": name, "image": "example.com/shell", "command": ["/bin/sh", "-c", script], "volumeMounts": mount}

    flaky = "test -e /work-dir/tried || { touch /work-dir/tried; exit 1; }; echo second >> /work-dir/order"
    spec = {
        "initContainers": [shell("first", "echo first > /work-dir/order"), shell("second", flaky)],
        "containers": [shell("main", "cat /work-dir/order; sleep 300")],
        "volumes": [{"name": "work", "emptyDir": {}}],
    }
    await core.create_namespaced_pod("default", {"metadata": {"name": "inits"}, "spec": spec})
    assert await _log_when(core, "inits", "main", 2) == "first\nsecond\n"
    pod = await core.read_namespaced_pod("inits", "default")
    inits = {s.name: s for s in pod.status.init_container_statuses}
    assert inits["first"].state.terminated.exit_code == 0 and inits["second"].restart_count == 1
    assert {c.type: c.status for c in pod.status.conditions}["Initialized"] == "True"
