"""Operator settings: environment variables and the defaults file, with clear refusals."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

import e2gan_operator
from e2gan_operator.settings import OperatorSettings, SettingsError, load_defaults, parse_defaults


def test_built_in_defaults_without_a_file() -> None:
    s = OperatorSettings.from_env({"E2GAN_DEFAULTS_FILE": "/nonexistent/defaults.yaml"})
    assert s.metrics_port == 9090 and s.log_format == "json" and s.poll_seconds == 10.0
    assert s.cluster.gpu_resource_name == "nvidia.com/gpu" and s.cluster.catalog.credentials_secret is None


def test_environment_overrides(tmp_path: Path) -> None:
    env = {
        "E2GAN_DEFAULTS_FILE": str(tmp_path / "none.yaml"),
        "E2GAN_TRAINER_IMAGE": "registry.local/trainer:2",
        "E2GAN_METRICS_PORT": "0",
        "E2GAN_LOG_FORMAT": "TEXT",
        "E2GAN_POLL_SECONDS": "0.5",
    }
    s = OperatorSettings.from_env(env)
    assert (s.trainer_image, s.metrics_port, s.log_format, s.poll_seconds) == ("registry.local/trainer:2", 0, "text", 0.5)


@pytest.mark.parametrize(
    "env,match",
    [
        ({"E2GAN_METRICS_PORT": "http"}, "E2GAN_METRICS_PORT: expected an integer"),
        ({"E2GAN_METRICS_PORT": "70000"}, "outside"),
        ({"E2GAN_LOG_FORMAT": "xml"}, "E2GAN_LOG_FORMAT"),
        ({"E2GAN_POLL_SECONDS": "0"}, "E2GAN_POLL_SECONDS"),
    ],
)
def test_bad_environment_is_refused(env: dict[str, str], match: str) -> None:
    with pytest.raises(SettingsError, match=match):
        OperatorSettings.from_env({"E2GAN_DEFAULTS_FILE": "/nonexistent", **env})


def test_defaults_file_overrides_and_keeps_the_rest() -> None:
    d = parse_defaults({"gpuResourceName": "amd.com/gpu", "job": {"backoffLimit": 2}, "worker": {"nodeSelector": {"pool": "gpu"}}})
    assert d.gpu_resource_name == "amd.com/gpu" and d.job.backoff_limit == 2
    assert d.job.ttl_seconds_after_finished == 3600 and d.worker.node_selector == {"pool": "gpu"}
    assert d.head.resources["requests"]["memory"] == "4Gi"
    refs = parse_defaults({"imagePullSecrets": ["plain", {"name": "ref"}], "serviceAccountName": ""})
    assert refs.image_pull_secrets == ["plain", "ref"] and refs.service_account_name == ""


@pytest.mark.parametrize(
    "data,match",
    [
        ({"gpuResourceNam": "x"}, "unknown key 'gpuResourceNam'"),
        ({"job": {"backoffLimit": -1}}, "backoffLimit"),
        ({"catalog": {"secure": "no"}}, "catalog.secure"),
        ({"head": {"tolerations": {"key": "x"}}}, "head.tolerations: expected a list"),
        ([1, 2], "expected a mapping"),
    ],
)
def test_bad_defaults_are_refused(data: object, match: str) -> None:
    with pytest.raises(SettingsError, match=match):
        parse_defaults(data)


def test_unreadable_yaml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "defaults.yaml"
    path.write_text("head: [unclosed")
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_defaults(path)


def test_catalog_policy_and_kueue_defaults() -> None:
    d = parse_defaults({
        "catalogPolicy": {"default": "s3://adapters/default", "allowed": {"team-a": ["s3://adapters/team-a"]}},
        "kueue": {"defaultQueues": {"team-a": "a-queue", "*": "shared"}},
    })
    assert d.catalog_policy.default == "s3://adapters/default"
    assert d.catalog_policy.prefixes("team-a") == ["s3://adapters/team-a"] and d.catalog_policy.prefixes("x") is None
    assert (d.kueue.queue("team-a"), d.kueue.queue("team-b")) == ("a-queue", "shared")
    s = OperatorSettings.from_env({"E2GAN_DEFAULTS_FILE": "/nonexistent", "E2GAN_DEFAULT_CATALOG": "s3://c/d",
                                   "E2GAN_LOCAL_CATALOG_ROOTS": "/srv/a:/srv/b"})
    assert s.cluster.catalog_policy.default == "s3://c/d" and s.cluster.catalog_policy.local_roots == ["/srv/a", "/srv/b"]
    assert OperatorSettings.from_env({"E2GAN_DEFAULTS_FILE": "/nonexistent"}).cluster.catalog_policy.default is None


@pytest.mark.parametrize(
    "data,match",
    [
        ({"catalogPolicy": {"allowed": {"a": ["/etc"]}}}, "catalogPolicy.allowed.a"),
        ({"catalogPolicy": {"allowed": {"a": ["s3://b/../c"]}}}, "catalogPolicy.allowed.a"),
        ({"catalogPolicy": {"defualt": "s3://x"}}, "unknown key 'defualt'"),
        ({"kueue": {"queues": {}}}, "unknown key 'queues'"),
    ],
)
def test_bad_catalog_policy_is_refused(data: object, match: str) -> None:
    with pytest.raises(SettingsError, match=match):
        parse_defaults(data)


def test_bad_catalog_environment_is_refused() -> None:
    for env in ({"E2GAN_DEFAULT_CATALOG": "s3://b/../x"}, {"E2GAN_LOCAL_CATALOG_ROOTS": "relative"},
                {"E2GAN_POLL_JITTER": "2"}, {"E2GAN_BASE_FOLLOW_PER_MINUTE": "0"}):
        with pytest.raises(SettingsError):
            OperatorSettings.from_env({"E2GAN_DEFAULTS_FILE": "/nonexistent", **env})


def test_the_example_defaults_file_documents_every_top_level_key() -> None:
    example = Path(e2gan_operator.__file__).with_name("defaults.example.yaml")
    documented = set(yaml.safe_load(example.read_text()))
    with pytest.raises(SettingsError) as refused:
        parse_defaults({"notAKey": 1}, "defaults.yaml")
    known = re.search(r"\(known: (.*)\)", str(refused.value))
    assert known is not None, refused.value
    assert documented == set(known.group(1).split(", "))
