"""The scheduler part of the simulated kubelet: nodes, nodeSelector, node affinity and taints.

Nodes are ``core/v1`` Node objects in the store (the kubelet registers its default node
``kubesim-node``; tests add more through the API or ``KubeSim(nodes=[...])``). A pod fits a node when
its ``nodeSelector`` labels match, its required node affinity terms (``In``/``NotIn``/``Exists``/
``DoesNotExist``) match, and it tolerates every ``NoSchedule``/``NoExecute`` taint. Resources,
pod (anti-)affinity and topology spread are not considered.
"""

from __future__ import annotations

from typing import Any

from .labels import expressions_match

__all__ = ["DEFAULT_NODE", "fits", "node_object", "unschedulable_message"]

DEFAULT_NODE = "kubesim-node"


def node_object(
    name: str, labels: dict[str, str] | None = None, taints: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A Node body with the labels a real kubelet sets, plus ``labels`` and ``taints``."""
    return {
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                **(labels or {}),
            },
        },
        "spec": {"taints": taints} if taints else {},
    }


def node_status(address: str) -> dict[str, Any]:
    return {
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        "addresses": [{"type": "InternalIP", "address": address}],
        "nodeInfo": {
            "kubeletVersion": "v1.32.0-kubesim",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    }


def fits(pod: dict[str, Any], node: dict[str, Any]) -> str | None:
    """None when the pod may run on the node, else the reason (as the scheduler words it)."""
    spec = pod.get("spec") or {}
    labels = node["metadata"].get("labels") or {}
    selector = spec.get("nodeSelector") or {}
    if any(labels.get(k) != v for k, v in selector.items()):
        return "node(s) didn't match Pod's node affinity/selector"
    if not _affinity_matches(spec, labels):
        return "node(s) didn't match Pod's node affinity/selector"
    if (node.get("spec") or {}).get("unschedulable"):
        return "node(s) were unschedulable"
    for taint in (node.get("spec") or {}).get("taints") or ():
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerated(taint, spec):
            return f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value', '')}}}"
    return None


def unschedulable_message(reasons: list[str], total: int) -> str:
    counts: dict[str, int] = {}
    for reason in reasons:
        counts[reason] = counts.get(reason, 0) + 1
    detail = ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items()))
    return f"0/{total} nodes are available: {detail}." if detail else f"0/{total} nodes are available."


def _tolerated(taint: dict[str, Any], spec: dict[str, Any]) -> bool:
    for tol in spec.get("tolerations") or ():
        if tol.get("effect") and tol["effect"] != taint.get("effect"):
            continue
        if tol.get("operator") == "Exists":
            if not tol.get("key") or tol["key"] == taint.get("key"):
                return True
        elif tol.get("key") == taint.get("key") and tol.get("value", "") == taint.get("value", ""):
            return True
    return False


def _affinity_matches(spec: dict[str, Any], labels: dict[str, str]) -> bool:
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms") or []
    return not terms or any(_term_matches(term, labels) for term in terms)


def _term_matches(term: dict[str, Any], labels: dict[str, str]) -> bool:
    return expressions_match(term.get("matchExpressions") or (), labels)
