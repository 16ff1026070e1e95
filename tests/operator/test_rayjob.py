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
from e2gan_operator.pods import PodSettingsError
from e2gan_operator.rayjob import (
    ADAPTER,
    BASE,
    MAX_RAYJOB_NAME,
    PRIORITY_LABEL,
    QUEUE_LABEL,
    adoption_problem,
    build_rayjob,
    decode_spec,
    entrypoint,
    job_state,
    rayjob_name,
    runtime_problem,
    spec_digest,
)
from e2gan_operator.settings import OperatorSettings, SettingsError, load_defaults, parse_defaults
from tests.catalog.conftest import rclone_factory  # noqa: F401 - a fixture
from tests.harness.kube_api import pod_security

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
        trainer=ADAPTER, owner=owner(labels={QUEUE_LABEL: "gpu", PRIORITY_LABEL: "low", "other": "x"}),
        spec_wire=spec, digest=digest,
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
    assert meta["labels"][PRIORITY_LABEL] == "low"
    assert meta["annotations"]["e2gan.dev/progress-key"] == "team-a/pencil-sketch/3"
    assert body["suspend"] is True
    # deletionRules (the default) exclude shutdownAfterJobFinishes and its TTL in KubeRay.
    assert body["shutdownAfterJobFinishes"] is False and "ttlSecondsAfterFinished" not in body
    assert (body["activeDeadlineSeconds"], body["backoffLimit"], body["preRunningDeadlineSeconds"]) == (604800, 0, 3600)
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
        # backoffLimit > 0: the failed attempt's jobStatus stays while KubeRay starts the next one.
        ({"jobDeploymentStatus": "Retrying", "jobStatus": "FAILED", "failed": 1}, "pending", "Retrying"),
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
    "example defaults, a profile, MIG": (
        OperatorSettings.from_env({"E2GAN_DEFAULTS_FILE": str(DEFAULTS_EXAMPLE)}),
        wire(resources={"gpusPerWorker": 1}, runtime={"profile": "sdxl-teacher"}), {}),
    "shutdown strategy, no dashboard auth": (
        OperatorSettings(cluster=parse_defaults({"job": {"deletionStrategy": "shutdown"},
                                                 "pods": {"dashboardAuth": "disabled"}})), wire(), {}),
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


# ---------------------------------------------------------------------------------------- production pods

MIG = "nvidia.com/mig-1g.10gb"


def pod_templates(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    cluster = job["spec"]["rayClusterSpec"]
    return {
        "head": cluster["headGroupSpec"]["template"],
        **{g["groupName"]: g["template"] for g in cluster["workerGroupSpecs"]},
        "submitter": job["spec"]["submitterPodTemplate"],
    }


def build(s: OperatorSettings, spec: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    spec = spec or wire(resources={"workers": 2, "gpusPerWorker": 1})
    return build_rayjob(trainer=ADAPTER, owner=owner(), spec_wire=spec, digest="a" * 64, key="k", settings=s, **kw)


@pytest.mark.parametrize("s", [OperatorSettings(), settings()], ids=["built-in", "example"])
def test_every_pod_meets_pod_security_restricted(s: OperatorSettings) -> None:
    """The rules of the Pod Security Standard "restricted" profile, for head, workers and submitter."""
    for role, template in pod_templates(build(s)).items():
        pod = template["spec"]
        assert pod_security.violations(pod, "restricted") == [], role  # Pod Security Admission's own checks
        assert pod["automountServiceAccountToken"] is False, role
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0, role
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, role
        assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), role
        assert not any("hostPath" in v for v in pod.get("volumes", [])), role
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}, role
            assert sc.get("privileged") is not True and sc["runAsNonRoot"] is True, role
            assert not any("hostPort" in p for p in c.get("ports", [])), role


