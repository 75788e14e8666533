"""``metav1.LabelSelector`` (matchLabels + matchExpressions) and Service selectors against labels."""

from __future__ import annotations

from typing import Any

__all__ = ["expressions_match", "is_ready", "selector_matches"]


def selector_matches(selector: dict[str, Any] | None, labels: dict[str, str] | None) -> bool:
    """A LabelSelector object; an empty selector matches everything (as for ReplicaSets)."""
    labels = labels or {}
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    return expressions_match(selector.get("matchExpressions") or (), labels)


def expressions_match(expressions: Any, labels: dict[str, str]) -> bool:
    """``matchExpressions`` (In, NotIn, Exists, DoesNotExist), as selectors and node affinity use them."""
    for expr in expressions:
        key, op, values = expr.get("key", ""), expr.get("operator"), expr.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }.get(op or "", False)
        if not ok:
            return False
    return True


def is_ready(pod: dict[str, Any]) -> bool:
    """The pod's ``Ready`` condition is True and it is not being deleted."""
    if pod["metadata"].get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
