"""The KubeRay RayJob (ray.io/v1) that trains one ConceptAdapter or ConceptBase: built, named and read here.

Pure functions, no I/O. The name is derived from a digest of the training inputs, so a
restarted operator computes the same name and finds the job it made before (a create
answered 409 is adoption, never a second job), and a changed spec gets a new job.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from e2gan_operator.pods import (
    PodOverlay,
    PodSettingsError,
    Profile,
    ca_env,
    container_security_context,
    pod_security_context,
    volumes_and_mounts,
)
from e2gan_operator.settings import OperatorSettings

RAY_API_VERSION = "ray.io/v1"
MANAGED_BY = "e2gan-operator"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_OWNER = "e2gan.dev/owner"
LABEL_OWNER_KIND = "e2gan.dev/owner-kind"
LABEL_DIGEST = "e2gan.dev/spec-digest"
ANNOTATION_DIGEST = "e2gan.dev/spec-digest"
ANNOTATION_PROGRESS_KEY = "e2gan.dev/progress-key"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
DASHBOARD_PORT = 8265
# Changing this annotation on a resource retrains an unchanged spec (it is part of the digest).
RETRAIN_ANNOTATION = "e2gan.dev/retrain"

# KubeRay derives RayCluster and Service names from the RayJob name and refuses names over 47.
MAX_RAYJOB_NAME = 47
DIGEST_CHARS = 10
# Spec fields that do not change what is trained: toggling them never retrains.
NOT_TRAINING_INPUTS = ("suspend", "deletionPolicy", "runtime")
NOT_TRAINING_CATALOG_INPUTS = ("keepVersions",)


@dataclass(frozen=True)
class Trainer:
    """What a resource kind runs: the `e2gan` subcommand and how its objects are labelled."""

    kind: str
    plural: str
    command: str
    component: str


ADAPTER = Trainer(kind="ConceptAdapter", plural="conceptadapters", command="distill", component="concept-adapter")
BASE = Trainer(kind="ConceptBase", plural="conceptbases", command="base", component="concept-base")
TRAINERS = {t.kind: t for t in (ADAPTER, BASE)}


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def training_inputs(spec_wire: dict[str, Any]) -> dict[str, Any]:
    """The spec minus the fields that do not change the trained result."""
    out = {k: v for k, v in spec_wire.items() if k not in NOT_TRAINING_INPUTS}
    if isinstance(out.get("catalog"), dict):
        out["catalog"] = {k: v for k, v in out["catalog"].items() if k not in NOT_TRAINING_CATALOG_INPUTS}
    return out


def spec_digest(trainer: Trainer, namespace: str, name: str, spec_wire: dict[str, Any], retrain: str = "") -> str:
    """sha256 (hex) of what is trained: the resource identity, its training inputs, a retrain token.

    `spec_wire` is the validated spec with defaults filled in (so a manifest that spells a
    default out and one that omits it give the same digest) and the base weights resolved.
    """
    payload = {
        "kind": trainer.kind,
        "namespace": namespace,
        "name": name,
        "spec": training_inputs(spec_wire),
        "retrain": retrain,
    }
    return hashlib.sha256(canonical(payload)).hexdigest()


def rayjob_name(name: str, digest: str) -> str:
    """`<name>-<digest10>`: a DNS-1035 label of at most 47 characters, the same after any restart."""
    stem = re.sub(r"[^a-z0-9-]", "-", name.lower())
    if not stem[:1].isalpha():
        stem = "e" + stem
    stem = stem[: MAX_RAYJOB_NAME - DIGEST_CHARS - 1].rstrip("-")
    return f"{stem}-{digest[:DIGEST_CHARS]}"


def progress_key(namespace: str, name: str, generation: int) -> str:
    return f"{namespace}/{name}/{generation}"


def entrypoint(trainer: Trainer, spec_wire: dict[str, Any], catalog_uri: str, key: str) -> str:
    """The trainer command line; the spec travels inside it as base64 JSON (no ConfigMap to keep in step).

    Every argument is shell-quoted: KubeRay hands the entrypoint to a shell.
    """
    spec_b64 = base64.b64encode(canonical(spec_wire)).decode()
    return shlex.join(
        ["e2gan", trainer.command, "--spec-json-b64", spec_b64, "--catalog", catalog_uri, "--progress-key", key]
    )


def decode_spec(entrypoint_line: str) -> dict[str, Any]:
    """The spec carried by an entrypoint built here (for tests and debugging)."""
    args = shlex.split(entrypoint_line)
    return json.loads(base64.b64decode(args[args.index("--spec-json-b64") + 1]))


def _merge_resources(base: dict[str, Any], cpus: int | None, memory: str | None, gpus: int, gpu_name: str) -> dict:
    out = copy.deepcopy(base) if base else {}
    for section in ("requests", "limits"):
        part = dict(out.get(section) or {})
        if cpus is not None:
            part["cpu"] = str(cpus)
        if memory is not None:
            part["memory"] = memory
        if gpus and section == "limits":
            part[gpu_name] = str(gpus)
        if part:
            out[section] = part
    return out


def catalog_env(settings: OperatorSettings) -> list[dict[str, Any]]:
    """E2GAN_S3_* for the Ray containers; credentials only by reference to a Secret."""
    conn = settings.cluster.catalog
    env: list[dict[str, Any]] = []
    if conn.endpoint:
        env.append({"name": "E2GAN_S3_ENDPOINT", "value": conn.endpoint})
    env.append({"name": "E2GAN_S3_SECURE", "value": "true" if conn.secure else "false"})
    env.append({"name": "E2GAN_S3_REGION", "value": conn.region})
    if conn.credentials_secret:
        for var, key in (("E2GAN_S3_ACCESS_KEY", "accesskey"), ("E2GAN_S3_SECRET_KEY", "secretkey")):
            env.append({"name": var, "valueFrom": {"secretKeyRef": {"name": conn.credentials_secret, "key": key}}})
    return env


def _pod_template(
    settings: OperatorSettings,
    *,
    role: str,
    owner_labels: dict[str, str],
    container: str,
    resources: dict[str, Any],
    profile: Profile,
    extra_env: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    """A Ray head or worker pod: restricted, no API token, /dev/shm, volumes, env, CA bundle."""
    cluster = settings.cluster
    pods = cluster.pods
    pod = cluster.head if role == "head" else cluster.worker
    overlay: PodOverlay = profile.head if role == "head" else profile.worker
    volumes, mounts = volumes_and_mounts(pods, profile)
    env = [*catalog_env(settings), *ca_env(pods), *pods.env, *profile.env, *(dict(e) for e in extra_env)]
    spec: dict[str, Any] = {
        # The Ray pods never call the Kubernetes API: no token to steal from them.
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context(pods),
        "containers": [
            {
                "name": container,
                "image": settings.trainer_image,
                "imagePullPolicy": cluster.image_pull_policy,
                "env": env,
                "resources": resources,
                "securityContext": container_security_context(),
                "volumeMounts": mounts,
            }
        ],
        "volumes": volumes,
    }
    if cluster.service_account_name:
        spec["serviceAccountName"] = cluster.service_account_name
    node_selector = {**pod.node_selector, **overlay.node_selector}
    if node_selector:
        spec["nodeSelector"] = node_selector
    tolerations = [*copy.deepcopy(pod.tolerations), *copy.deepcopy(overlay.tolerations)]
    if tolerations:
        spec["tolerations"] = tolerations
    if cluster.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": n} for n in cluster.image_pull_secrets]
    labels = {**pod.labels, **overlay.labels, **owner_labels, "app.kubernetes.io/component": f"ray-{role}"}
    metadata: dict[str, Any] = {"labels": labels}
    annotations = {**pod.annotations, **overlay.annotations}
    if annotations:
        metadata["annotations"] = annotations
    return {"metadata": metadata, "spec": spec}


def submitter_template(settings: OperatorSettings, owner_labels: dict[str, str]) -> dict[str, Any]:
    """The submitter Job's pod: `ray job submit` from a small CPU image, never the CUDA trainer image.

    The container has no command: KubeRay fills in `ray job submit ... -- <entrypoint>` and the
    dashboard address (and, with token auth, the token).
    """
    cluster = settings.cluster
    sub = cluster.pods.submitter
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context(cluster.pods),
        "containers": [
            {
                "name": "ray-job-submitter",
                "image": sub.image_for(cluster.ray_version),
                "imagePullPolicy": cluster.image_pull_policy,
                "resources": copy.deepcopy(sub.resources),
                "securityContext": container_security_context(),
            }
        ],
    }
    if cluster.service_account_name:
        spec["serviceAccountName"] = cluster.service_account_name
    if sub.node_selector:
        spec["nodeSelector"] = dict(sub.node_selector)
    if sub.tolerations:
        spec["tolerations"] = copy.deepcopy(sub.tolerations)
    if cluster.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": n} for n in cluster.image_pull_secrets]
    return {"metadata": {"labels": {**owner_labels, "app.kubernetes.io/component": "ray-submitter"}}, "spec": spec}


def deletion_rules(ttl_seconds: int) -> dict[str, Any]:
    """KubeRay deletionRules: GPUs are freed the moment a job ends; a failed job's head (its logs)
    stays `ttl_seconds`. Never DeleteSelf: the RayJob's status is what the operator reads, and the
    ownerReference removes it with its resource."""
    def rule(policy: str, ttl: int, **condition: str) -> dict[str, Any]:
        return {"policy": policy, "condition": {**condition, "ttlSeconds": ttl}}

    return {
        "deletionRules": [
            rule("DeleteCluster", 0, jobStatus="SUCCEEDED"),
            rule("DeleteWorkers", 0, jobStatus="FAILED"),
            rule("DeleteCluster", ttl_seconds, jobStatus="FAILED"),
            rule("DeleteWorkers", 0, jobDeploymentStatus="Failed"),
            rule("DeleteCluster", ttl_seconds, jobDeploymentStatus="Failed"),
        ]
    }


def owner_reference(owner: dict[str, Any]) -> dict[str, Any]:
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def build_rayjob(
    *,
    trainer: Trainer,
    owner: dict[str, Any],
    spec_wire: dict[str, Any],
    digest: str,
    key: str,
    settings: OperatorSettings,
    extra_env: Sequence[dict[str, Any]] = (),
    suspend: bool | None = None,
) -> dict[str, Any]:
    """The RayJob manifest for `owner` (a ConceptAdapter or ConceptBase body) training `spec_wire`.

    `extra_env` (name/value or name/valueFrom items) is added to the Ray head and workers, after
    the configured env: the operator's per-resource values such as E2GAN_CATALOG_OWNER.
    `suspend` overrides `spec.suspend` (None: the spec's value), e.g. to create a queued job
    suspended for Kueue. An unknown `spec.runtime.profile` raises PodSettingsError (a ValueError
    naming the field; `runtime_problem` checks it beforehand).
    """
    meta = owner["metadata"]
    name = meta["name"]
    resources = spec_wire.get("resources") or {}
    workers = int(resources.get("workers", 1))
    gpus = int(resources.get("gpusPerWorker", 0))
    cluster = settings.cluster
    profile = cluster.pods.profile((spec_wire.get("runtime") or {}).get("profile"))
    owner_labels = {
        "app.kubernetes.io/name": "e2gan",
        "app.kubernetes.io/component": trainer.component,
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_OWNER_KIND: trainer.kind.lower(),
        LABEL_OWNER: name,
    }
    labels = {**owner_labels, LABEL_DIGEST: digest[:16]}
    # Kueue reads its queue and workload priority class from the RayJob's own labels.
    for label in (QUEUE_LABEL, PRIORITY_LABEL):
        if value := (meta.get("labels") or {}).get(label):
            labels[label] = value
    head_resources = copy.deepcopy(cluster.head.resources)
    worker_resources = _merge_resources(
        cluster.worker.resources,
        int(resources.get("cpusPerWorker", 2)),
        str(resources.get("memoryPerWorker", "8Gi")),
        gpus,
        cluster.gpu_resource_name,
    )
    job = cluster.job
    pod = {"owner_labels": owner_labels, "profile": profile, "extra_env": extra_env}
    ray_cluster: dict[str, Any] = {
        "rayVersion": cluster.ray_version,
        "headGroupSpec": {
            # The head runs only the driver: trials and training go to the workers. The dashboard
            # (job submission) listens on the pod IP for the submitter and KubeRay; token auth and
            # the chart's NetworkPolicy keep everyone else out.
            "rayStartParams": {"dashboard-host": "0.0.0.0", "num-cpus": "0", "num-gpus": "0"},
            "template": _pod_template(settings, role="head", container="ray-head", resources=head_resources, **pod),
        },
        "workerGroupSpecs": [
            {
                "groupName": "gpu-workers" if gpus else "cpu-workers",
                "replicas": workers,
                "minReplicas": workers,
                "maxReplicas": workers,
                # Explicit: Ray counts only nvidia.com/gpu, so a MIG or AMD resource would give it 0 GPUs.
                "rayStartParams": {"num-gpus": str(gpus)},
                "template": _pod_template(
                    settings, role="worker", container="ray-worker", resources=worker_resources, **pod
                ),
            }
        ],
    }
    if cluster.pods.dashboard_auth == "token":
        ray_cluster["authOptions"] = {"mode": "token"}
    spec: dict[str, Any] = {
        "entrypoint": entrypoint(trainer, spec_wire, spec_wire["catalog"]["uri"], key),
        "submissionMode": "K8sJobMode",
        "submitterPodTemplate": submitter_template(settings, owner_labels),
        "backoffLimit": job.backoff_limit,
        "suspend": bool(spec_wire.get("suspend", False)) if suspend is None else suspend,
        "rayClusterSpec": ray_cluster,
    }
    if job.deletion_strategy == "rules":
        # KubeRay refuses deletionRules together with shutdownAfterJobFinishes (and so a TTL).
        spec["shutdownAfterJobFinishes"] = False
        spec["deletionStrategy"] = deletion_rules(job.ttl_seconds_after_finished)
    else:
        spec["shutdownAfterJobFinishes"] = True
        spec["ttlSecondsAfterFinished"] = job.ttl_seconds_after_finished
    if job.active_deadline_seconds is not None:
        spec["activeDeadlineSeconds"] = job.active_deadline_seconds
    if job.pre_running_deadline_seconds:  # 0: no pre-running deadline (KubeRay's minimum is 1)
        spec["preRunningDeadlineSeconds"] = job.pre_running_deadline_seconds
    return {
        "apiVersion": RAY_API_VERSION,
        "kind": "RayJob",
        "metadata": {
            "name": rayjob_name(name, digest),
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": {ANNOTATION_DIGEST: digest, ANNOTATION_PROGRESS_KEY: key},
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": spec,
    }


def runtime_problem(settings: OperatorSettings, spec_wire: dict[str, Any]) -> str | None:
    """One line naming `spec.runtime.profile` when it is not a configured profile, else None."""
    try:
        settings.cluster.pods.profile((spec_wire.get("runtime") or {}).get("profile"))
    except PodSettingsError as exc:
        return str(exc)
    return None


def adoption_problem(rayjob: dict[str, Any], owner: dict[str, Any]) -> str | None:
    """Why `rayjob` (found under the name this owner would give it) must not be adopted, or None.

    The name comes from namespace, name and spec only, so a resource deleted and re-created
    with the same spec computes the name of the old resource's RayJob while Kubernetes'
    garbage collector may not have removed it yet. Only a RayJob whose controller
    ownerReference carries this owner's UID is ours.
    """
    uid = owner["metadata"].get("uid")
    refs = (rayjob.get("metadata") or {}).get("ownerReferences") or []
    controller = next((r for r in refs if r.get("controller")), None)
    name = (rayjob.get("metadata") or {}).get("name", "")
    if controller is None:
        return f"RayJob {name} has no controller ownerReference; it was not made by this operator"
    if controller.get("kind") != owner.get("kind") or controller.get("name") != owner["metadata"].get("name"):
        return f"RayJob {name} is controlled by {controller.get('kind')}/{controller.get('name')}"
    if not uid or controller.get("uid") != uid:
        return (f"RayJob {name} belongs to an earlier {owner.get('kind')} of the same name "
                f"(uid {controller.get('uid')}, this one is {uid}); it is left to the garbage collector")
    return None


@dataclass(frozen=True)
class JobState:
    """What a RayJob's status says, reduced to what the operator acts on."""

    state: str
    """pending | running | suspended | succeeded | failed"""
    reason: str = ""
    message: str = ""


# KubeRay v1 jobDeploymentStatus values that end a job; ValidationFailed means KubeRay refused the spec.
_FAILED_DEPLOYMENT = {"Failed", "ValidationFailed"}


def job_state(rayjob: dict[str, Any]) -> JobState:
    """Reduce KubeRay's `jobDeploymentStatus` and `jobStatus` to one state."""
    status = rayjob.get("status") or {}
    deployment = status.get("jobDeploymentStatus") or ""
    job = status.get("jobStatus") or ""
    reason = str(status.get("reason") or "")
    message = str(status.get("message") or "")
    if deployment in ("Suspended", "Suspending"):
        return JobState("suspended", deployment, message)  # its jobStatus is STOPPED: not a failure
    if deployment == "Retrying":
        # backoffLimit: KubeRay starts a new Ray cluster; the FAILED jobStatus is the last attempt's.
        return JobState("pending", deployment, message)
    if job in ("FAILED", "STOPPED"):
        return JobState("failed", reason or job, message)
    if deployment in _FAILED_DEPLOYMENT:
        return JobState("failed", reason or deployment, message)
    if deployment == "Complete":
        if job == "SUCCEEDED":
            return JobState("succeeded", "", message)
        return JobState("failed", reason or job or "Unknown", message)
    if deployment == "Running" or job == "RUNNING":
        return JobState("running", "", message)
    return JobState("pending", deployment or "New", message)
