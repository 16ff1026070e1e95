"""A KubeRay stand-in: runs each RayJob's entrypoint locally and writes the status KubeRay writes.

KubeRay would create a Ray cluster and submit `spec.entrypoint` to it. Here:
- the Pods KubeRay would create (the head, one per worker group, and the submitter from
  `submitterPodTemplate`) are created in the API server, so Pod validation and Pod Security
  Admission judge the operator's pod templates; a refused Pod leaves the job waiting with a
  Warning event (FailedCreateHeadPod...) and the reason in `refusals`, as KubeRay would;
- the entrypoint runs as a local subprocess (through `/bin/sh -c`, as Ray's job supervisor
  runs it, so shell quoting is exercised) in a folder of its own per attempt, with the head
  container's environment (plain values, Secret and ConfigMap references resolved) and the
  image's (PATH, HOME, TMPDIR; Ray's switches), never the test process's own environment;
- `backoffLimit` retries a failed job with a new Ray cluster (jobDeploymentStatus Retrying).

The status follows KubeRay v1:

    jobDeploymentStatus  Initializing → Running → Complete | Failed     (Suspended while spec.suspend,
                         Retrying between attempts)
    jobStatus            PENDING → RUNNING → SUCCEEDED | FAILED | STOPPED

with `reason` AppFailed or DeadlineExceeded (activeDeadlineSeconds) on failure, plus
`rayClusterName`, `jobId`, `startTime`, `endTime`, `succeeded`/`failed`, `message`.

    with KubeRayStandIn(kubeconfig, namespace="team-a") as kuberay:
        ...                              # the operator creates RayJobs; they run here
    kuberay.runs                         # what ran: name, command, return code, output

Ray itself is the entrypoint's business: give `env={"RAY_ADDRESS": ...}` to use a running
local Ray, or let the trainer start its own.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "ray.io", "v1", "rayjobs"
# Environment the trainer image sets too, passed through to jobs; nothing else of the test's.
IMAGE_ENV_PREFIXES = ("RAY_", "HF_HUB_OFFLINE", "OMP_NUM_THREADS")
RETRY_PAUSE_SECONDS = 0.2
KUBERAY_CRD = Path(__file__).resolve().parents[3] / "shared" / "kuberay" / "ray.io_rayjobs.yaml"

# Served when KubeRay's real CRD is not available: any spec, a status subresource.
MINIMAL_RAYJOB_CRD: dict[str, Any] = yaml.safe_load("""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: rayjobs.ray.io}
spec:
  group: ray.io
  scope: Namespaced
  names: {plural: rayjobs, singular: rayjob, kind: RayJob, listKind: RayJobList}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
          status: {type: object, x-kubernetes-preserve-unknown-fields: true}
""")


def rayjob_crd() -> dict[str, Any]:
    """KubeRay's real RayJob CRD when shared/kuberay has it, else the minimal one."""
    if KUBERAY_CRD.is_file():
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return yaml.load(KUBERAY_CRD.read_text(), Loader=loader)  # noqa: S506 - a safe loader
    return MINIMAL_RAYJOB_CRD


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Run:
    """One execution of a RayJob's entrypoint."""

    namespace: str
    name: str
    command: str
    env: dict[str, str]
    returncode: int | None = None
    output: str = ""
    outcome: str = "running"  # succeeded | failed | suspended | deadline | deleted
    attempt: int = 1  # 1 + the retries before it (spec.backoffLimit)
    root: Path | None = None  # the attempt's own working folder (HOME and TMPDIR inside)


