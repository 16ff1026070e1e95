"""One strictness for every door: the same documents through the pydantic models, the CLI's
loader (YAML file and the operator's base64 JSON) and the emulated API server with the
generated CRDs (create with dryRun=All and fieldValidation=Strict, as kubectl sends it),
with identical accept/refuse verdicts."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from e2gan_api import API_VERSION
from e2gan_api.crd import KINDS, crd
from e2gan_api.load import SpecError, load_spec_b64, load_spec_bytes
from e2gan_api.spec import ConceptAdapterSpec, ConceptBaseSpec
from tests.harness.fixtures import KubeApi

MODELS = {"ConceptAdapter": ConceptAdapterSpec, "ConceptBase": ConceptBaseSpec}
PLURALS = {k.kind: k.plural for k in KINDS}
GOOD = {"concept": "pencil-sketch", "prompt": "turn the photo into a pencil sketch"}
BASE = {"concepts": [{"concept": "winter", "prompt": "make it winter"}]}

ACCEPT, REFUSE = True, False
# (label, kind, spec, expected verdict)
TABLE: list[tuple[str, str, dict[str, Any], bool]] = [
    ("minimal", "ConceptAdapter", GOOD, ACCEPT),
    ("integer for a number", "ConceptAdapter", {**GOOD, "data": {"keepFraction": 1}}, ACCEPT),
    ("integer learning rate", "ConceptAdapter", {**GOOD, "training": {"learningRate": 1}}, ACCEPT),
    ("integral float for an integer", "ConceptAdapter", {**GOOD, "training": {"steps": 300.0}}, ACCEPT),
    ("integral floats in an integer list", "ConceptAdapter", {**GOOD, "search": {"ranks": [2.0, 4]}}, ACCEPT),
    ("null for a defaulted field", "ConceptAdapter", {**GOOD, "suspend": None}, ACCEPT),
    ("null for a defaulted object", "ConceptAdapter", {**GOOD, "data": None}, ACCEPT),
    ("null for a nullable field", "ConceptAdapter", {**GOOD, "base": {"weights": None}}, ACCEPT),
    ("tab and newline in a prompt", "ConceptAdapter", {**GOOD, "prompt": "sketch\n\tit"}, ACCEPT),
    ("non-ASCII prompt", "ConceptAdapter", {**GOOD, "prompt": "Ölgemälde, 油画"}, ACCEPT),
    ("prompt of 1000 characters", "ConceptAdapter", {**GOOD, "prompt": "é" * 1000}, ACCEPT),
    ("string boolean", "ConceptAdapter", {**GOOD, "suspend": "true"}, REFUSE),
    ("yes for a boolean", "ConceptAdapter", {**GOOD, "export": {"onnx": "yes"}}, REFUSE),
    ("integer for a boolean", "ConceptAdapter", {**GOOD, "export": {"fp16": 1}}, REFUSE),
    ("boolean for an integer", "ConceptAdapter", {**GOOD, "resources": {"workers": True}}, REFUSE),
    ("string for an integer", "ConceptAdapter", {**GOOD, "training": {"steps": "300"}}, REFUSE),
    ("fraction for an integer", "ConceptAdapter", {**GOOD, "training": {"steps": 300.5}}, REFUSE),
    ("string for a number", "ConceptAdapter", {**GOOD, "data": {"keepFraction": "0.4"}}, REFUSE),
    ("boolean for a number", "ConceptAdapter", {**GOOD, "data": {"keepFraction": True}}, REFUSE),
    ("integer for a string", "ConceptAdapter", {**GOOD, "resources": {"memoryPerWorker": 8}}, REFUSE),
    ("number for a name", "ConceptAdapter", {**GOOD, "concept": 5}, REFUSE),
    ("list for a string", "ConceptAdapter", {**GOOD, "prompt": ["a"]}, REFUSE),
    ("string items in an integer list", "ConceptAdapter", {**GOOD, "search": {"ranks": ["2"]}}, REFUSE),
    ("null item in a list", "ConceptAdapter", {**GOOD, "search": {"ranks": [None]}}, REFUSE),
    ("null for a required field", "ConceptAdapter", {**GOOD, "concept": None}, REFUSE),
    ("empty prompt", "ConceptAdapter", {**GOOD, "prompt": ""}, REFUSE),
    ("blank prompt", "ConceptAdapter", {**GOOD, "prompt": " \t\n "}, REFUSE),
    ("ideographic-space prompt", "ConceptAdapter", {**GOOD, "prompt": "\u3000\u00a0"}, REFUSE),
    ("NUL and ESC prompt", "ConceptAdapter", {**GOOD, "prompt": "\x00\x1b"}, REFUSE),
    ("C1 control in a prompt", "ConceptAdapter", {**GOOD, "prompt": "sketch\x85it"}, REFUSE),
    ("carriage return in a prompt", "ConceptAdapter", {**GOOD, "prompt": "sketch\rit"}, REFUSE),
    ("bidi override in a prompt", "ConceptAdapter", {**GOOD, "prompt": "sketch \u202egnp.exe"}, REFUSE),
    ("bidi isolate in a prompt", "ConceptAdapter", {**GOOD, "prompt": "sketch \u2066it\u2069"}, REFUSE),
    ("prompt of 1001 characters", "ConceptAdapter", {**GOOD, "prompt": "x" * 1001}, REFUSE),
    ("name with a final newline", "ConceptAdapter", {**GOOD, "concept": "pencil\n"}, REFUSE),
    ("quantity with a final newline", "ConceptAdapter", {**GOOD, "resources": {"memoryPerWorker": "8Gi\n"}}, REFUSE),
    ("unknown field", "ConceptAdapter", {**GOOD, "colour": "blue"}, REFUSE),
    ("unknown nested field", "ConceptAdapter", {**GOOD, "training": {"stepz": 3}}, REFUSE),
    ("Python name instead of the wire name", "ConceptAdapter", {**GOOD, "data": {"keep_fraction": 0.4}}, REFUSE),
    ("Python name at the top", "ConceptAdapter", {**GOOD, "deletion_policy": "Retain"}, REFUSE),
    ("lower-case enum", "ConceptAdapter", {**GOOD, "deletionPolicy": "retain"}, REFUSE),
    ("huge integer", "ConceptAdapter", {**GOOD, "training": {"steps": 10**30}}, REFUSE),
    ("mapping for an object's scalar", "ConceptAdapter", {**GOOD, "data": 5}, REFUSE),
    ("diffusion teacher without a model", "ConceptAdapter", {**GOOD, "teacher": {"kind": "sdedit"}}, REFUSE),
    ("held out not below pairs", "ConceptAdapter", {**GOOD, "data": {"pairs": 8, "heldOut": 8}}, REFUSE),
    ("base minimal", "ConceptBase", BASE, ACCEPT),
    ("base integral float width", "ConceptBase", {**BASE, "width": 32.0}, ACCEPT),
    ("base string width", "ConceptBase", {**BASE, "width": "32"}, REFUSE),
    ("base blank concept prompt", "ConceptBase", {"concepts": [{"concept": "winter", "prompt": "  "}]}, REFUSE),
    ("base control character prompt", "ConceptBase", {"concepts": [{"concept": "w", "prompt": "a\x07"}]}, REFUSE),
    ("base empty concept list", "ConceptBase", {"concepts": []}, REFUSE),
]


@pytest.fixture(scope="module")
def api(kube_api: KubeApi) -> tuple[KubeApi, str]:
    """The emulated server with the generated CRDs installed, and a namespace for dry runs."""
    for kind in KINDS:
        status, _, body = kube_api.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd(kind))
        assert status in (201, 409), body
    namespace = f"strict-{uuid.uuid4().hex[:8]}"
    status, _, body = kube_api.request("POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
    assert status == 201, body
    return kube_api, namespace


def api_verdict(api: tuple[KubeApi, str], kind: str, spec: dict[str, Any]) -> tuple[bool, str]:
    server, namespace = api
    group, version = API_VERSION.split("/")
    path = f"/apis/{group}/{version}/namespaces/{namespace}/{PLURALS[kind]}?dryRun=All&fieldValidation=Strict"
    obj = {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": "strict"}, "spec": spec}
    status, _, body = server.request("POST", path, obj)
    assert status in (201, 400, 422), body  # accepted, or refused as invalid: never a server error
    return status == 201, json.dumps(body)[:300]


def model_verdict(kind: str, spec: dict[str, Any]) -> bool:
    try:
        MODELS[kind].model_validate(spec, by_name=False)  # documents carry wire names only
    except ValidationError:
        return False
    return True


def loader_verdicts(kind: str, spec: dict[str, Any]) -> tuple[bool, bool]:
    """What `e2gan distill spec.yaml` and `--spec-json-b64` say (as a whole manifest)."""
    manifest = {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": "strict"}, "spec": spec}
    verdicts = []
    for load in (
        lambda: load_spec_bytes(yaml.safe_dump(manifest).encode(), MODELS[kind]),
        lambda: load_spec_b64(base64.b64encode(json.dumps(manifest).encode()).decode(), MODELS[kind]),
    ):
        try:
            load()
            verdicts.append(True)
        except SpecError as exc:
            assert "\n" not in str(exc)
            verdicts.append(False)
    return verdicts[0], verdicts[1]


@pytest.mark.parametrize(("label", "kind", "spec", "expected"), TABLE, ids=[row[0] for row in TABLE])
def test_every_door_gives_the_same_verdict(api, label: str, kind: str, spec: dict[str, Any], expected: bool) -> None:
    admitted, answer = api_verdict(api, kind, spec)
    assert admitted is expected, f"API server: {answer}"
    assert model_verdict(kind, spec) is expected, "pydantic model"
    assert loader_verdicts(kind, spec) == (expected, expected), "CLI loader (YAML, base64 JSON)"


def test_the_table_covers_every_kind_and_both_verdicts() -> None:
    assert {(kind, expected) for _, kind, _, expected in TABLE} == {
        (k, v) for k in MODELS for v in (ACCEPT, REFUSE)
    }


@pytest.mark.parametrize(
    ("patch", "line"),
    [
        ({"data": {"keepFraction": 1.5}}, "data.keepFraction: 1.5 is above 1 — use a fraction like 0.4"),
        ({"suspend": "true"}, 'suspend: "true" is a string, expected a boolean (true or false, without quotes)'),
        ({"resources": {"workers": True}},
         "resources.workers: true is a boolean, expected an integer (digits, without quotes) — use a value like 1"),
        ({"training": {"steps": 0}}, "training.steps: 0 is below 1 — use a value like 300"),
        ({"search": {"ranks": [0]}}, "search.ranks.0: 0 is below 1 — use a value like 4"),
        ({"teachr": {}}, "teachr: unknown field; did you mean teacher?"),
        ({"data": {"keep_fraction": 0.4}}, "data.keep_fraction: unknown field; did you mean keepFraction?"),
        ({"prompt": ""}, "prompt: is empty — use a value like 'turn the photo into a pencil sketch'"),
        ({"deletionPolicy": "Shred"}, "deletionPolicy: \"Shred\" is not one of 'Retain' or 'Delete'"),
        ({"training": {"learningRate": 0}}, "training.learningRate: 0 must be above 0 — use a value like 0.002"),
    ],
)
def test_refusals_name_the_field_the_problem_and_a_good_value(patch: dict[str, Any], line: str) -> None:
    with pytest.raises(SpecError) as info:
        load_spec_bytes(yaml.safe_dump({**GOOD, **patch}).encode())
    assert str(info.value) == line
