"""The CRDs in crds/ agree with the pydantic models, are structural, bounded, documented and
refuse what the models refuse (schema and CEL applied as the API server applies them)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from e2gan_api import GROUP, VERSION
from e2gan_api.crd import KINDS, NAME_RULE, crd, file_name, render, stale, structural
from e2gan_api.spec import ConceptAdapterSpec, ConceptBaseSpec
from tests.harness.kube_api import cel
from tests.harness.kube_api.schema import StructuralSchema

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"
EXAMPLES = ROOT / "examples" / "concepts"
MODELS = {"ConceptAdapter": ConceptAdapterSpec, "ConceptBase": ConceptBaseSpec}


def schema_of(kind: str) -> dict[str, Any]:
    doc = yaml.safe_load((CRDS / file_name(next(k for k in KINDS if k.kind == kind))).read_text())
    return doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = [(path, node)]
    for name, sub in (node.get("properties") or {}).items():
        out += walk(sub, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), dict):
        out += walk(node["additionalProperties"], f"{path}.*")
    if isinstance(node.get("items"), dict):
        out += walk(node["items"], f"{path}[]")
    return out


def test_crd_files_are_generated_from_the_models() -> None:
    assert stale(CRDS) == [], "run `python -m e2gan_api.crd` and commit crds/"
    for kind in KINDS:
        assert yaml.safe_load((CRDS / file_name(kind)).read_text()) == crd(kind)


def test_check_mode_reports_stale_files(tmp_path: Path) -> None:
    from e2gan_api.crd import main

    assert main(["--out", str(tmp_path), "--check"]) == 1
    assert main(["--out", str(tmp_path)]) == 0
    assert main(["--out", str(tmp_path), "--check"]) == 0
    assert (tmp_path / file_name(KINDS[0])).read_text() == render(KINDS[0])


@pytest.mark.parametrize("kind", [k.kind for k in KINDS])
def test_crd_names_subresources_and_columns(kind: str) -> None:
    doc = crd(next(k for k in KINDS if k.kind == kind))
    names = doc["spec"]["names"]
    assert doc["metadata"]["name"] == f"{names['plural']}.{GROUP}"
    assert names["categories"] == ["e2gan"] and names["shortNames"]
    assert doc["spec"]["scope"] == "Namespaced"
    version = doc["spec"]["versions"][0]
    assert version["name"] == VERSION and version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    required = ["Phase", "Concepts", "Fidelity", "Version", "Age"]
    if kind == "ConceptAdapter":
        required = ["Phase", "Concept", "Ranks", "Fidelity", "Trials", "Version", "Age"]
    assert columns[: len(required)] == required
    # Every column's path exists in the schema (or is metadata), so `kubectl get` never shows <none> by typo.
    root = version["schema"]["openAPIV3Schema"]
    for column in version["additionalPrinterColumns"]:
        parts = column["jsonPath"].split("[")[0].strip(".").split(".")
        node = root
        if parts[0] == "metadata":
            continue
        for part in parts:
            node = node["properties"][part]


@pytest.mark.parametrize("kind", [k.kind for k in KINDS])
def test_schema_is_structural_documented_and_bounded(kind: str) -> None:
    root = schema_of(kind)
    StructuralSchema(root)  # the emulated API server accepts it (jsonschema-valid after translation)
    problems = []
    for path, node in walk(root):
        if path in (".metadata", ".apiVersion", ".kind", ""):
            continue
        if "type" not in node:
            problems.append(f"{path}: no type")
        # Items of lists and values of maps are explained by their parent's description.
        if not node.get("description") and not path.endswith(("[]", ".*")):
            problems.append(f"{path}: no description (kubectl explain shows nothing)")
        if any(k in node for k in ("anyOf", "oneOf", "allOf", "$ref", "additionalProperties") if node.get(k) is False):
            problems.append(f"{path}: not structural")
        t = node.get("type")
        if t == "string" and "maxLength" not in node and "enum" not in node:
            problems.append(f"{path}: string without maxLength")
        if t in ("integer", "number") and not ("minimum" in node and "maximum" in node):
            problems.append(f"{path}: number without both bounds")
        if t == "array" and "maxItems" not in node:
            problems.append(f"{path}: list without maxItems")
        if t == "object" and isinstance(node.get("additionalProperties"), dict) and "maxProperties" not in node:
            problems.append(f"{path}: map without maxProperties")
    assert problems == []


def test_cel_rules_cover_immutability_and_cross_field_limits() -> None:
    root = schema_of("ConceptAdapter")
    rules = {path: [r["rule"] for r in node.get("x-kubernetes-validations", [])] for path, node in walk(root)}
    assert "self == oldSelf" in rules[".spec.concept"]
    assert "self == oldSelf" in rules[".spec.catalog.uri"]
    assert "self.parallelTrials <= self.trials" in rules[".spec.search"]
    assert "self.heldOut < self.pairs" in rules[".spec.data"]
    assert rules[""] == [NAME_RULE["rule"]]
    # Every rule is one the emulator evaluates (an unsupported one would be silently skipped there).
    for _, node in walk(root):
        for rule in node.get("x-kubernetes-validations", []):
            cel.compile_rule(rule["rule"])


def test_optional_fields_are_nullable_and_defaults_are_kept() -> None:
    spec = schema_of("ConceptAdapter")["properties"]["spec"]
    weights = spec["properties"]["base"]["properties"]["weights"]
    assert weights["nullable"] is True and "default" not in weights
    assert spec["properties"]["search"]["properties"]["parallelTrials"]["default"] == 2
    assert spec["properties"]["deletionPolicy"]["enum"] == ["Retain", "Delete"]
    assert spec["properties"]["deletionPolicy"]["default"] == "Retain"
    lr = spec["properties"]["training"]["properties"]["learningRate"]
    assert lr["minimum"] == 0 and lr["exclusiveMinimum"] is True


def test_unions_of_types_are_refused() -> None:
    from e2gan_api.crd import SchemaError

    with pytest.raises(SchemaError, match="union"):
        structural({"anyOf": [{"type": "string"}, {"type": "integer"}]})


def admit(kind: str, spec: Any, name: str = "x", old_spec: Any = None) -> list[str]:
    """What the API server would say about this object: prune, default, validate, CEL."""
    schema = StructuralSchema(schema_of(kind))
    obj = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name}, "spec": copy.deepcopy(spec)}
    schema.apply_defaults(obj)
    old = None
    if old_spec is not None:
        old = {**obj, "spec": copy.deepcopy(old_spec)}
        schema.apply_defaults(old)
    return [e.text() for e in schema.validate(obj, old)]


def pydantic_refuses(kind: str, spec: Any) -> bool:
    try:
        MODELS[kind].model_validate(spec)
    except (ValidationError, TypeError):
        return True
    return False


GOOD = {"concept": "pencil-sketch", "prompt": "sketch it"}
HOSTILE: list[tuple[str, dict[str, Any]]] = [
    ("wrong type", {**GOOD, "search": {"trials": "many"}}),
    ("huge number", {**GOOD, "training": {"steps": 10**30}}),
    ("negative", {**GOOD, "resources": {"workers": -1}}),
    ("unknown teacher kind", {**GOOD, "teacher": {"kind": "midjourney"}}),
    ("diffusion teacher without model", {**GOOD, "teacher": {"kind": "sdedit"}}),
    ("bad concept name", {**GOOD, "concept": "Pencil Sketch!"}),
    ("long prompt", {**GOOD, "prompt": "x" * 5000}),
    ("shell in catalog URI", {**GOOD, "catalog": {"uri": "$(reboot)"}}),
    ("whitespace in URI", {**GOOD, "catalog": {"uri": "/data/x y"}}),
    ("parallel > trials", {**GOOD, "search": {"trials": 2, "parallelTrials": 3}}),
    ("held out >= pairs", {**GOOD, "data": {"pairs": 8, "heldOut": 8}}),
    ("resolution not a multiple of 8", {**GOOD, "training": {"resolution": 100}}),
    ("too many ranks", {**GOOD, "search": {"ranks": list(range(1, 20))}}),
    ("rank out of range", {**GOOD, "search": {"ranks": [0]}}),
    ("bad memory quantity", {**GOOD, "resources": {"memoryPerWorker": "lots"}}),
    ("bad deletion policy", {**GOOD, "deletionPolicy": "Shred"}),
    ("missing prompt", {"concept": "pencil-sketch"}),
]


@pytest.mark.parametrize("label,spec", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_specs_are_refused_by_both_schema_and_models(label: str, spec: dict[str, Any]) -> None:
    assert admit("ConceptAdapter", spec), f"{label}: the CRD schema admits it"
    assert pydantic_refuses("ConceptAdapter", spec), f"{label}: the pydantic model admits it"


def test_unknown_fields_are_pruned_by_the_schema_and_refused_by_the_models() -> None:
    schema = StructuralSchema(schema_of("ConceptAdapter"))
    obj = {"metadata": {"name": "x"}, "spec": {**GOOD, "teachr": {"kind": "sdedit"}}}
    assert schema.prune(obj) == ["spec.teachr"]
    assert pydantic_refuses("ConceptAdapter", {**GOOD, "teachr": {}})


def test_bad_resource_names_are_refused() -> None:
    assert admit("ConceptAdapter", GOOD, name="UPPER") != []
    assert admit("ConceptAdapter", GOOD, name="a" * 64) != []
    assert admit("ConceptAdapter", GOOD, name="pencil-sketch") == []


def test_immutable_fields_refuse_changes_but_allow_the_rest() -> None:
    assert any("concept is immutable" in e for e in admit("ConceptAdapter", {**GOOD, "concept": "other"}, old_spec=GOOD))
    placed = {**GOOD, "catalog": {"uri": "s3://adapters/x"}}
    moved = {**GOOD, "catalog": {"uri": "s3://other-bucket/x"}}
    assert any("catalog.uri is immutable" in e for e in admit("ConceptAdapter", moved, old_spec=placed))
    assert admit("ConceptAdapter", {**GOOD, "prompt": "another prompt"}, old_spec=GOOD) == []


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_are_admitted_and_valid(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    kind = doc["kind"]
    assert doc["apiVersion"] == f"{GROUP}/{VERSION}"
    assert admit(kind, doc["spec"], name=doc["metadata"]["name"]) == []
    MODELS[kind].model_validate(doc["spec"])


def test_defaults_of_schema_and_models_agree() -> None:
    """An object defaulted by the API server validates to the same model as the bare spec."""
    schema = StructuralSchema(schema_of("ConceptAdapter"))
    full = {"metadata": {"name": "x"}, "spec": {**GOOD, "search": {}, "data": {}, "training": {}, "teacher": {}}}
    schema.apply_defaults(full)
    bare = ConceptAdapterSpec.model_validate(GOOD).model_dump(by_alias=True)
    assert ConceptAdapterSpec.model_validate(full["spec"]).model_dump(by_alias=True) == bare
