"""The CRDs in crds/ agree with the pydantic models, are structural, bounded, documented and
refuse what the models refuse (schema and CEL applied as the API server applies them)."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from e2gan_api import GROUP, VERSION
from e2gan_api.crd import KINDS, NAME_RULE, crd, file_name, render, stale, structural
from e2gan_api.spec import ConceptAdapterSpec, ConceptBaseSpec
from tests.api.structural import violations
from tests.harness.kube_api import cel
from tests.harness.kube_api.schema import StructuralSchema

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"
EXAMPLES = ROOT / "examples" / "concepts"
KUBERAY_DIR = ROOT.parent / "shared" / "kuberay"
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
    problems = violations(root)  # and a real one would: Kubernetes' structural-schema rules
    for path, node in walk(root):
        if path in (".metadata", ".apiVersion", ".kind", ""):
            continue
        if "type" not in node:
            problems.append(f"{path}: no type")
        # Items of lists and values of maps are explained by their parent's description.
        if not node.get("description") and not path.endswith(("[]", ".*")):
            problems.append(f"{path}: no description (kubectl explain shows nothing)")
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


def obj(**props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props}


# Each breaks one structural rule; the checker must name the offending node.
NOT_STRUCTURAL: list[tuple[str, dict[str, Any], str]] = [
    ("root not an object", {"type": "string"}, "openAPIV3Schema.type: must be object"),
    ("field without type", obj(spec=obj(size={"minimum": 1})), "properties[spec].properties[size].type: must not be empty"),
    ("map values without type", obj(spec={"type": "object", "additionalProperties": {"maxLength": 3}}),
     "properties[spec].additionalProperties.type: must not be empty"),
    ("array without items", obj(tags={"type": "array"}), "properties[tags].items: must be specified"),
    ("items without type", obj(tags={"type": "array", "items": {"maxLength": 9}}), "properties[tags].items.type"),
    ("tuple items", obj(pair={"type": "array", "items": [{"type": "string"}]}), "properties[pair].items: must be a single"),
    ("properties beside additionalProperties: false",
     obj(spec={"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False}),
     "properties[spec].additionalProperties: additionalProperties and properties are mutually exclusive"),
    ("properties beside a map schema",
     obj(spec={"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "string"}}),
     "mutually exclusive"),
    ("type inside anyOf", obj(spec={"type": "object", "anyOf": [{"type": "string"}, {"type": "integer"}]}),
     "properties[spec].anyOf[0].type: must not be set inside anyOf"),
    ("description inside oneOf", obj(spec={"type": "object", "oneOf": [{"description": "x"}]}),
     "properties[spec].oneOf[0].description"),
    ("default inside allOf", obj(n={"type": "integer", "allOf": [{"default": 1}]}), "properties[n].allOf[0].default"),
    ("nullable inside not", obj(n={"type": "integer", "not": {"nullable": True}}), "properties[n].not.nullable"),
    ("field only inside a junctor", obj(spec={"type": "object", "anyOf": [{"properties": {"a": {"minLength": 1}}}]}),
     "properties[spec].anyOf[0].properties[a]: must also be specified outside anyOf"),
    ("items only inside a junctor", obj(xs={"type": "array", "items": {"type": "string"}, "allOf": [
        {"properties": {"x": {}}}]}), "properties[xs].allOf[0].properties[x]: must also be specified"),
    ("nested junctor hides a type", obj(spec={"type": "object", "allOf": [{"anyOf": [{"type": "string"}]}]}),
     "must not be set inside allOf"),
    ("$ref", obj(spec={"$ref": "#/definitions/Spec"}), "properties[spec].$ref: not supported"),
    ("definitions", {"type": "object", "definitions": {"a": {"type": "string"}}}, "openAPIV3Schema.definitions"),
    ("patternProperties", obj(m={"type": "object", "patternProperties": {"^a": {"type": "string"}}}),
     "patternProperties: not supported"),
    ("pydantic's const", obj(kind={"type": "string", "const": "A"}), "properties[kind].const: unknown field"),
    ("pydantic's $defs", {"type": "object", "$defs": {}}, "openAPIV3Schema.$defs: unknown field"),
    ("uniqueItems", obj(xs={"type": "array", "items": {"type": "string"}, "uniqueItems": True}), "uniqueItems"),
    ("preserve-unknown-fields false", obj(x={"type": "object", "x-kubernetes-preserve-unknown-fields": False}),
     "must be true or undefined"),
    ("int-or-string with a type", obj(port={"type": "string", "x-kubernetes-int-or-string": True}),
     "properties[port].type: must be empty if x-kubernetes-int-or-string"),
    ("list type on a string", obj(s={"type": "string", "x-kubernetes-list-type": "set"}), "must be array"),
    ("metadata restricts labels", obj(metadata=obj(labels={"type": "object"})),
     "properties[metadata].properties[labels]: only name and generateName"),
    ("metadata as a string", obj(metadata={"type": "string"}), "properties[metadata].type: must be object"),
    ("unknown type", obj(n={"type": "int"}), "properties[n].type: unsupported type"),
]


@pytest.mark.parametrize("label,schema,expected", NOT_STRUCTURAL, ids=[n[0] for n in NOT_STRUCTURAL])
def test_the_structural_check_names_each_broken_rule(label: str, schema: dict[str, Any], expected: str) -> None:
    found = violations(schema)
    assert any(expected in v for v in found), f"{label}: {found}"


def test_the_structural_check_accepts_what_kubernetes_accepts() -> None:
    """The patterns Kubernetes documents as structural, and KubeRay's real CRDs when present."""
    int_or_string = {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]}
    value_validation = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
                        "oneOf": [{"required": ["a"]}, {"required": ["b"]}], "not": {"properties": {"a": {"minimum": 5}}}}
    schema = obj(apiVersion={"type": "string"}, kind={"type": "string"},
                 metadata=obj(name={"type": "string", "maxLength": 20}),
                 spec=obj(port=int_or_string, pick=value_validation,
                          raw={"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                          anything={"x-kubernetes-preserve-unknown-fields": True},
                          labels={"type": "object", "additionalProperties": {"type": "string"}},
                          conditions={"type": "array", "x-kubernetes-list-type": "map",
                                      "x-kubernetes-list-map-keys": ["type"],
                                      "items": obj(type={"type": "string"})}))
    assert violations(schema) == []


@pytest.mark.skipif(not KUBERAY_DIR.is_dir(), reason=f"KubeRay's real CRDs are not at {KUBERAY_DIR}")
def test_kuberays_real_crds_are_structural_by_this_check() -> None:
    """A CRD that real API servers accept passes: the check has no false alarms on a large schema."""
    found = 0
    for path in sorted(KUBERAY_DIR.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                for version in doc["spec"]["versions"]:
                    found += 1
                    assert violations(version["schema"]["openAPIV3Schema"]) == [], f"{path.name} {version['name']}"
    assert found, f"no CustomResourceDefinition in {KUBERAY_DIR}"


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


@pytest.mark.parametrize("schema,message", [
    ({"anyOf": [{"type": "string"}, {"type": "integer"}]}, "<root>: a union of types cannot be structural"),
    ({"type": "object", "properties": {"size": {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]}}},
     "size: a union of types"),
    ({"type": "object", "properties": {"spec": {"type": "object", "properties": {"any": {"description": "x"}}}}},
     "spec.any: every node of a structural schema needs a type"),
    ({"type": "object", "properties": {"m": {"type": "object", "properties": {"a": {"type": "string"}},
                                              "additionalProperties": {"type": "string"}}}},
     "m: properties and additionalProperties cannot be combined"),
], ids=["union", "nested union", "no type", "properties and a map"])
def test_the_generator_refuses_what_cannot_be_structural(schema: dict[str, Any], message: str) -> None:
    from e2gan_api.crd import SchemaError

    with pytest.raises(SchemaError, match=f"^{re.escape(message)}"):
        structural(schema)


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


GOOD = {"concept": "pencil-sketch", "prompt": "sketch it"}
# (label, spec, the field both refusals are reported at, what the message must also name)
HOSTILE: list[tuple[str, dict[str, Any], str, str]] = [
    ("wrong type", {**GOOD, "search": {"trials": "many"}}, "search.trials", ""),
    ("huge number", {**GOOD, "training": {"steps": 10**30}}, "training.steps", ""),
    ("negative", {**GOOD, "resources": {"workers": -1}}, "resources.workers", ""),
    ("unknown teacher kind", {**GOOD, "teacher": {"kind": "midjourney"}}, "teacher.kind", ""),
    ("diffusion teacher without model", {**GOOD, "teacher": {"kind": "sdedit"}}, "teacher", "teacher.model"),
    ("bad concept name", {**GOOD, "concept": "Pencil Sketch!"}, "concept", ""),
    ("long prompt", {**GOOD, "prompt": "x" * 5000}, "prompt", ""),
    ("shell in catalog URI", {**GOOD, "catalog": {"uri": "$(reboot)"}}, "catalog.uri", ""),
    ("whitespace in URI", {**GOOD, "catalog": {"uri": "/data/x y"}}, "catalog.uri", ""),
    ("parallel > trials", {**GOOD, "search": {"trials": 2, "parallelTrials": 3}}, "search", "search.parallelTrials"),
    ("held out >= pairs", {**GOOD, "data": {"pairs": 8, "heldOut": 8}}, "data", "data.heldOut"),
    ("resolution not a multiple of 8", {**GOOD, "training": {"resolution": 100}}, "training", "training.resolution"),
    ("too many ranks", {**GOOD, "search": {"ranks": list(range(1, 20))}}, "search.ranks", ""),
    ("rank out of range", {**GOOD, "search": {"ranks": [0]}}, "search.ranks[0]", ""),
    ("bad memory quantity", {**GOOD, "resources": {"memoryPerWorker": "lots"}}, "resources.memoryPerWorker", ""),
    ("bad deletion policy", {**GOOD, "deletionPolicy": "Shred"}, "deletionPolicy", ""),
    ("missing prompt", {"concept": "pencil-sketch"}, "prompt", ""),
]


def pydantic_errors(kind: str, spec: Any) -> list[tuple[str, str]]:
    """(field path as the CRD writes it, message) of each error the model reports; [] if it admits."""
    try:
        MODELS[kind].model_validate(spec)
    except ValidationError as exc:
        return [("".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"]).lstrip("."), e["msg"])
                for e in exc.errors()]
    return []


@pytest.mark.parametrize("label,spec,field,names", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_specs_are_refused_by_both_schema_and_models(label: str, spec: dict[str, Any], field: str,
                                                             names: str) -> None:
    """Each is refused once, at the offending field, by the API server's schema and by the models alike."""
    schema_errors = admit("ConceptAdapter", spec)
    assert [e.split(": ", 1)[0] for e in schema_errors] == [f"spec.{field}"], f"{label}: {schema_errors}"
    model_errors = pydantic_errors("ConceptAdapter", spec)
    assert [where for where, _ in model_errors] == [field], f"{label}: {model_errors}"
    if names:  # a rule over several fields says which one to fix
        assert names in schema_errors[0] and names in model_errors[0][1], (schema_errors, model_errors)


def pydantic_refuses(kind: str, spec: Any) -> bool:
    try:
        MODELS[kind].model_validate(spec)
    except (ValidationError, TypeError):
        return True
    return False


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
