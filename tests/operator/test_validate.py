"""The operator's own checks, behind the CRD schema: one clear line each."""

from __future__ import annotations

from typing import Any

import pytest

from e2gan_operator.rayjob import ADAPTER, BASE
from e2gan_operator.validate import InvalidResource, validate

GOOD = {"concept": "pencil-sketch", "prompt": "sketch it", "catalog": {"uri": "s3://adapters/catalog"}}


def body(spec: Any, name: str = "pencil") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns"}, "spec": spec}


def test_valid_adapter_and_base() -> None:
    assert validate(ADAPTER, body(GOOD)).concept == "pencil-sketch"  # type: ignore[attr-defined]
    assert validate(ADAPTER, body({**GOOD, "catalog": {"uri": "/mnt/shared/catalog"}}))
    base = {"concepts": [{"concept": "a", "prompt": "b"}], "catalog": {"uri": "file:///mnt/x"}}
    assert validate(BASE, body(base))


@pytest.mark.parametrize(
    "spec,name,match",
    [
        (GOOD, "Bad_Name", "metadata.name"),
        (GOOD, "a" * 64, "metadata.name"),
        (None, "pencil", "spec: missing"),
        ({**GOOD, "search": {"trials": 1, "parallelTrials": 2}}, "pencil", "search.parallelTrials"),
        ({**GOOD, "teacher": {"kind": "sdedit"}}, "pencil", "teacher.model is required"),
        ({**GOOD, "surprise": 1}, "pencil", "surprise: unknown field"),
        ({**GOOD, "training": {"steps": 10**20}}, "pencil", "training.steps"),
        ({**GOOD, "catalog": {"uri": "s3://A"}}, "pencil", "catalog.uri"),
        ({**GOOD, "catalog": {"uri": "./relative"}}, "pencil", "not usable from the Ray pods"),
        ({**GOOD, "catalog": {"uri": "/x;reboot"}}, "pencil", "catalog.uri"),
        ({**GOOD, "base": {"weights": " "}}, "pencil", "base.weights: empty"),
    ],
)
def test_refusals_name_the_field(spec: Any, name: str, match: str) -> None:
    with pytest.raises(InvalidResource, match=match) as info:
        validate(ADAPTER, body(spec, name))
    assert "\n" not in str(info.value)
