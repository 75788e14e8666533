"""Deployment and ReplicaSet controllers, as kube-controller-manager runs them.

ReplicaSets keep ``spec.replicas`` pods matching their selector, created from the template with an
ownerReference (so deletion cascades through the garbage collector) and removed gracefully when there
are too many (not-ready pods first, then the newest). Deployments own one ReplicaSet per pod template
(``pod-template-hash``); a template change rolls pods over honouring ``maxSurge``/``maxUnavailable``
(``Recreate``: old pods go first). Ready counts as available (``minReadySeconds`` is ignored); paused
Deployments, rollback and progress deadlines are not emulated; scaled-down ReplicaSets beyond
``revisionHistoryLimit`` are deleted.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from .controllers import Controller
from .events import Event
from .labels import is_ready, selector_matches
from .resources import ResourceType
from .store import Store, WriteOptions

__all__ = ["DeploymentController", "ReplicaSetController"]

_STATUS = WriteOptions(subresource="status")


def _owner_ref(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _controller_of(obj: dict[str, Any], kind: str) -> str | None:
    for ref in obj["metadata"].get("ownerReferences") or ():
        if ref.get("controller") and ref.get("kind") == kind:
            return str(ref.get("name"))
    return None


def _set_status(store: Store, rtype: ResourceType, obj: dict[str, Any], status: dict[str, Any]) -> None:
    if {**(obj.get("status") or {}), **status} == obj.get("status"):
        return
    meta = obj["metadata"]
    store.patch(
        rtype,
        meta["namespace"],
        meta["name"],
        lambda o: {**o, "status": {**o.get("status", {}), **status}},
        _STATUS,
    )


class ReplicaSetController(Controller):
    """Creates and deletes pods so each ReplicaSet has ``spec.replicas`` of them; keeps its status."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.rs_type = self._type("apps", "replicasets")
        self.pod_type = self._type("", "pods")

    def _type(self, group: str, plural: str) -> ResourceType:
        found = self.store.registry.by_key(f"{group}/{plural}")
        assert found
        return found[0]

    def handle(self, event: Event) -> None:
        meta = event.obj["metadata"]
        if event.key == "apps/replicasets" and event.type != "DELETED":
            self.sync(meta["namespace"], meta["name"])
        elif event.key == "/pods" and (owner := _controller_of(event.obj, "ReplicaSet")):
            self.sync(meta["namespace"], owner)

    def owned_pods(self, rs: dict[str, Any]) -> list[dict[str, Any]]:
        pods = []
        for key, ns, name in self.store.dependents(rs["metadata"]["uid"]):
            pod = self.store.raw(key, ns, name) if key == "/pods" else None
            if pod and selector_matches(rs["spec"].get("selector"), pod["metadata"].get("labels")):
                pods.append(pod)
        return pods

    def sync(self, namespace: str, name: str) -> None:
        rs = self.store.find(self.rs_type, namespace, name)
        if rs is None or rs["metadata"].get("deletionTimestamp"):
            return
        pods = self.owned_pods(rs)
        active = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        want = int(rs["spec"].get("replicas", 1))
        for _ in range(want - len(active)):
            self._create_pod(rs)
        if len(active) > want:
            for pod in sorted(active, key=_deletion_rank)[: len(active) - want]:
                grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
                self.store.delete(self.pod_type, namespace, pod["metadata"]["name"], grace=int(grace))
        rs = self.store.get(self.rs_type, namespace, name)
        active = [p for p in self.owned_pods(rs) if not p["metadata"].get("deletionTimestamp")]
        ready = sum(1 for p in active if is_ready(p))
        status = {
            "replicas": len(active),
            "fullyLabeledReplicas": len(active),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        _set_status(self.store, self.rs_type, rs, status)

    def _create_pod(self, rs: dict[str, Any]) -> None:
        template = rs["spec"].get("template") or {}
        meta = dict(template.get("metadata") or {})
        meta.pop("name", None)
        meta.update(generateName=f"{rs['metadata']['name']}-", ownerReferences=[_owner_ref(rs)])
        body = {"metadata": meta, "spec": template.get("spec") or {}}
        self.store.create(self.pod_type, rs["metadata"]["namespace"], body)


def _deletion_rank(pod: dict[str, Any]) -> tuple[int, int, str]:
    """Unscheduled before scheduled, not ready before ready, newer before older."""
    scheduled = 1 if (pod.get("spec") or {}).get("nodeName") else 0
    created = pod["metadata"].get("creationTimestamp", "")
    return (scheduled, 1 if is_ready(pod) else 0, _invert(created))


def _invert(text: str) -> str:
    return "".join(chr(0x10FFFF - ord(c)) for c in text)


def template_hash(template: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
    return "".join(c for c in digest if c in "bcdfghjklmnpqrstvwxz2456789")[:10] or digest[:10]


def _scaled(value: Any, replicas: int, *, up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        exact = replicas * int(value[:-1]) / 100
        return math.ceil(exact) if up else math.floor(exact)
    return int(value)


class DeploymentController(Controller):
    """One ReplicaSet per pod template; rolling or recreate replacement; the Deployment's status."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        found = store.registry.by_key("apps/deployments")
        rs_found = store.registry.by_key("apps/replicasets")
        assert found and rs_found
        self.deploy_type, self.rs_type = found[0], rs_found[0]

    def handle(self, event: Event) -> None:
        meta = event.obj["metadata"]
        if event.key == "apps/deployments" and event.type != "DELETED":
            self.sync(meta["namespace"], meta["name"])
        elif event.key == "apps/replicasets" and (owner := _controller_of(event.obj, "Deployment")):
            self.sync(meta["namespace"], owner)

    def _owned(self, deploy: dict[str, Any]) -> list[dict[str, Any]]:
        found = []
        for key, ns, name in self.store.dependents(deploy["metadata"]["uid"]):
            rs = self.store.raw(key, ns, name) if key == "apps/replicasets" else None
            if rs and not rs["metadata"].get("deletionTimestamp"):
                found.append(rs)
        return found

    def sync(self, namespace: str, name: str) -> None:
        deploy = self.store.find(self.deploy_type, namespace, name)
        if deploy is None or deploy["metadata"].get("deletionTimestamp"):
            return
        spec = deploy["spec"]
        digest = template_hash(spec.get("template") or {})
        owned = self._owned(deploy)
        new = next((rs for rs in owned if _hash_of(rs) == digest), None)
        if new is None:
            new = self._create_rs(deploy, digest, max((_revision(rs) for rs in owned), default=0) + 1)
        olds = [rs for rs in owned if rs is not new and _hash_of(rs) != digest]
        if (spec.get("strategy") or {}).get("type") == "Recreate":
            targets = self._recreate(deploy, new, olds)
        else:
            targets = self._rolling(deploy, new, olds)
        for rs, replicas in targets:
            if int(rs["spec"].get("replicas", 0)) != replicas:
                self._scale(rs, replicas)
        self._prune(deploy, olds)
        self._status(deploy, digest)

    def _prune(self, deploy: dict[str, Any], olds: list[dict[str, Any]]) -> None:
        """Delete the oldest scaled-down ReplicaSets beyond ``revisionHistoryLimit``."""
        idle = [rs for rs in olds if not rs["spec"].get("replicas") and not (rs.get("status") or {}).get("replicas")]
        limit = int(deploy["spec"].get("revisionHistoryLimit", 10))
        for rs in sorted(idle, key=_revision)[: max(0, len(idle) - limit)]:
            self.store.delete(self.rs_type, rs["metadata"]["namespace"], rs["metadata"]["name"])

    def _rolling(
        self, deploy: dict[str, Any], new: dict[str, Any], olds: list[dict[str, Any]]
    ) -> list[tuple[dict[str, Any], int]]:
        replicas = int(deploy["spec"].get("replicas", 1))
        rolling = (deploy["spec"].get("strategy") or {}).get("rollingUpdate") or {}
        surge = _scaled(rolling.get("maxSurge", "25%"), replicas, up=True)
        unavailable = _scaled(rolling.get("maxUnavailable", "25%"), replicas, up=False)
        if surge == 0 and unavailable == 0:
            unavailable = 1
        if not olds:
            return [(new, replicas)]
        olds_total = sum(int(rs["spec"].get("replicas", 0)) for rs in olds)
        current_new = int(new["spec"].get("replicas", 0))
        new_target = min(replicas, max(current_new, replicas + surge - olds_total))
        keep = max(0, replicas - unavailable - int((new.get("status") or {}).get("readyReplicas", 0)))
        targets = [(new, new_target)]
        for rs in sorted(olds, key=_revision, reverse=True):
            kept = min(int(rs["spec"].get("replicas", 0)), keep)
            keep -= kept
            targets.append((rs, kept))
        return targets

    def _recreate(
        self, deploy: dict[str, Any], new: dict[str, Any], olds: list[dict[str, Any]]
    ) -> list[tuple[dict[str, Any], int]]:
        old_pods = sum(int((rs.get("status") or {}).get("replicas", 0)) for rs in olds)
        replicas = int(deploy["spec"].get("replicas", 1))
        return [(new, 0 if old_pods else replicas), *[(rs, 0) for rs in olds]]

    def _create_rs(self, deploy: dict[str, Any], digest: str, revision: int) -> dict[str, Any]:
        spec = deploy["spec"]
        template = json.loads(json.dumps(spec.get("template") or {}))
        tmeta = template.setdefault("metadata", {})
        tmeta["labels"] = {**(tmeta.get("labels") or {}), "pod-template-hash": digest}
        selector = json.loads(json.dumps(spec.get("selector") or {}))
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), "pod-template-hash": digest}
        body = {
            "metadata": {
                "name": f"{deploy['metadata']['name']}-{digest}",
                "labels": tmeta["labels"],
                "annotations": {"deployment.kubernetes.io/revision": str(revision)},
                "ownerReferences": [_owner_ref(deploy)],
            },
            "spec": {"replicas": 0, "selector": selector, "template": template},
        }
        return self.store.create(self.rs_type, deploy["metadata"]["namespace"], body)

    def _scale(self, rs: dict[str, Any], replicas: int) -> None:
        meta = rs["metadata"]

        def patch(obj: dict[str, Any]) -> dict[str, Any]:
            obj["spec"]["replicas"] = replicas
            return obj

        self.store.patch(self.rs_type, meta["namespace"], meta["name"], patch)

    def _status(self, deploy: dict[str, Any], digest: str) -> None:
        owned = self._owned(deploy)
        stats = [(rs.get("status") or {}) for rs in owned]
        new_status = next(((rs.get("status") or {}) for rs in owned if _hash_of(rs) == digest), {})
        replicas = int(deploy["spec"].get("replicas", 1))
        available = sum(int(s.get("availableReplicas", 0)) for s in stats)
        updated = int(new_status.get("replicas", 0))
        complete = updated == replicas and sum(int(s.get("replicas", 0)) for s in stats) == replicas
        status = {
            "observedGeneration": deploy["metadata"].get("generation", 1),
            "replicas": sum(int(s.get("replicas", 0)) for s in stats),
            "updatedReplicas": updated,
            "readyReplicas": sum(int(s.get("readyReplicas", 0)) for s in stats),
            "availableReplicas": available,
            "unavailableReplicas": max(0, replicas - available),
            "conditions": _conditions(available >= replicas, complete and available >= replicas),
        }
        _set_status(self.store, self.deploy_type, deploy, status)


def _conditions(available: bool, complete: bool) -> list[dict[str, Any]]:
    return [
        {
            "type": "Available",
            "status": "True" if available else "False",
            "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
        },
        {
            "type": "Progressing",
            "status": "True",
            "reason": "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
        },
    ]


def _hash_of(rs: dict[str, Any]) -> str:
    return str((rs["metadata"].get("labels") or {}).get("pod-template-hash", ""))


def _revision(rs: dict[str, Any]) -> int:
    return int((rs["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision", "0"))
