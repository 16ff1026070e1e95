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
from dataclasses import dataclass
from typing import Any

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
# Changing this annotation on a resource retrains an unchanged spec (it is part of the digest).
RETRAIN_ANNOTATION = "e2gan.dev/retrain"

# KubeRay derives RayCluster and Service names from the RayJob name and refuses names over 47.
MAX_RAYJOB_NAME = 47
DIGEST_CHARS = 10
# Spec fields that do not change what is trained: toggling them never retrains.
NOT_TRAINING_INPUTS = ("suspend", "deletionPolicy")
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
) -> dict[str, Any]:
    cluster = settings.cluster
    pod = cluster.head if role == "head" else cluster.worker
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": container,
                "image": settings.trainer_image,
                "imagePullPolicy": cluster.image_pull_policy,
                "env": catalog_env(settings),
                "resources": resources,
            }
        ],
    }
    if cluster.service_account_name:
        spec["serviceAccountName"] = cluster.service_account_name
    if pod.node_selector:
        spec["nodeSelector"] = dict(pod.node_selector)
    if pod.tolerations:
        spec["tolerations"] = copy.deepcopy(pod.tolerations)
    if cluster.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": n} for n in cluster.image_pull_secrets]
    metadata: dict[str, Any] = {"labels": {**pod.labels, **owner_labels, "app.kubernetes.io/component": f"ray-{role}"}}
    if pod.annotations:
        metadata["annotations"] = dict(pod.annotations)
    return {"metadata": metadata, "spec": spec}


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
) -> dict[str, Any]:
    """The RayJob manifest for `owner` (a ConceptAdapter or ConceptBase body) training `spec_wire`."""
    meta = owner["metadata"]
    name = meta["name"]
    resources = spec_wire.get("resources") or {}
    workers = int(resources.get("workers", 1))
    gpus = int(resources.get("gpusPerWorker", 0))
    cluster = settings.cluster
    owner_labels = {
        "app.kubernetes.io/name": "e2gan",
        "app.kubernetes.io/component": trainer.component,
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_OWNER_KIND: trainer.kind.lower(),
        LABEL_OWNER: name,
    }
    labels = {**owner_labels, LABEL_DIGEST: digest[:16]}
    queue = (meta.get("labels") or {}).get(QUEUE_LABEL)
    if queue:
        labels[QUEUE_LABEL] = queue
    head_resources = copy.deepcopy(cluster.head.resources)
    worker_resources = _merge_resources(
        cluster.worker.resources,
        int(resources.get("cpusPerWorker", 2)),
        str(resources.get("memoryPerWorker", "8Gi")),
        gpus,
        cluster.gpu_resource_name,
    )
    job = cluster.job
    spec: dict[str, Any] = {
        "entrypoint": entrypoint(trainer, spec_wire, spec_wire["catalog"]["uri"], key),
        "submissionMode": "K8sJobMode",
        "shutdownAfterJobFinishes": True,
        "ttlSecondsAfterFinished": job.ttl_seconds_after_finished,
        "backoffLimit": job.backoff_limit,
        "suspend": bool(spec_wire.get("suspend", False)),
        "rayClusterSpec": {
            "rayVersion": cluster.ray_version,
            "headGroupSpec": {
                # The head runs only the driver: trials and training go to the workers.
                "rayStartParams": {"dashboard-host": "0.0.0.0", "num-cpus": "0"},
                "template": _pod_template(
                    settings, role="head", owner_labels=owner_labels, container="ray-head", resources=head_resources
                ),
            },
            "workerGroupSpecs": [
                {
                    "groupName": "gpu-workers" if gpus else "cpu-workers",
                    "replicas": workers,
                    "minReplicas": workers,
                    "maxReplicas": workers,
                    "rayStartParams": {},
                    "template": _pod_template(
                        settings,
                        role="worker",
                        owner_labels=owner_labels,
                        container="ray-worker",
                        resources=worker_resources,
                    ),
                }
            ],
        },
    }
    if job.active_deadline_seconds is not None:
        spec["activeDeadlineSeconds"] = job.active_deadline_seconds
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
