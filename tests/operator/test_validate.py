"""The operator's own checks, behind the CRD schema: one clear line each."""

from __future__ import annotations

from typing import Any

import pytest

from e2gan_operator.rayjob import ADAPTER, BASE
from e2gan_operator.settings import CatalogPolicy
from e2gan_operator.validate import InvalidResource, check_catalog, validate

GOOD = {"concept": "pencil-sketch", "prompt": "sketch it", "catalog": {"uri": "s3://adapters/catalog"}}


def body(spec: Any, name: str = "pencil") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns"}, "spec": spec}


def test_valid_adapter_and_base() -> None:
    valid = validate(ADAPTER, body(GOOD))
    assert valid.model.concept == "pencil-sketch" and valid.catalog == "s3://adapters/catalog"  # type: ignore[attr-defined]
    base = {"concepts": [{"concept": "a", "prompt": "b"}], "catalog": {"uri": "s3://bases/x/"}}
    assert validate(BASE, body(base)).catalog == "s3://bases/x"


def test_an_unset_catalog_gets_the_operators_default_and_stays_there() -> None:
    spec = {"concept": "pencil-sketch", "prompt": "sketch it"}  # the smallest spec
    with pytest.raises(InvalidResource, match="no default catalog"):
        validate(ADAPTER, body(spec))
    policy = CatalogPolicy(default="s3://adapters/default")
    assert validate(ADAPTER, body(spec), policy).catalog == "s3://adapters/default"
    # A changed operator default does not move a resource that was given the old one.
    moved = CatalogPolicy(default="s3://adapters/new-default")
    assert validate(ADAPTER, body(spec), moved, sticky_catalog="s3://adapters/default").catalog == "s3://adapters/default"


@pytest.mark.parametrize(
    "uri",
    ["file:///etc", "/etc", "/mnt/shared/catalog", "./adapter-catalog", "s3://bucket/../..", "s3://bucket/a/../b",
     "s3://bucket/./a", "s3://bucket//a", "s3://bucket/.."],
)
def test_only_s3_catalogs_without_dot_segments_are_accepted(uri: str) -> None:
    with pytest.raises(InvalidResource, match="catalog.uri"):
        check_catalog(uri, "ns", CatalogPolicy())


def test_local_catalogs_only_under_configured_roots() -> None:
    policy = CatalogPolicy(local_roots=["/srv/catalogs"])
    assert check_catalog("/srv/catalogs/team", "ns", policy) == "/srv/catalogs/team"
    assert check_catalog("file:///srv/catalogs/team", "ns", policy) == "/srv/catalogs/team"
    for outside in ("/etc", "file:///etc", "/srv/catalogs/../../etc", "/srv/catalogsx"):
        with pytest.raises(InvalidResource):
            check_catalog(outside, "ns", policy)


def test_the_allow_list_restricts_buckets_and_prefixes_per_namespace() -> None:
    policy = CatalogPolicy(allowed={"team-a": ["s3://shared/team-a"], "*": ["s3://sandbox"]})
    assert check_catalog("s3://shared/team-a/catalog", "team-a", policy) == "s3://shared/team-a/catalog"
    assert check_catalog("s3://sandbox/x", "team-b", policy) == "s3://sandbox/x"
    with pytest.raises(InvalidResource, match="not allowed in namespace team-a.*s3://shared/team-a"):
        check_catalog("s3://shared/team-b", "team-a", policy)
    with pytest.raises(InvalidResource, match="not allowed"):
        check_catalog("s3://shared/team-ab", "team-a", policy)  # a prefix is a folder, not a string prefix
    with pytest.raises(InvalidResource, match="not allowed"):
        check_catalog("s3://shared/team-a", "team-b", policy)


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
        ({**GOOD, "catalog": {"uri": "s3://bucket/../.."}}, "pencil", "catalog.uri.*'..'"),
        ({**GOOD, "resources": {"memoryPerWorker": "0"}}, "pencil", "resources.memoryPerWorker"),
        ({**GOOD, "resources": {"memoryPerWorker": "0.0Gi"}}, "pencil", "resources.memoryPerWorker"),
        ({**GOOD, "resources": {"memoryPerWorker": "99999999999999T"}}, "pencil", "resources.memoryPerWorker"),
        ({**GOOD, "resources": {"memoryPerWorker": "4097Gi"}}, "pencil", "at most 4Ti"),
        ({**GOOD, "catalog": {"uri": "/x;reboot"}}, "pencil", "catalog.uri"),
        ({**GOOD, "base": {"weights": " "}}, "pencil", "base.weights: empty"),
    ],
)
def test_refusals_name_the_field(spec: Any, name: str, match: str) -> None:
    with pytest.raises(InvalidResource, match=match) as info:
        validate(ADAPTER, body(spec, name))
    assert "\n" not in str(info.value)


def test_memory_bounds_accept_the_edges() -> None:
    for ok in ("1", "0.5Gi", "4Ti", "4096Gi", "8Gi"):
        assert validate(ADAPTER, body({**GOOD, "resources": {"memoryPerWorker": ok}}))


def test_concept_base_concepts_are_unique() -> None:
    base = {"concepts": [{"concept": "a", "prompt": "b"}, {"concept": "a", "prompt": "c"}],
            "catalog": {"uri": "s3://bases/x"}}
    with pytest.raises(InvalidResource, match="concepts: 'a' appears more than once"):
        validate(BASE, body(base))
