"""The CRDs, generated from the kernel's models: the one source of truth for what a CR may hold.

``render_crds()`` turns each pydantic model into a Kubernetes *structural* schema (``$ref`` inlined,
``Optional`` as ``nullable``, Go-duration patterns, quantity int-or-string) and wraps it in a
``CustomResourceDefinition``. ``buildkit-controller crds --write DIR`` writes the YAML kept in
``helm/buildkit-controller/crds/``; a test fails when that YAML drifts from this output.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema

from buildkit_controller.core.models.oidc import OIDCConfigSpec, OIDCConfigStatus
from buildkit_controller.core.models.pool import PoolSpec
from buildkit_controller.core.models.status import PoolStatus
from buildkit_controller.core.models.units import format_duration
from buildkit_controller.core.models.worker import WorkerSpec, WorkerStatus

__all__ = ["GROUP", "KINDS", "VERSION", "all_crds", "kopf_peering_crd", "render_crds", "structural_schema",
           "write_crds"]

GROUP = "buildkit.smrt-devops.net"
VERSION = "v1alpha1"
CATEGORY = "buildkit"


class _Generator(GenerateJsonSchema):
    def encode_default(self, dft: Any) -> Any:
        # Defaults are shown as users write them (15m), not as ISO 8601 (PT15M).
        if isinstance(dft, timedelta):
            return format_duration(dft)
        return super().encode_default(dft)


def _inline(node: Any, defs: Mapping[str, Any]) -> Any:
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = dict(defs[node["$ref"].rsplit("/", 1)[-1]])
        return _inline({**target, **{k: v for k, v in node.items() if k != "$ref"}}, defs)
    return {key: _inline(value, defs) for key, value in node.items() if key != "$defs"}


def _nullable(node: dict[str, Any]) -> dict[str, Any]:
    options = node.pop("anyOf")
    kinds = [o for o in options if o.get("type") != "null"]
    if len(kinds) != 1:  # e.g. a quantity's integer-or-string: keep as is
        node["anyOf"] = options
        return node
    merged = {**kinds[0], **node}
    if len(kinds) < len(options):
        merged["nullable"] = True
    return merged


def _structural(node: Any) -> Any:
    """Make pydantic's JSON Schema structural: no titles, nullable, unknown-field rules explicit."""
    if isinstance(node, list):
        return [_structural(item) for item in node]
    if not isinstance(node, dict):
        return node
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
        node = _nullable(dict(node))
    node = {k: v for k, v in node.items() if k != "title"}
    if "description" in node:
        node["description"] = " ".join(node["description"].replace("``", "`").split())
    if node.get("default", 0) is None:
        del node["default"]
    if node.get("type") == "object" and "properties" not in node:
        extra = node.pop("additionalProperties", True)
        if extra is True or extra == {}:
            node["x-kubernetes-preserve-unknown-fields"] = True
        else:
            node["additionalProperties"] = extra
    out = {key: _structural(value) for key, value in node.items()}
    for child in (out.get("properties") or {}).values():
        # Without a default, an omitted parent object would get none of its fields' defaults.
        if child.get("type") == "object" and "properties" in child and not child.get("nullable"):
            child.setdefault("default", {})
    return out


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A structural OpenAPI v3 schema for ``model`` as it appears in a CR (camelCase)."""
    raw = model.model_json_schema(by_alias=True, schema_generator=_Generator)
    return dict(_structural(_inline(raw, raw.get("$defs", {}))))


@dataclass(frozen=True, kw_only=True)
class Kind:
    kind: str
    plural: str
    short: str
    spec: type[BaseModel]
    status: type[BaseModel]
    columns: tuple[tuple[str, str, str, int], ...]  # name, JSONPath, type, priority
    spec_required: bool = True


def _column(name: str, path: str, kind: str, priority: int) -> dict[str, Any]:
    column: dict[str, Any] = {"name": name, "jsonPath": path, "type": kind}
    if priority:
        column["priority"] = priority
    return column


KINDS = (
    Kind(kind="BuildKitPool", plural="buildkitpools", short="bkp", spec=PoolSpec, status=PoolStatus,
         spec_required=False, columns=(
             ("Phase", ".status.phase", "string", 0), ("Gateway", ".status.gateway.ready", "boolean", 1),
             ("Workers", ".status.workers.total", "integer", 0),
             ("Ready", ".status.workers.ready", "integer", 0),
             ("Desired", ".status.workers.desired", "integer", 1),
             ("Idle", ".status.workers.idle", "integer", 1),
             ("Allocated", ".status.workers.allocated", "integer", 0),
             ("Connections", ".status.connections.active", "integer", 0),
             ("Endpoint", ".status.endpoint", "string", 1),
             ("Age", ".metadata.creationTimestamp", "date", 0))),
    Kind(kind="BuildKitWorker", plural="buildkitworkers", short="bkw", spec=WorkerSpec,
         status=WorkerStatus, columns=(
             ("Pool", ".spec.poolRef.name", "string", 0), ("Phase", ".status.phase", "string", 0),
             ("Pod", ".status.podName", "string", 0), ("Job", ".spec.allocation.jobId", "string", 0),
             ("Endpoint", ".status.endpoint", "string", 1),
             ("Age", ".metadata.creationTimestamp", "date", 0))),
    Kind(kind="BuildKitOIDCConfig", plural="buildkitoidcconfigs", short="bkoidc", spec=OIDCConfigSpec,
         status=OIDCConfigStatus, columns=(
             ("Issuer", ".spec.issuer", "string", 0), ("Audience", ".spec.audience", "string", 0),
             ("Enabled", ".spec.enabled", "boolean", 0), ("Ready", ".status.ready", "boolean", 0),
             ("Age", ".metadata.creationTimestamp", "date", 0))),
)


def render_crd(kind: Kind) -> dict[str, Any]:
    """One ``apiextensions.k8s.io/v1`` CRD for ``kind``."""
    root: dict[str, Any] = {"type": "object", "properties": {
        "spec": structural_schema(kind.spec), "status": structural_schema(kind.status)}}
    if kind.spec_required:
        root["required"] = ["spec"]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{kind.plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"kind": kind.kind, "listKind": f"{kind.kind}List", "plural": kind.plural,
                      "singular": kind.kind.lower(), "shortNames": [kind.short],
                      "categories": [CATEGORY]},
            "versions": [{
                "name": VERSION, "served": True, "storage": True,
                "schema": {"openAPIV3Schema": root},
                "subresources": {"status": {}},
                "additionalPrinterColumns": [_column(*c) for c in kind.columns],
            }],
        },
    }


def render_crds() -> list[dict[str, Any]]:
    """Our three CRDs."""
    return [render_crd(kind) for kind in KINDS]


def kopf_peering_crd() -> dict[str, Any]:
    """Kopf's ``ClusterKopfPeering``: replicas of the operator use it to elect the one that works."""
    status = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "clusterkopfpeerings.kopf.dev"},
        "spec": {"group": "kopf.dev", "scope": "Cluster",
                 "names": {"kind": "ClusterKopfPeering", "plural": "clusterkopfpeerings",
                           "singular": "clusterkopfpeering"},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": {"type": "object",
                                                              "properties": {"status": status}}}}]},
    }


def all_crds() -> list[dict[str, Any]]:
    """Everything the chart's ``crds/`` folder holds: ours and Kopf's peering CRD."""
    return [*render_crds(), kopf_peering_crd()]


def crd_yaml(crd: Mapping[str, Any]) -> str:
    header = "# Generated by `buildkit-controller crds --write`; edit the models in core/models instead.\n"
    return header + yaml.safe_dump(dict(crd), sort_keys=False, width=100, allow_unicode=True)


def write_crds(directory: Path) -> list[Path]:
    """Write one YAML file per CRD into ``directory``; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for crd in all_crds():
        path = directory / f"{crd['metadata']['name']}.yaml"
        path.write_text(crd_yaml(crd))
        written.append(path)
    return written