def test_ray_pods_get_shm_volumes_env_and_the_ca_bundle() -> None:
    job = build(settings(), extra_env=[{"name": "E2GAN_CATALOG_OWNER", "value": "k8s:team-a/pencil-sketch/u-1"}])
    for role in ("head", "gpu-workers"):
        pod = pod_templates(job)[role]["spec"]
        (c,) = pod["containers"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        assert volumes[mounts["/dev/shm"]["name"]]["emptyDir"] == {"medium": "Memory", "sizeLimit": "16Gi"}
        teachers = volumes[mounts["/models"]["name"]]
        assert teachers["persistentVolumeClaim"] == {"claimName": "teacher-weights", "readOnly": True}
        assert mounts["/models"]["readOnly"] is True
        env = {e["name"]: e for e in c["env"]}
        # The CA file the trainer's S3 client reads lies in the mounted ConfigMap, under its key.
        ca = env["E2GAN_S3_CA_FILE"]["value"]
        mount = next(m for p, m in mounts.items() if ca.startswith(p + "/"))
        assert volumes[mount["name"]]["configMap"] == {"name": "corp-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
        assert ca.rsplit("/", 1)[1] == "ca.crt"
        assert env["HF_HUB_OFFLINE"]["value"] == "1"
        assert env["HF_TOKEN"]["valueFrom"] == {"secretKeyRef": {"name": "hf-token", "key": "token"}}
        # The operator's per-resource env comes last, after the configured env.
        assert c["env"][-1] == {"name": "E2GAN_CATALOG_OWNER", "value": "k8s:team-a/pencil-sketch/u-1"}
    # The submitter only runs `ray job submit`: no catalog credentials, no volumes.
    submitter = pod_templates(job)["submitter"]["spec"]
    assert "env" not in submitter["containers"][0] and "volumes" not in submitter


def test_a_profile_adds_volumes_env_and_placement_and_never_retrains() -> None:
    s = settings()
    spec = wire(resources={"gpusPerWorker": 1}, runtime={"profile": "sdxl-teacher"})
    job = build(s, spec)
    worker = pod_templates(job)["gpu-workers"]["spec"]
    (c,) = worker["containers"]
    assert {"name": "sdxl", "image": {"reference": "registry.example.com/teachers/sdxl:1.0", "pullPolicy": "IfNotPresent"}} \
        in worker["volumes"]
    assert {"name": "sdxl", "mountPath": "/models/sdxl", "readOnly": True} in c["volumeMounts"]
    assert {"name": "HF_HUB_CACHE", "value": "/models/sdxl/hub"} in c["env"]
    assert worker["nodeSelector"] == {"nvidia.com/gpu.present": "true", "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert "nvidia.com/gpu.product" not in pod_templates(job)["head"]["spec"].get("nodeSelector", {})
    # Where the pods run is not what is trained.
    assert spec_digest(ADAPTER, "ns", "n", spec) == spec_digest(ADAPTER, "ns", "n", wire(resources={"gpusPerWorker": 1}))
    with pytest.raises(PodSettingsError, match=r"spec.runtime.profile: unknown profile 'nope' \(known: sdxl-teacher\)"):
        build(s, wire(runtime={"profile": "nope"}))
    assert runtime_problem(s, wire(runtime={"profile": "nope"})) == \
        "spec.runtime.profile: unknown profile 'nope' (known: sdxl-teacher)"
    assert runtime_problem(s, spec) is None and runtime_problem(OperatorSettings(), wire()) is None


def test_suspend_can_be_forced_for_a_queue() -> None:
    assert build(OperatorSettings(), wire(), suspend=True)["spec"]["suspend"] is True
    assert build(OperatorSettings(), wire(suspend=True))["spec"]["suspend"] is True
    assert build(OperatorSettings(), wire())["spec"]["suspend"] is False


def test_num_gpus_is_explicit_so_mig_slices_count() -> None:
    s = OperatorSettings(cluster=parse_defaults({"gpuResourceName": MIG}))
    job = build(s, wire(resources={"workers": 1, "gpusPerWorker": 2}))
    (group,) = job["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    assert group["rayStartParams"]["num-gpus"] == "2"
    assert group["template"]["spec"]["containers"][0]["resources"]["limits"][MIG] == "2"
    assert job["spec"]["rayClusterSpec"]["headGroupSpec"]["rayStartParams"]["num-gpus"] == "0"
    (cpu_group,) = build(s, wire())["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    assert cpu_group["rayStartParams"]["num-gpus"] == "0"


def test_submitter_is_cpu_only_with_pull_secrets_and_tolerations() -> None:
    s = OperatorSettings(
        trainer_image="trainer:1",
        cluster=parse_defaults({
            "rayVersion": "2.60.0", "imagePullSecrets": ["regcred"],
            "pods": {"submitter": {"tolerations": [{"key": "pool", "operator": "Exists", "effect": "NoSchedule"}],
                                   "nodeSelector": {"pool": "system"}}},
        }),
    )
    sub = build(s)["spec"]["submitterPodTemplate"]
    pod = sub["spec"]
    (c,) = pod["containers"]
    assert c["image"] == "rayproject/ray:2.60.0-py311-cpu" != s.trainer_image
    assert not any("gpu" in k for part in c["resources"].values() for k in part)
    assert c["resources"]["limits"]["memory"] == "1Gi"
    assert "command" not in c, "KubeRay fills in `ray job submit` when the command is empty"
    assert pod["restartPolicy"] == "Never" and pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["tolerations"] == [{"key": "pool", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["nodeSelector"] == {"pool": "system"}
    assert sub["metadata"]["labels"]["app.kubernetes.io/component"] == "ray-submitter"


def test_pre_running_deadline_can_be_turned_off() -> None:
    assert build(OperatorSettings())["spec"]["preRunningDeadlineSeconds"] == 3600
    off = OperatorSettings(cluster=parse_defaults({"job": {"preRunningDeadlineSeconds": 0}}))
    assert "preRunningDeadlineSeconds" not in build(off)["spec"]  # KubeRay's minimum is 1


def test_dashboard_is_token_authenticated_unless_disabled() -> None:
    assert build(OperatorSettings())["spec"]["rayClusterSpec"]["authOptions"] == {"mode": "token"}
    off = OperatorSettings(cluster=parse_defaults({"pods": {"dashboardAuth": "disabled"}}))
    assert "authOptions" not in build(off)["spec"]["rayClusterSpec"]


def test_deletion_rules_follow_kuberays_constraints() -> None:
    body = build(OperatorSettings(cluster=parse_defaults({"job": {"ttlSecondsAfterFinished": 600}})))["spec"]
    rules = body["deletionStrategy"]["deletionRules"]
    # KubeRay: rules exclude shutdownAfterJobFinishes (hence its TTL) and the legacy onSuccess/onFailure.
    assert body["shutdownAfterJobFinishes"] is False and "ttlSecondsAfterFinished" not in body
    assert set(body["deletionStrategy"]) == {"deletionRules"}
    assert all(r["policy"] != "DeleteSelf" for r in rules), "the operator reads the RayJob's status"
    by_condition: dict[tuple, dict[str, int]] = {}
    for r in rules:
        cond = {k: v for k, v in r["condition"].items() if k != "ttlSeconds"}
        assert len(cond) == 1  # exactly one of jobStatus, jobDeploymentStatus
        ttls = by_condition.setdefault(tuple(cond.items()), {})
        assert r["policy"] not in ttls, f"duplicate rule {r}"
        ttls[r["policy"]] = r["condition"]["ttlSeconds"]
    for ttls in by_condition.values():  # KubeRay: Workers <= Cluster <= Self
        order = [ttls[p] for p in ("DeleteWorkers", "DeleteCluster", "DeleteSelf") if p in ttls]
        assert order == sorted(order)
    assert by_condition[(("jobStatus", "FAILED"),)] == {"DeleteWorkers": 0, "DeleteCluster": 600}
    assert by_condition[(("jobStatus", "SUCCEEDED"),)] == {"DeleteCluster": 0}
    legacy = build(OperatorSettings(cluster=parse_defaults({"job": {"deletionStrategy": "shutdown"}})))["spec"]
    assert legacy["shutdownAfterJobFinishes"] is True and legacy["ttlSecondsAfterFinished"] == 3600
    assert "deletionStrategy" not in legacy


BAD_PODS = [
    ({"pods": {"volumes": [{"name": "h", "mountPath": "/h", "hostPath": {"path": "/"}}]}}, "Pod Security restricted"),
    ({"pods": {"volumes": [{"name": "n", "mountPath": "/n", "nfs": {"server": "s", "path": "/"}}]}},
     "Pod Security restricted"),
    ({"pods": {"volumes": [{"name": "dshm", "mountPath": "/x", "emptyDir": {}}]}}, "pods.volumes[0].name"),
    ({"pods": {"volumes": [{"name": "v", "mountPath": "/dev/shm", "emptyDir": {}}]}}, "used by the operator"),
    ({"pods": {"volumes": [{"name": "v", "mountPath": "/a/../etc", "emptyDir": {}}]}}, "without '..'"),
    ({"pods": {"env": [{"name": "AWS_SECRET_ACCESS_KEY", "value": "hunter2"}]}}, "use valueFrom.secretKeyRef"),
    ({"pods": {"env": [{"name": "HF_TOKEN", "value": "hf_x"}]}}, "looks like a secret"),
    ({"pods": {"env": [{"name": "E2GAN_S3_ENDPOINT", "value": "x"}]}}, "is set by the operator"),
    ({"pods": {"env": [{"name": "A"}]}}, "exactly one of value and valueFrom"),
    ({"pods": {"runAsUser": 0}}, "pods.runAsUser: expected a non-root id"),
    ({"pods": {"dashboardAuth": "none"}}, "pods.dashboardAuth"),
    ({"pods": {"privileged": True}}, "pods: unknown key 'privileged'"),
    ({"pods": {"profiles": {"Big": {}}}}, "not a DNS label"),
    ({"pods": {"profiles": {"p": {"worker": {"hostNetwork": True}}}}}, "unknown key 'hostNetwork'"),
    ({"job": {"deletionStrategy": "never"}}, "job.deletionStrategy: expected rules or shutdown"),
    ({"job": {"preRunningDeadlineSeconds": -1}}, "job.preRunningDeadlineSeconds"),
]


@pytest.mark.parametrize(("data", "message"), BAD_PODS, ids=[m for _, m in BAD_PODS])
def test_bad_pod_settings_are_refused_naming_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError) as err:
        parse_defaults(data)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_adoption_checks_the_owner_uid() -> None:
    me = owner()
    mine = build(OperatorSettings())
    assert adoption_problem(mine, me) is None
    recreated = {**me, "metadata": {**me["metadata"], "uid": "u-2"}}
    problem = adoption_problem(mine, recreated)
    assert problem and "earlier ConceptAdapter of the same name" in problem and "u-1" in problem
    stray = {**mine, "metadata": {**mine["metadata"], "ownerReferences": []}}
    assert "no controller ownerReference" in (adoption_problem(stray, me) or "")
    other = build_rayjob(trainer=BASE, owner=owner(kind="ConceptBase"), spec_wire=wire(), digest="a" * 64, key="k",
                         settings=OperatorSettings())
    assert "controlled by ConceptBase/pencil-sketch" in (adoption_problem(other, me) or "")


# ---------------------------------------------------------------------------------------- CA bundle, end to end


def kubelet_env(container: dict[str, Any], pod: dict[str, Any], root: Path, *, config_maps: dict[str, dict[str, bytes]],
                secrets: dict[str, dict[str, str]]) -> dict[str, str]:
    """The container's environment as a kubelet gives it: configMap volumes written as files
    (each mount path becomes a folder under `root`), secretKeyRef resolved."""
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts: dict[str, Path] = {}
    for mount in container.get("volumeMounts", []):
        host = root / mount["mountPath"].lstrip("/")
        host.mkdir(parents=True, exist_ok=True)
        if "configMap" in (volume := volumes[mount["name"]]):
            data = config_maps[volume["configMap"]["name"]]
            for item in volume["configMap"].get("items") or [{"key": k, "path": k} for k in data]:
                (host / item["path"]).write_bytes(data[item["key"]])
        mounts[mount["mountPath"]] = host
    env = {}
    for var in container["env"]:
        if "value" in var:
            value = var["value"]
            for path, host in mounts.items():
                if value.startswith(path + "/"):
                    value = str(host) + value[len(path):]
            env[var["name"]] = value
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = secrets[ref["name"]][ref["key"]]
    return env


@pytest.fixture(scope="module")
def private_ca_store(rclone_factory: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:  # noqa: F811
    """An HTTPS S3 server (rclone) whose certificate a private CA signed, and that CA's PEM."""
    pytest.importorskip("cryptography", reason="cryptography is needed to make a test CA")
    from tests.catalog.test_s3 import _tls_files

    ca, cert, key = _tls_files(tmp_path_factory.mktemp("private-ca"))
    server = rclone_factory("--cert", str(cert), "--key", str(key))
    server.scheme = "https"
    return server, ca


@pytest.mark.parametrize("with_ca", [True, False], ids=["ca bundle configured", "no ca bundle"])
def test_ray_pods_publish_to_a_private_ca_store(private_ca_store: tuple[Any, Path], tmp_path: Path,
                                                with_ca: bool) -> None:
    """A Ray head built from the settings reaches an HTTPS store signed by a private CA through the
    mounted bundle, and fails (TLS) without it: the failure the bundle fixes."""
    from catalog import CatalogError, open_catalog
    from catalog.samples import SAMPLE_BASE_DIGEST, make_adapter
    from catalog.settings import S3Settings

    server, ca = private_ca_store
    defaults: dict[str, Any] = {"catalog": {"endpoint": server.endpoint, "secure": True, "credentialsSecret": "s3"}}
    if with_ca:
        defaults["pods"] = {"caBundle": {"configMapName": "corp-ca", "key": "ca.crt"}}
    job = build(OperatorSettings(cluster=parse_defaults(defaults)))
    head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    env = kubelet_env(head["containers"][0], head, tmp_path / "root", config_maps={"corp-ca": {"ca.crt": ca.read_bytes()}},
                      secrets={"s3": {"accesskey": server.access_key, "secretkey": server.secret_key}})
    env["E2GAN_S3_RETRIES"] = "1"  # a TLS refusal is final; no need to wait out the default retries
    catalog = open_catalog(f"s3://private-ca-{int(with_ca)}/cat", settings=S3Settings.from_env(env))
    make_adapter(tmp_path / "adapter")
    # rclone honours no conditional writes: the catalog is created in explicit lock mode (catalog.json).
    if with_ca:
        catalog.init(guard="lock")
        entry = catalog.publish(tmp_path / "adapter", base_digest=SAMPLE_BASE_DIGEST, concept="pencil-sketch")
        assert catalog.show("pencil-sketch") == entry
    else:
        with pytest.raises(CatalogError, match="TLS failure"):
            catalog.init(guard="lock")
