import pytest
import yaml
from pydantic import ValidationError

from e2gan_api.load import SpecError, load_spec
from e2gan_api.spec import ConceptAdapterSpec, ConceptBaseSpec, first_error


def test_defaults_are_the_embedded_default():
    spec = ConceptAdapterSpec(concept="pencil-sketch", prompt="sketch it")
    assert spec.teacher.kind == "procedural" and spec.teacher_id() == "pencil-sketch"
    assert spec.base.name == "builtin" and spec.deletion_policy == "Retain"
    assert spec.training.resolution % 8 == 0


def test_camel_case_on_the_wire_snake_case_in_python():
    spec = ConceptAdapterSpec.model_validate(
        {"concept": "x", "prompt": "p", "data": {"keepFraction": 0.4, "heldOut": 3}, "deletionPolicy": "Delete"}
    )
    assert spec.data.keep_fraction == 0.4 and spec.data.held_out == 3
    dumped = spec.model_dump(by_alias=True)
    assert dumped["deletionPolicy"] == "Delete" and dumped["data"]["keepFraction"] == 0.4


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"colour": 1}, "colour: unknown field"),
        ({"concept": "Bad_Name"}, "concept: \"Bad_Name\" is not in the expected form — use a value like pencil-sketch"),
        ({"search": {"ranks": [0]}}, "search.ranks.0"),
        ({"data": {"keepFraction": 0}}, "data.keepFraction"),
        ({"training": {"resolution": 100}}, "multiple of 8"),
        ({"data": {"pairs": 10, "heldOut": 10}}, "heldOut"),
        ({"catalog": {"uri": "ftp://x y"}}, "catalog.uri"),
        ({"resources": {"workers": 10**9}}, "resources.workers"),
    ],
)
def test_bad_values_name_the_field(patch, expected):
    with pytest.raises(ValidationError) as err:
        ConceptAdapterSpec.model_validate({"concept": "x", "prompt": "p", **patch})
    assert expected in first_error(err.value)


def test_load_accepts_a_bare_spec_or_a_whole_manifest(tmp_path):
    bare = tmp_path / "bare.yaml"
    bare.write_text("concept: winter\nprompt: make it winter\n")
    manifest = tmp_path / "ca.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {"apiVersion": "e2gan.dev/v1alpha1", "kind": "ConceptAdapter", "metadata": {"name": "w"},
             "spec": {"concept": "winter", "prompt": "make it winter"}}
        )
    )
    assert load_spec(bare) == load_spec(manifest)
    with pytest.raises(SpecError, match="kind: expected ConceptBase, found .ConceptAdapter."):
        load_spec(manifest, ConceptBaseSpec)


def test_load_refuses_bad_yaml_and_missing_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("concept: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(bad)
    with pytest.raises(SpecError, match="no such spec file"):
        load_spec(tmp_path / "missing.yaml")
