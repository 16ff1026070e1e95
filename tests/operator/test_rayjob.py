"""The RayJob the operator generates: name, digest, entrypoint, shape, and KubeRay's own schema."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2gan_api.spec import ConceptAdapterSpec, ConceptBaseSpec
from e2gan_operator.rayjob import (
    ADAPTER,
    BASE,
    MAX_RAYJOB_NAME,
    QUEUE_LABEL,
    build_rayjob,
    decode_spec,
    entrypoint,
    job_state,
    rayjob_name,
    spec_digest,
)
from e2gan_operator.settings import OperatorSettings, load_defaults, parse_defaults

DEFAULTS_EXAMPLE = Path(__file__).resolve().parents[2] / "operator" / "e2gan_operator" / "defaults.example.yaml"
KUBERAY_CRD = Path(__file__).resolve().parents[3] / "shared" / "kuberay" / "ray.io_rayjobs.yaml"
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def wire(**spec: Any) -> dict[str, Any]:
    base = {"concept": "pencil-sketch", "prompt": "sketch it"}
    return ConceptAdapterSpec.model_validate({**base, **spec}).model_dump(mode="json", by_alias=True)


def owner(name: str = "pencil-sketch", labels: dict[str, str] | None = None, kind: str = "ConceptAdapter") -> dict:
    return {
        "apiVersion": "e2gan.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "team-a", "uid": "u-1", "generation": 3, "labels": labels or {}},
    }


def settings(**env: str) -> OperatorSettings:
    return OperatorSettings.from_env({"E2GAN_DEFAULTS_FILE": str(DEFAULTS_EXAMPLE), "E2GAN_TRAINER_IMAGE": "trainer:1", **env})


def test_names_are_deterministic_dns_1035_and_short() -> None:
    digest = spec_digest(ADAPTER, "team-a", "pencil-sketch", wire())
    assert rayjob_name("pencil-sketch", digest) == rayjob_name("pencil-sketch", digest) == f"pencil-sketch-{digest[:10]}"
    for name in ("a" * 63, "9lives", "x", "a-b-" * 15 + "c"):
        job = rayjob_name(name, digest)
        assert len(job) <= MAX_RAYJOB_NAME and DNS_1035.match(job), job
    assert rayjob_name("p", "1" * 64) != rayjob_name("p", "2" * 64)


def test_digest_ignores_non_training_fields_and_spelled_out_defaults() -> None:
    d = spec_digest(ADAPTER, "ns", "n", wire())
    assert spec_digest(ADAPTER, "ns", "n", wire(suspend=True, deletionPolicy="Delete")) == d
    assert spec_digest(ADAPTER, "ns", "n", wire(catalog={"keepVersions": 9})) == d
    assert spec_digest(ADAPTER, "ns", "n", wire(search={"trials": 4, "parallelTrials": 2})) == d  # the defaults
    assert spec_digest(ADAPTER, "ns", "n", wire(prompt="another")) != d
    assert spec_digest(ADAPTER, "ns", "n", wire(), retrain="2026-11-26") != d
    assert spec_digest(ADAPTER, "ns", "other", wire()) != d
    assert spec_digest(BASE, "ns", "n", wire()) != d


def test_entrypoint_carries_the_spec_and_survives_a_shell() -> None:
    spec = wire(prompt="it's a \"sketch\"; rm -rf / $(reboot) `id`")
    hostile_uri = "/data/catalog;touch /tmp/pwned"
    line = entrypoint(ADAPTER, spec, hostile_uri, "team-a/pencil-sketch/3")
    assert decode_spec(line) == spec
    # What a shell hands the program is exactly the arguments we meant: nothing runs, nothing splits.
    argv = subprocess.run(
        ["/bin/sh", "-c", line.replace("e2gan", "printf '%s\\n'", 1)], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert argv[:2] == ["distill", "--spec-json-b64"]
    assert argv[3:] == ["--catalog", hostile_uri, "--progress-key", "team-a/pencil-sketch/3"]
    assert ConceptAdapterSpec.model_validate(decode_spec(line)) == ConceptAdapterSpec.model_validate(spec)


def test_rayjob_shape_follows_spec_and_defaults() -> None:
    s = settings()
    spec = wire(resources={"workers": 3, "gpusPerWorker": 2, "cpusPerWorker": 6, "memoryPerWorker": "24Gi"}, suspend=True)
    digest = spec_digest(ADAPTER, "team-a", "pencil-sketch", spec)
    job = build_rayjob(
        trainer=ADAPTER, owner=owner(labels={QUEUE_LABEL: "gpu", "other": "x"}), spec_wire=spec, digest=digest,
        key="team-a/pencil-sketch/3", settings=s,
    )
    meta, body = job["metadata"], job["spec"]
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    assert meta["name"] == rayjob_name("pencil-sketch", digest) and meta["namespace"] == "team-a"
    assert meta["ownerReferences"] == [
        {"apiVersion": "e2gan.dev/v1alpha1", "kind": "ConceptAdapter", "name": "pencil-sketch", "uid": "u-1",
         "controller": True, "blockOwnerDeletion": True}
    ]
    assert meta["labels"][QUEUE_LABEL] == "gpu" and "other" not in meta["labels"]
    assert meta["annotations"]["e2gan.dev/progress-key"] == "team-a/pencil-sketch/3"
    assert body["suspend"] is True and body["shutdownAfterJobFinishes"] is True
    assert (body["ttlSecondsAfterFinished"], body["activeDeadlineSeconds"], body["backoffLimit"]) == (3600, 604800, 0)
    assert shlex.split(body["entrypoint"])[:2] == ["e2gan", "distill"]
    cluster = body["rayClusterSpec"]
    assert cluster["rayVersion"] == "2.60.0"
    head = cluster["headGroupSpec"]["template"]["spec"]
    assert head["serviceAccountName"] == "e2gan-trainer" and head["containers"][0]["image"] == "trainer:1"
    (group,) = cluster["workerGroupSpecs"]
    assert group["groupName"] == "gpu-workers" and group["replicas"] == group["minReplicas"] == group["maxReplicas"] == 3
    worker = group["template"]["spec"]
    assert worker["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert worker["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    resources = worker["containers"][0]["resources"]
    assert resources["limits"] == {"cpu": "6", "memory": "24Gi", "nvidia.com/gpu": "2"}
    assert resources["requests"] == {"cpu": "6", "memory": "24Gi"}
    env = {e["name"]: e for e in worker["containers"][0]["env"]}
    assert env["E2GAN_S3_ENDPOINT"]["value"] == "minio.e2gan-system.svc:9000"
    assert env["E2GAN_S3_SECURE"]["value"] == "false"
    assert env["E2GAN_S3_ACCESS_KEY"]["valueFrom"] == {"secretKeyRef": {"name": "e2gan-catalog", "key": "accesskey"}}


def test_cpu_only_job_requests_no_gpu_and_base_runs_e2gan_base() -> None:
    base_spec = ConceptBaseSpec.model_validate({"concepts": [{"concept": "a", "prompt": "b"}]}).model_dump(
        mode="json", by_alias=True
    )
    job = build_rayjob(trainer=BASE, owner=owner("studio", kind="ConceptBase"), spec_wire=base_spec, digest="f" * 64,
                       key="team-a/studio/1", settings=OperatorSettings())
    assert shlex.split(job["spec"]["entrypoint"])[:2] == ["e2gan", "base"]
    assert job["spec"]["suspend"] is False
    (group,) = job["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    assert group["groupName"] == "cpu-workers"
    assert "nvidia.com/gpu" not in group["template"]["spec"]["containers"][0]["resources"]["limits"]


@pytest.mark.parametrize(
    "status,state,reason",
    [
        ({}, "pending", "New"),
        ({"jobDeploymentStatus": "Initializing"}, "pending", "Initializing"),
        ({"jobDeploymentStatus": "Running", "jobStatus": "PENDING"}, "running", ""),
        ({"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}, "succeeded", ""),
        ({"jobDeploymentStatus": "Complete", "jobStatus": "FAILED"}, "failed", "FAILED"),
        ({"jobDeploymentStatus": "Failed", "jobStatus": "FAILED", "reason": "AppFailed"}, "failed", "AppFailed"),
        ({"jobDeploymentStatus": "Failed", "reason": "DeadlineExceeded"}, "failed", "DeadlineExceeded"),
        ({"jobDeploymentStatus": "ValidationFailed"}, "failed", "ValidationFailed"),
        ({"jobDeploymentStatus": "Suspended"}, "suspended", "Suspended"),
        ({"jobDeploymentStatus": "Suspended", "jobStatus": "STOPPED"}, "suspended", "Suspended"),
        ({"jobDeploymentStatus": "Retrying"}, "pending", "Retrying"),
    ],
)
def test_job_state_reads_kuberay_status(status: dict, state: str, reason: str) -> None:
    got = job_state({"status": status})
    assert (got.state, got.reason) == (state, reason)


@pytest.fixture(scope="module")
def kuberay_schema() -> Any:
    if not KUBERAY_CRD.is_file():
        pytest.skip(f"KubeRay's RayJob CRD is not at {KUBERAY_CRD} (shared/kuberay is absent)")
    from tests.harness.kube_api.schema import StructuralSchema

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    doc = yaml.load(KUBERAY_CRD.read_text(), Loader=loader)  # noqa: S506 - a safe loader
    version = next(v for v in doc["spec"]["versions"] if v["name"] == "v1")
    return StructuralSchema(version["schema"]["openAPIV3Schema"])


VARIANTS = {
    "gpu, example defaults, kueue, suspended": (
        settings(), wire(resources={"workers": 2, "gpusPerWorker": 1}, suspend=True), {QUEUE_LABEL: "q"}),
    "cpu, built-in defaults": (OperatorSettings(), wire(), {}),
    "no deadline, no credentials": (OperatorSettings.from_env({"E2GAN_DEFAULTS_FILE": "/nonexistent"}), wire(), {}),
    "defaults as the Helm chart renders them": (
        OperatorSettings(cluster=parse_defaults({
            "serviceAccountName": "", "imagePullSecrets": [{"name": "regcred"}],
            "catalog": {"endpoint": "", "secure": False, "region": "us-east-1", "credentialsSecret": "creds"},
            "job": {"ttlSecondsAfterFinished": 60, "activeDeadlineSeconds": 3600, "backoffLimit": 1},
        })),
        wire(resources={"gpusPerWorker": 2}), {},
    ),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_generated_rayjobs_satisfy_kuberays_crd(kuberay_schema: Any, variant: str) -> None:
    s, spec, labels = VARIANTS[variant]
    job = build_rayjob(trainer=ADAPTER, owner=owner(labels=labels), spec_wire=spec,
                       digest=spec_digest(ADAPTER, "team-a", "pencil-sketch", spec), key="team-a/p/1", settings=s)
    pruned = kuberay_schema.prune(job)
    assert pruned == [], f"fields KubeRay's schema does not know (would be dropped): {pruned}"
    assert [e.text() for e in kuberay_schema.validate(job)] == []


def test_example_defaults_file_parses() -> None:
    defaults = load_defaults(DEFAULTS_EXAMPLE)
    assert defaults.catalog.credentials_secret == "e2gan-catalog"
    assert defaults.worker.node_selector and defaults.head.resources["requests"]["cpu"] == "1"
