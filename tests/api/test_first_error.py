"""`first_error`: the one line a user sees for a bad spec (the CLI's refusal, the operator's status),
naming the field as it is spelled in YAML and saying what to fix."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from e2gan_api.spec import ConceptAdapterSpec, first_error


def error(loc: tuple[str | int, ...], kind: str = "missing", **extra: Any) -> ValidationError:
    """A ValidationError with one line error, as pydantic raises it."""
    return ValidationError.from_exception_data("Spec", [{"type": kind, "loc": loc, "input": {}, **extra}])


def test_the_field_is_named_in_camel_case_as_in_yaml() -> None:
    # Fields given by their Python name (snake_case) are still reported as users write them.
    assert first_error(error(("resources", "memory_per_worker"))).startswith("resources.memoryPerWorker: required")
    assert first_error(error(("search", "ranks", 0))).startswith("search.ranks.0: required")


def test_validator_messages_lose_pydantics_prefix() -> None:
    # A validator's message that already names its field is not prefixed twice.
    refused = error(("search",), "value_error", ctx={"error": ValueError("search.parallelTrials must not exceed")})
    assert first_error(refused) == "search.parallelTrials must not exceed"
    # Only the prefix goes: the same words elsewhere in a message stay.
    kept = error(("data",), "value_error", ctx={"error": ValueError("Value error, twice")})
    assert first_error(kept) == "data: Value error, twice"


def test_unknown_fields_say_what_to_do() -> None:
    assert first_error(error(("teachr",), "extra_forbidden")) == "teachr: unknown field; remove it or check its spelling"


def test_an_error_of_the_whole_spec_has_no_empty_field() -> None:
    with pytest.raises(ValidationError) as refused:
        ConceptAdapterSpec.model_validate("not a mapping")
    line = first_error(refused.value)
    assert line == 'the spec: "not a mapping" is a string, expected a mapping of fields'
    assert not line.startswith(":") and "\n" not in line


def test_a_real_refusal_is_one_line_naming_the_field() -> None:
    with pytest.raises(ValidationError) as refused:
        ConceptAdapterSpec.model_validate({"concept": "pencil-sketch", "prompt": "p",
                                           "search": {"trials": 2, "parallelTrials": 3}})
    assert first_error(refused.value) == "search.parallelTrials (3) must not exceed search.trials (2)"


def test_other_exceptions_pass_through() -> None:
    assert first_error(ValueError("no such file: spec.yaml")) == "no such file: spec.yaml"
