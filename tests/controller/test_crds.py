"""The CRDs come from the kernel's models; the YAML in the chart never drifts from them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from buildkit_controller.controller.crds import GROUP, all_crds, crd_yaml
from buildkit_controller.core.models import Pool
from buildkit_controller.core.models.oidc import OIDCConfigSpec

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "helm" / "buildkit-controller" / "crds"
CRDS = {crd["spec"]["names"]["kind"]: crd for crd in all_crds()}


def schema(kind: str) -> dict[str, Any]:
    result: dict[str, Any] = CRDS[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return result


def walk(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.get("properties", {}).items():
            yield from walk(value, f"{path}.{key}")
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                yield from walk(node[key], f"{path}[]")


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_chart_yaml_matches_the_models(kind: str) -> None:
    crd = CRDS[kind]
    path = CRD_DIR / f"{crd['metadata']['name']}.yaml"
    fix = "run `buildkit-controller crds --write helm/buildkit-controller/crds`"
    assert path.exists(), f"missing {path.name}: {fix}"
    assert path.read_text() == crd_yaml(crd), f"{path.name} drifted from core/models: {fix}"


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_schemas_are_structural(kind: str) -> None:
    for path, node in walk(schema(kind)):
        assert not {"$ref", "$defs", "allOf", "oneOf", "not"} & set(node), path
        special = node.get("x-kubernetes-preserve-unknown-fields") or node.get("x-kubernetes-int-or-string")
        assert "type" in node or special, f"{kind}{path} has no type"
        assert "anyOf" not in node or node.get("x-kubernetes-int-or-string"), path


def test_names_columns_and_subresources() -> None:
    shorts = [("BuildKitPool", "bkp"), ("BuildKitWorker", "bkw"), ("BuildKitOIDCConfig", "bkoidc")]
    for kind, short in shorts:
        spec = CRDS[kind]["spec"]
        assert spec["group"] == GROUP and spec["scope"] == "Namespaced"
        assert spec["names"]["shortNames"] == [short] and spec["names"]["categories"] == ["buildkit"]
        assert spec["versions"][0]["subresources"] == {"status": {}}
    def columns(kind: str) -> list[str]:
        return [c["name"] for c in CRDS[kind]["spec"]["versions"][0]["additionalPrinterColumns"]]

    pool_columns = columns("BuildKitPool")
    assert pool_columns[:1] == ["Phase"] and "Connections" in pool_columns and pool_columns[-1] == "Age"
    assert columns("BuildKitWorker") == ["Pool", "Phase", "Pod", "Job", "Endpoint", "Age"]


def examples() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and str(doc.get("apiVersion", "")).startswith(GROUP):
                yield path.name, doc


@pytest.mark.parametrize(("name", "doc"), list(examples()), ids=[n for n, _ in examples()])
def test_examples_validate_against_the_crd_and_parse_in_the_kernel(name: str,
                                                                   doc: dict[str, Any]) -> None:
    jsonschema.validate(doc, schema(doc["kind"]))
    if doc["kind"] == "BuildKitPool":
        Pool.from_body(doc)
    if doc["kind"] == "BuildKitOIDCConfig":
        OIDCConfigSpec.parse(doc["spec"])


@pytest.mark.parametrize("bad", [
    {"scaling": {"min": -1}}, {"scaling": {"mode": "turbo"}}, {"scaling": {"scaleDownDelay": "soon"}},
    {"resources": {"buildkit": {"limits": {"cpu": "lots"}}}}, {"gateway": {"replicas": 0}},
    {"worker": {"securityProfile": "root"}}, {"cache": {"backends": [{"s3": {}}]}}])
def test_the_schema_rejects_what_the_kernel_rejects(bad: dict[str, Any]) -> None:
    doc = {"apiVersion": f"{GROUP}/v1alpha1", "kind": "BuildKitPool", "metadata": {"name": "p"},
           "spec": bad}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema("BuildKitPool"))
