"""What a real API server does to an object between decoding and storage.

Strict decoding of built-in kinds, CRD pruning/defaulting/validation, name validation, and the few
defaults clients depend on (pod phase, Service clusterIP, Secret ``stringData``, namespace phase).
"""

from __future__ import annotations

import base64
import ipaddress
import itertools
import re
from collections.abc import Callable
from typing import Any

from . import fields, schema
from .crds import crd_defaults
from .errors import BadRequest, Invalid
from .immutability import update_causes
from .resources import ResourceType

__all__ = ["Admission"]

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Kinds whose names must be DNS labels (63 chars, no dots) rather than subdomains.
_LABEL_NAMED = frozenset({"Namespace", "Service"})


class Admission:
    """Mutates and validates objects on create and update; raises ``ApiError`` to refuse them.

    ``strict_builtins``: with no ``fieldValidation`` query parameter, unknown fields in built-in
    kinds are refused (a real server would drop them with a warning); tests want the loud failure.
    """

    def __init__(self, *, strict_builtins: bool = True) -> None:
        self.strict_builtins = strict_builtins
        self._cluster_ips = (str(ipaddress.ip_address("10.96.0.10") + i) for i in itertools.count())
        # The server hands cluster IPs out of its 127/8 block (kubesim.ipam); 10.96/12 otherwise.
        self.allocate_cluster_ip: Callable[[], str] = lambda: next(self._cluster_ips)

    def on_create(self, rtype: ResourceType, obj: dict[str, Any], opts: Any) -> None:
        meta = obj["metadata"]
        if not meta.get("name"):
            raise Invalid.fields(
                rtype.kind,
                "",
                [("metadata.name", "Required value: name or generateName is required")],
                rtype.group,
            )
        self._check_name(rtype, meta["name"])
        self._decode(rtype, obj, opts)
        _DEFAULTS.get(rtype.kind, _nothing)(self, obj, True)
        self._validate(rtype, obj)

    def on_update(self, rtype: ResourceType, old: dict[str, Any], new: dict[str, Any], opts: Any) -> None:
        self._decode(rtype, new, opts)
        if rtype.kind == "Service":  # an update that leaves the allocated clusterIP out keeps it
            spec = new.setdefault("spec", {})
            for fixed in ("clusterIP", "clusterIPs"):
                if fixed in (old.get("spec") or {}):
                    spec.setdefault(fixed, old["spec"][fixed])
        if rtype.kind == "Namespace":
            new["spec"] = old.get("spec", {})
        _DEFAULTS.get(rtype.kind, _nothing)(self, new, False)
        causes = update_causes(rtype.kind, old, new)
        if causes:
            raise Invalid.fields(rtype.kind, old["metadata"]["name"], causes, rtype.group)
        self._validate(rtype, new)

    def _check_name(self, rtype: ResourceType, name: str) -> None:
        pattern, limit = (_LABEL, 63) if rtype.kind in _LABEL_NAMED else (_SUBDOMAIN, 253)
        if not pattern.match(name) or len(name) > limit:
            what = "RFC 1123 label" if pattern is _LABEL else "RFC 1123 subdomain"
            raise Invalid.fields(
                rtype.kind,
                name,
                [
                    (
                        "metadata.name",
                        f'Invalid value: "{name}": a lowercase '
                        f"{what} must consist of lower case alphanumeric characters, '-' or '.', "
                        "and must start and end with an alphanumeric character",
                    )
                ],
                rtype.group,
            )

    def _decode(self, rtype: ResourceType, obj: dict[str, Any], opts: Any) -> None:
        """Unknown fields: refused under strict validation, dropped otherwise (CRDs: pruned)."""
        mode = getattr(opts, "field_validation", "") or (
            "Strict" if self.strict_builtins and not rtype.custom else "Warn"
        )
        if rtype.custom and rtype.schema is not None:
            unknown = schema.prune(obj, rtype.schema, root=True)
            schema.apply_defaults(obj, rtype.schema)
        elif rtype.model:
            unknown = fields.unknown_fields(obj, rtype.model)
            fields.drop_fields(obj, unknown)
        else:
            unknown = []
        if unknown and mode == "Warn" and hasattr(opts, "warnings"):
            opts.warnings.extend(f'unknown field "{path}"' for path in unknown)
        if unknown and mode == "Strict":
            detail = ", ".join(f'unknown field "{path}"' for path in unknown)
            name = obj.get("metadata", {}).get("name", "")
            raise BadRequest(
                f'{rtype.kind} in version "{rtype.version}" cannot be handled as a '
                f"{rtype.kind}: strict decoding error: {detail}",
                {"name": name, "kind": rtype.plural, "group": rtype.group},
            )

    def _validate(self, rtype: ResourceType, obj: dict[str, Any]) -> None:
        name = obj["metadata"].get("name", "")
        causes: list[tuple[str, str]] = _label_causes(obj["metadata"].get("labels") or {})
        if rtype.custom and rtype.schema is not None:
            causes += schema.validate(obj, rtype.schema)
        elif rtype.kind in _VALIDATORS:
            causes += _VALIDATORS[rtype.kind](obj)
        if causes:
            raise Invalid.fields(rtype.kind, name, causes, rtype.group)