@dataclass
class _Active:
    run: Run
    process: subprocess.Popen[str]
    stop_reason: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class KubeRayStandIn:
    """Watches RayJobs (one namespace or all) and runs them; a context manager."""

    def __init__(
        self,
        kubeconfig: Path | str,
        namespace: str | None = None,
        *,
        env: dict[str, str] | None = None,
        output_limit: int = 200_000,
    ) -> None:
        from kubernetes import client, config

        self._api_client = config.new_client_from_config(config_file=str(kubeconfig))
        self._custom = client.CustomObjectsApi(self._api_client)
        self._core = client.CoreV1Api(self._api_client)
        self.namespace = namespace
        self.env = dict(env or {})
        self.output_limit = output_limit
        self.runs: list[Run] = []
        self.refusals: list[str] = []  # why the API server refused a Pod (Pod Security, validation)
        self._active: dict[str, _Active] = {}  # by RayJob uid
        self._started: set[str] = set()  # uids whose current run was started (until suspended)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> KubeRayStandIn:
        self._thread = threading.Thread(target=self._watch_forever, name="kuberay-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            active = list(self._active.values())
        for item in active:
            self._kill(item, "deleted")
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._api_client.close()

    def __enter__(self) -> KubeRayStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- watching ------------------------------------------------------------------

    def _list(self, **kwargs: Any) -> dict[str, Any]:
        if self.namespace:
            return self._custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, **kwargs)
        return self._custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, **kwargs)

    def _watch_forever(self) -> None:
        from kubernetes import watch

        while not self._stop.is_set():
            try:
                listing = self._list()
                for item in listing.get("items") or []:
                    self._on_event("ADDED", item)
                version = listing["metadata"]["resourceVersion"]
                stream = watch.Watch()
                for event in stream.stream(
                    self._list, resource_version=version, timeout_seconds=5, allow_watch_bookmarks=False
                ):
                    if self._stop.is_set():
                        stream.stop()
                        break
                    if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                        self._on_event(event["type"], event["object"])
            except Exception as exc:  # a dropped watch: list again
                if not self._stop.is_set():
                    log.debug("kuberay stand-in watch restarts: %s", exc)
                    time.sleep(0.2)

    def _on_event(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        uid = meta.get("uid", "")
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        with self._lock:
            active = self._active.get(uid)
        if kind == "DELETED" or meta.get("deletionTimestamp"):
            if active is not None:
                self._kill(active, "deleted")
            return
        suspended = bool(spec.get("suspend"))
        if active is not None:
            if suspended:
                self._kill(active, "suspended")
            return
        deployment = status.get("jobDeploymentStatus") or ""
        if deployment in ("Complete", "Failed", "ValidationFailed"):
            return
        if suspended:
            with self._lock:
                self._started.discard(uid)
            if deployment != "Suspended":
                self._patch(obj, {"jobDeploymentStatus": "Suspended", "jobStatus": "STOPPED" if deployment else ""})
            return
        with self._lock:
            if uid in self._started:
                return
            self._started.add(uid)
        threading.Thread(target=self._run, args=(obj,), name=f"rayjob-{meta.get('name')}", daemon=True).start()

    # -- running -------------------------------------------------------------------

    def _patch(self, obj: dict[str, Any], status: dict[str, Any]) -> None:
        meta = obj["metadata"]
        try:
            self._custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, meta["namespace"], PLURAL, meta["name"], {"status": status}
            )
        except Exception as exc:  # the RayJob may be gone: nothing to report to
            log.debug("status of RayJob %s not written: %s", meta["name"], exc)

    def _container_env(self, obj: dict[str, Any]) -> dict[str, str]:
        """The head container's env, as the kubelet would give it (Secrets and ConfigMaps resolved)."""
        namespace = obj["metadata"]["namespace"]
        head = ((obj["spec"].get("rayClusterSpec") or {}).get("headGroupSpec") or {}).get("template") or {}
        containers = (head.get("spec") or {}).get("containers") or [{}]
        out: dict[str, str] = {}
        for var in containers[0].get("env") or []:
            if "value" in var:
                out[var["name"]] = str(var["value"])
                continue
            source = var.get("valueFrom") or {}
            if "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                secret = self._core.read_namespaced_secret(ref["name"], namespace)
                out[var["name"]] = base64.b64decode((secret.data or {})[ref["key"]]).decode()
            elif "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                out[var["name"]] = (self._core.read_namespaced_config_map(ref["name"], namespace).data or {})[ref["key"]]
        return out

    def _pods(self, obj: dict[str, Any], cluster: str) -> list[dict[str, Any]]:
        """The Pods KubeRay would create: the head, one per worker group, and the submitter."""
        spec = obj["spec"]
        cluster_spec = spec.get("rayClusterSpec") or {}
        owner = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "RayJob", "name": obj["metadata"]["name"],
                 "uid": obj["metadata"]["uid"]}
        templates = [("head", f"{cluster}-head", (cluster_spec.get("headGroupSpec") or {}).get("template") or {})]
        for group in cluster_spec.get("workerGroupSpecs") or []:
            if int(group.get("replicas", group.get("minReplicas", 1)) or 0) > 0:
                templates.append(("worker", f"{cluster}-{group.get('groupName', 'workers')}-worker-0",
                                  group.get("template") or {}))
        if spec.get("submitterPodTemplate"):
            templates.append(("submitter", f"{obj['metadata']['name']}-submitter", spec["submitterPodTemplate"]))
        pods = []
        for role, name, template in templates:
            meta = dict(template.get("metadata") or {})
            labels = {**(meta.get("labels") or {}), "ray.io/cluster": cluster, "ray.io/node-type": role}
            pods.append({"apiVersion": "v1", "kind": "Pod", "spec": template.get("spec") or {}, "metadata": {
                "name": name, "labels": labels, "annotations": meta.get("annotations") or {},
                "ownerReferences": [owner]}})
        return pods

    def _start_pods(self, obj: dict[str, Any], cluster: str) -> list[str] | None:
        """Create the Pods in the API server (Pod Security Admission and Pod validation apply, as
        they do to KubeRay's); None after posting a Warning event when one is refused."""
        from kubernetes.client.exceptions import ApiException

        namespace, created = obj["metadata"]["namespace"], []
        for pod in self._pods(obj, cluster):
            try:
                self._core.create_namespaced_pod(namespace, pod)
                created.append(pod["metadata"]["name"])
            except ApiException as exc:
                try:
                    why = json.loads(exc.body or "{}").get("message") or str(exc)
                except ValueError:
                    why = str(exc)
                role = pod["metadata"]["labels"]["ray.io/node-type"].capitalize()
                self.refusals.append(why)
                self._event(obj, f"FailedCreate{role}Pod", f"Failed to create {role.lower()} Pod: {why}")
                self._delete_pods(namespace, created)
                return None
        return created

    def _delete_pods(self, namespace: str, names: list[str]) -> None:
        for name in names:
            try:
                self._core.delete_namespaced_pod(name, namespace)
            except Exception as exc:  # gone already (the RayJob's deletion cascades)
                log.debug("pod %s not deleted: %s", name, exc)

    def _event(self, obj: dict[str, Any], reason: str, message: str) -> None:
        meta = obj["metadata"]
        body = {"metadata": {"generateName": f"{meta['name']}."}, "type": "Warning", "reason": reason,
                "message": message[:1024], "source": {"component": "kuberay-standin"},
                "involvedObject": {"apiVersion": f"{GROUP}/{VERSION}", "kind": "RayJob", "name": meta["name"],
                                   "namespace": meta["namespace"], "uid": meta["uid"]}}
        try:
            self._core.create_namespaced_event(meta["namespace"], body)
        except Exception as exc:
            log.debug("event on RayJob %s not written: %s", meta["name"], exc)

    def _job_env(self, obj: dict[str, Any], root: Path) -> dict[str, str]:
        """What the job sees: the head container's env and the image's, never the test's own process
        environment (only Ray's and the Hub's switches, which the trainer image also sets)."""
        image = {k: v for k, v in os.environ.items() if k.startswith(IMAGE_ENV_PREFIXES)}
        env = {"PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
               "HOME": str(root / "home"), "TMPDIR": str(root / "tmp"), "LANG": "C.UTF-8", **image}
        return {**env, **self.env, **self._container_env(obj)}

    def _run(self, obj: dict[str, Any]) -> None:
        meta, spec = obj["metadata"], obj["spec"]
        name = meta["name"]
        attempts = int(spec.get("backoffLimit") or 0) + 1
        for attempt in range(1, attempts + 1):
            outcome = self._attempt(obj, attempt)
            if outcome != "failed" or attempt == attempts:
                return
            # backoffLimit: KubeRay tears the Ray cluster down and starts a new one.
            self._patch(obj, {"jobDeploymentStatus": "Retrying", "failed": attempt})
            time.sleep(RETRY_PAUSE_SECONDS)
            try:
                current = self._custom.get_namespaced_custom_object(GROUP, VERSION, meta["namespace"], PLURAL, name)
            except Exception:  # deleted meanwhile: nothing left to retry
                return
            if self._stop.is_set() or (current.get("spec") or {}).get("suspend") or \
                    (current.get("metadata") or {}).get("deletionTimestamp"):
                return
            log.debug("RayJob %s: attempt %d of %d", name, attempt + 1, attempts)

    def _attempt(self, obj: dict[str, Any], attempt: int) -> str:
        meta, spec = obj["metadata"], obj["spec"]
        name = meta["name"]
        cluster = f"{name}-raycluster-{uuid.uuid4().hex[:5]}"
        self._patch(
            obj,
            {
                "jobDeploymentStatus": "Initializing",
                "jobStatus": "",
                "rayClusterName": cluster,
                "jobId": f"{name}-{uuid.uuid4().hex[:8]}",
                "startTime": _now(),
            },
        )
        pods = self._start_pods(obj, cluster)
        if pods is None:
            return "refused"  # the job waits with no pods, as KubeRay's would; the event says why
        # Each attempt runs in a folder of its own: the job shares no working folder with the operator.
        # A short path under the system's temporary folder: Ray's AF_UNIX sockets live in TMPDIR
        # and their paths may not exceed 107 bytes.
        root = Path(tempfile.mkdtemp(prefix="rayjob-"))
        for folder in ("home", "tmp"):
            (root / folder).mkdir()
        try:
            env = self._job_env(obj, root)
        except Exception as exc:  # a missing Secret: KubeRay's pods would not start either
            self._delete_pods(meta["namespace"], pods)
            self._patch(obj, {"jobDeploymentStatus": "Failed", "reason": "SubmissionFailed", "message": str(exc),
                              "endTime": _now(), "failed": attempt})
            return "submission"
        self._patch(obj, {"jobDeploymentStatus": "Running", "jobStatus": "PENDING"})
        command = str(spec.get("entrypoint") or "")
        run = Run(meta["namespace"], name, command, env, attempt=attempt, root=root)
        process = subprocess.Popen(
            ["/bin/sh", "-c", command], env=env, cwd=root, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        active = _Active(run, process)
        with self._lock:
            self._active[meta["uid"]] = active
            self.runs.append(run)
        self._patch(obj, {"jobStatus": "RUNNING"})
        deadline = spec.get("activeDeadlineSeconds")
        timer = None
        if deadline:
            timer = threading.Timer(float(deadline), self._kill, args=(active, "deadline"))
            timer.daemon = True
            timer.start()
        output, _ = process.communicate()
        if timer is not None:
            timer.cancel()
        with self._lock:
            self._active.pop(meta["uid"], None)
        self._delete_pods(meta["namespace"], pods)
        if process.returncode == 0:
            shutil.rmtree(root, ignore_errors=True)  # a failed attempt's folder stays, for its logs
        run.returncode = process.returncode
        run.output = output[-self.output_limit:]
        tail = " | ".join(run.output.strip().splitlines()[-5:])[-2000:]
        last = attempt > int(spec.get("backoffLimit") or 0)
        if active.stop_reason == "deleted":
            run.outcome = "deleted"
        elif active.stop_reason == "suspended":
            run.outcome = "suspended"
            with self._lock:
                self._started.discard(meta["uid"])
            self._patch(obj, {"jobDeploymentStatus": "Suspended", "jobStatus": "STOPPED"})
        elif active.stop_reason == "deadline":
            run.outcome = "deadline"
            self._patch(obj, {"jobDeploymentStatus": "Failed", "jobStatus": "STOPPED", "reason": "DeadlineExceeded",
                              "message": f"The RayJob has passed its activeDeadlineSeconds ({deadline} s)",
                              "endTime": _now(), "failed": attempt})
        elif process.returncode == 0:
            run.outcome = "succeeded"
            self._patch(obj, {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED", "endTime": _now(),
                              "succeeded": 1, "message": "Job finished successfully."})
        else:
            run.outcome = "failed"
            message = f"Job entrypoint command failed with exit code {process.returncode}: {tail}"
            if last:
                self._patch(obj, {"jobDeploymentStatus": "Failed", "jobStatus": "FAILED", "reason": "AppFailed",
                                  "message": message, "endTime": _now(), "failed": attempt})
            else:
                self._patch(obj, {"jobStatus": "FAILED", "message": message})
        return run.outcome

    def _kill(self, active: _Active, why: str) -> None:
        with active.lock:
            if active.stop_reason is None:
                active.stop_reason = why
            if active.process.poll() is None:
                try:
                    os.killpg(active.process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass

    def wait_idle(self, timeout: float = 60) -> None:
        """Block until no entrypoint is running."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._lock:
                if not self._active:
                    return
            time.sleep(0.05)
        raise TimeoutError("RayJob entrypoints still running")
