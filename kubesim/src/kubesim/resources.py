"""The resource types kubesim serves: the built-in kinds and those registered from CRDs at run time."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BUILTINS", "Registry", "ResourceType"]

_ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True, kw_only=True)
class ResourceType:
    """One served resource at one group/version.

    ``key`` (group/plural) names the storage: every served version of a CRD shares it, which is
    how a real server with conversion strategy ``None`` behaves.
    """

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    subresources: frozenset[str] = frozenset()
    verbs: tuple[str, ...] = _ALL_VERBS
    model: str | None = None  # name of the `kubernetes.client` model class, for strict field checks
    schema: dict[str, Any] | None = None  # CRD openAPIV3Schema of this version
    printer_columns: tuple[dict[str, Any], ...] = ()
    categories: tuple[str, ...] = ()
    custom: bool = False
    has_generation: bool = True
    status_fields: frozenset[str] = field(default=frozenset({"status"}))

    @property
    def key(self) -> str:
        return f"{self.group}/{self.plural}"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    def describe(self) -> list[dict[str, Any]]:
        """Entries for an ``APIResourceList`` (the resource and its subresources)."""
        entry: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular or self.kind.lower(),
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(self.verbs),
        }
        if self.short_names:
            entry["shortNames"] = list(self.short_names)
        if self.categories:
            entry["categories"] = list(self.categories)
        subs = [
            {
                "name": f"{self.plural}/{sub}",
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": ["get", "patch", "update"],
                **_SUBRESOURCE_KINDS.get(sub, {}),
            }
            for sub in sorted(self.subresources)
        ]
        return [entry, *subs]


# Subresources served with another kind than their parent's.
_SUBRESOURCE_KINDS: dict[str, dict[str, Any]] = {
    "token": {"kind": "TokenRequest", "group": "authentication.k8s.io", "version": "v1", "verbs": ["create"]},
    "scale": {"kind": "Scale", "group": "autoscaling", "version": "v1"},
}


def _builtin(
    group: str,
    version: str,
    plural: str,
    kind: str,
    namespaced: bool = True,
    *,
    model: str,
    short: tuple[str, ...] = (),
    subs: frozenset[str] = frozenset(),
    verbs: tuple[str, ...] = _ALL_VERBS,
    categories: tuple[str, ...] = (),
) -> ResourceType:
    return ResourceType(
        group=group,
        version=version,
        plural=plural,
        kind=kind,
        namespaced=namespaced,
        short_names=short,
        subresources=subs,
        verbs=verbs,
        model=model,
        categories=categories,
    )


_STATUS = frozenset({"status"})
_SCALABLE = frozenset({"status", "scale"})
BUILTINS: tuple[ResourceType, ...] = (
    _builtin(
        "",
        "v1",
        "namespaces",
        "Namespace",
        False,
        model="V1Namespace",
        short=("ns",),
        subs=_STATUS,
        verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
    ),
    _builtin("", "v1", "nodes", "Node", False, model="V1Node", short=("no",), subs=_STATUS),
    _builtin("", "v1", "pods", "Pod", model="V1Pod", short=("po",), subs=_STATUS, categories=("all",)),
    _builtin("", "v1", "services", "Service", model="V1Service", short=("svc",), subs=_STATUS, categories=("all",)),
    _builtin("", "v1", "endpoints", "Endpoints", model="V1Endpoints", short=("ep",)),
    _builtin("", "v1", "secrets", "Secret", model="V1Secret"),
    _builtin("", "v1", "configmaps", "ConfigMap", model="V1ConfigMap", short=("cm",)),
    _builtin(
        "",
        "v1",
        "serviceaccounts",
        "ServiceAccount",
        model="V1ServiceAccount",
        short=("sa",),
        subs=frozenset({"token"}),
    ),
    _builtin("", "v1", "events", "Event", model="CoreV1Event", short=("ev",)),
    _builtin(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        model="V1Deployment",
        short=("deploy",),
        subs=_SCALABLE,
        categories=("all",),
    ),
    _builtin(
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        model="V1ReplicaSet",
        short=("rs",),
        subs=_SCALABLE,
        categories=("all",),
    ),
    _builtin("coordination.k8s.io", "v1", "leases", "Lease", model="V1Lease"),
    _builtin(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        model="V1PodDisruptionBudget",
        short=("pdb",),
        subs=_STATUS,
    ),
    _builtin(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "NetworkPolicy",
        model="V1NetworkPolicy",
        short=("netpol",),
    ),
    # RBAC objects are stored and served (operators create them) but not enforced: no authorization.
    _builtin("rbac.authorization.k8s.io", "v1", "roles", "Role", model="V1Role"),
    _builtin("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", model="V1RoleBinding"),
    _builtin("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False, model="V1ClusterRole"),
    _builtin(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        False,
        model="V1ClusterRoleBinding",
    ),
    _builtin(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        model="V1CustomResourceDefinition",
        short=("crd", "crds"),
        subs=_STATUS,
    ),
    _builtin(
        "authentication.k8s.io",
        "v1",
        "tokenreviews",
        "TokenReview",
        False,
        model="V1TokenReview",
        verbs=("create",),
    ),
)


class Registry:
    """Served resource types by group/version and plural; CRDs add and remove entries."""

    def __init__(self, types: tuple[ResourceType, ...] = BUILTINS) -> None:
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        for rtype in types:
            self.add(rtype)

    def add(self, rtype: ResourceType) -> None:
        self._types[(rtype.group, rtype.version, rtype.plural)] = rtype

    def remove_key(self, key: str) -> None:
        for ident, rtype in list(self._types.items()):
            if rtype.key == key and rtype.custom:
                del self._types[ident]

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def by_key(self, key: str) -> list[ResourceType]:
        return [rtype for rtype in self._types.values() if rtype.key == key]

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(list(self._types.values()))

    def group_versions(self) -> dict[str, list[str]]:
        """Group name → served versions (preferred first), for ``/apis``."""
        groups: dict[str, list[str]] = {}
        for rtype in self._types.values():
            versions = groups.setdefault(rtype.group, [])
            if rtype.version not in versions:
                versions.append(rtype.version)
        for versions in groups.values():
            versions.sort(key=_version_priority)
        return groups

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [t for t in self._types.values() if t.group == group and t.version == version]


def _version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes version priority: GA before beta before alpha, higher numbers first."""
    match = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not match:
        return (3, 0, 0)
    major, stage, minor = match.groups()
    rank = {"alpha": 2, "beta": 1, None: 0}[stage]
    return (rank, -int(major), -int(minor or 0))