_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


def _label_causes(labels: dict[str, Any]) -> list[tuple[str, str]]:
    """Label keys (``[prefix/]name``) and values as apimachinery validates them."""
    causes = []
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        if len(name) > 63 or not _LABEL_NAME.match(name) or (prefix and not _SUBDOMAIN.match(prefix)):
            causes.append(
                (
                    "metadata.labels",
                    f'Invalid value: "{key}": name part must consist of alphanumeric '
                    "characters, '-', '_' or '.', and must start and end with an alphanumeric "
                    "character, and be no more than 63 characters",
                )
            )
        text = str(value)
        if len(text) > 63 or (text and not _LABEL_NAME.match(text)):
            causes.append(
                (
                    "metadata.labels",
                    f'Invalid value: "{text}": a valid label must be an empty string '
                    "or consist of alphanumeric characters, '-', '_' or '.', and must start and end "
                    "with an alphanumeric character, and be no more than 63 characters",
                )
            )
    return causes


def _nothing(_: Admission, __: dict[str, Any], ___: bool) -> None:
    return None


def _pod_defaults(_: Admission, obj: dict[str, Any], creating: bool) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    if creating:  # pods stay Pending until a kubelet (kubesim part 2) picks them up
        obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}


def _service_defaults(admission: Admission, obj: dict[str, Any], creating: bool) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    if spec.get("clusterIP") != "None" and not spec.get("clusterIP"):
        spec["clusterIP"] = admission.allocate_cluster_ip()
    spec.setdefault("clusterIPs", [spec["clusterIP"]])
    spec.setdefault("sessionAffinity", "None")
    for port in spec.get("ports") or ():
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
    if creating:
        obj["status"] = {"loadBalancer": {}}


def _secret_defaults(_: Admission, obj: dict[str, Any], creating: bool) -> None:
    # stringData is write-only: merged into data (base64) and never stored.
    string_data = obj.pop("stringData", None) or {}
    data = obj.setdefault("data", {}) if string_data else obj.get("data")
    for key, value in string_data.items():
        data[key] = base64.b64encode(str(value).encode()).decode()  # type: ignore[index]
    obj.setdefault("type", "Opaque")


def _namespace_defaults(_: Admission, obj: dict[str, Any], creating: bool) -> None:
    if creating:
        obj["spec"] = {"finalizers": ["kubernetes"]}
        obj["status"] = {"phase": "Active"}
    obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]


def _deployment_defaults(_: Admission, obj: dict[str, Any], creating: bool) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    spec.setdefault(
        "strategy", {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    )
    if creating:
        obj.pop("status", None)


def _crd_defaults(admission: Admission, obj: dict[str, Any], creating: bool) -> None:
    if creating:
        crd_defaults(admission, obj)


# Defaults run on create and update (a real server defaults every decoded object); `creating` guards
# what only a new object gets (initial status).
_DEFAULTS = {
    "Pod": _pod_defaults,
    "Service": _service_defaults,
    "Secret": _secret_defaults,
    "Namespace": _namespace_defaults,
    "Deployment": _deployment_defaults,
    "CustomResourceDefinition": _crd_defaults,
}


def _validate_pod(obj: dict[str, Any]) -> list[tuple[str, str]]:
    containers = (obj.get("spec") or {}).get("containers")
    if not containers:
        return [("spec.containers", "Required value")]
    return [(f"spec.containers[{i}].image", "Required value") for i, c in enumerate(containers) if not c.get("image")]


def _validate_workload(obj: dict[str, Any]) -> list[tuple[str, str]]:
    spec = obj.get("spec") or {}
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not spec.get("selector"):
        return [("spec.selector", "Required value")]
    if any(labels.get(k) != v for k, v in selector.items()):
        return [("spec.template.metadata.labels", "Invalid value: `selector` does not match template `labels`")]
    return []


def _validate_crd(obj: dict[str, Any]) -> list[tuple[str, str]]:
    spec = obj.get("spec") or {}
    names = spec.get("names") or {}
    causes = []
    expected = f"{names.get('plural')}.{spec.get('group')}"
    if obj["metadata"]["name"] != expected:
        causes.append(
            (
                "metadata.name",
                f'Invalid value: "{obj["metadata"]["name"]}": must be spec.names.plural+"."+spec.group',
            )
        )
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(("spec.scope", 'Unsupported value: supported values: "Cluster", "Namespaced"'))
    versions = spec.get("versions") or []
    if not versions or sum(1 for v in versions if v.get("storage")) != 1:
        causes.append(("spec.versions", "Invalid value: must have exactly one version marked as storage"))
    if not names.get("kind"):
        causes.append(("spec.names.kind", "Required value"))
    return causes


_VALIDATORS = {
    "Pod": _validate_pod,
    "Deployment": _validate_workload,
    "ReplicaSet": _validate_workload,
    "CustomResourceDefinition": _validate_crd,
}
