"""The KubeRay stand-in runs RayJob entrypoints and writes KubeRay's status fields."""

from __future__ import annotations

import base64
import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.harness.kuberay_standin import KubeRayStandIn, rayjob_crd

if TYPE_CHECKING:
    from tests.harness.fixtures import KubeApi

pytest_plugins = ["tests.harness.fixtures"]

RAYJOBS = "/apis/ray.io/v1/namespaces/{ns}/rayjobs"


@pytest.fixture(scope="session")
def rayjob_crd_installed(kube_api: KubeApi) -> None:
    status, _, body = kube_api.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", rayjob_crd())
    assert status in (201, 409), body


@pytest.fixture(scope="module")
def standin(kube_api: KubeApi, rayjob_crd_installed: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeRayStandIn]:
    # One stand-in for the module, watching every namespace: each test has its own namespace.
    with KubeRayStandIn(kube_api.kubeconfig) as kuberay:
        yield kuberay


def rayjob(name: str, entrypoint: str, env: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    container = {"name": "ray-head", "image": "trainer:test", "env": env or []}
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": name},
        "spec": {
            "entrypoint": entrypoint,
            "rayClusterSpec": {"headGroupSpec": {"rayStartParams": {}, "template": {"spec": {"containers": [container]}}}},
            **spec,
        },
    }


def create(kube_api: KubeApi, ns: str, body: dict[str, Any]) -> None:
    status, _, answer = kube_api.request("POST", RAYJOBS.format(ns=ns), body)
    assert status == 201, answer


def wait_status(kube_api: KubeApi, ns: str, name: str, deployment: str, timeout: float = 30) -> dict[str, Any]:
    end = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < end:
        _, _, obj = kube_api.request("GET", f"{RAYJOBS.format(ns=ns)}/{name}")
        status = obj.get("status") or {}
        if status.get("jobDeploymentStatus") == deployment:
            return status
        time.sleep(0.05)
    raise AssertionError(f"RayJob {name} never reached {deployment}: {status}")


def py(code: str) -> str:
    return shlex.join([sys.executable, "-c", code])


def test_successful_entrypoint_completes_with_head_env(
    kube_api: KubeApi, kube_namespace: str, standin: KubeRayStandIn, tmp_path: Path
) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3"},
              "data": {"accesskey": base64.b64encode(b"AKIA-test").decode()}}
    assert kube_api.request("POST", f"/api/v1/namespaces/{kube_namespace}/secrets", secret)[0] == 201
    env = [{"name": "PLAIN", "value": "v1"},
           {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "accesskey"}}}]
    out = tmp_path / "env.txt"
    code = f"import os; open({str(out)!r}, 'w').write(os.environ['PLAIN'] + ' ' + os.environ['SECRET'])"
    create(kube_api, kube_namespace, rayjob("ok", py(code) + " && echo 'done; quoted'", env))
    status = wait_status(kube_api, kube_namespace, "ok", "Complete")
    assert status["jobStatus"] == "SUCCEEDED" and status["succeeded"] == 1
    assert status["rayClusterName"].startswith("ok-raycluster-") and status["startTime"] and status["endTime"]
    assert out.read_text() == "v1 AKIA-test"
    assert standin.runs[-1].outcome == "succeeded" and "done; quoted" in standin.runs[-1].output


def test_failing_entrypoint_fails_with_the_exit_code(
    kube_api: KubeApi, kube_namespace: str, standin: KubeRayStandIn
) -> None:
    create(kube_api, kube_namespace, rayjob("bad", py("import sys; print('boom'); sys.exit(3)")))
    status = wait_status(kube_api, kube_namespace, "bad", "Failed")
    assert status["jobStatus"] == "FAILED" and status["reason"] == "AppFailed"
    assert "exit code 3" in status["message"] and "boom" in status["message"]


def test_suspended_job_does_not_run_until_resumed(
    kube_api: KubeApi, kube_namespace: str, standin: KubeRayStandIn, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    create(kube_api, kube_namespace, rayjob("held", py(f"open({str(marker)!r}, 'w')"), suspend=True))
    wait_status(kube_api, kube_namespace, "held", "Suspended")
    # The stand-in handles events in order: once a job created later has run, "held" was decided on.
    create(kube_api, kube_namespace, rayjob("later", py("pass")))
    wait_status(kube_api, kube_namespace, "later", "Complete")
    assert not marker.exists()
    assert [r.name for r in standin.runs if r.namespace == kube_namespace] == ["later"]
    _, _, held = kube_api.request("GET", f"{RAYJOBS.format(ns=kube_namespace)}/held")
    assert held["status"]["jobDeploymentStatus"] == "Suspended"
    patch = {"spec": {"suspend": False}}
    path = f"{RAYJOBS.format(ns=kube_namespace)}/held"
    assert kube_api.request("PATCH", path, patch, content_type="application/merge-patch+json")[0] == 200
    wait_status(kube_api, kube_namespace, "held", "Complete")
    assert marker.exists()


def test_deadline_and_deletion_stop_the_entrypoint(
    kube_api: KubeApi, kube_namespace: str, standin: KubeRayStandIn
) -> None:
    create(kube_api, kube_namespace, rayjob("slow", py("import time; time.sleep(60)"), activeDeadlineSeconds=1))
    status = wait_status(kube_api, kube_namespace, "slow", "Failed", timeout=20)
    assert status["reason"] == "DeadlineExceeded"

    create(kube_api, kube_namespace, rayjob("gone", py("import time; time.sleep(60)")))
    wait_status(kube_api, kube_namespace, "gone", "Running")
    assert kube_api.request("DELETE", f"{RAYJOBS.format(ns=kube_namespace)}/gone")[0] == 200
    standin.wait_idle(timeout=20)
    deadline = time.monotonic() + 20  # the run is recorded once its process has been reaped
    while not any(r.name == "gone" for r in standin.runs) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert next(r for r in standin.runs if r.name == "gone").outcome == "deleted"


def test_backoff_limit_retries_with_a_new_ray_cluster(
    kube_api: KubeApi, kube_namespace: str, standin: KubeRayStandIn, tmp_path: Path
) -> None:
    # Fails on the first attempt, succeeds on the second (a marker survives between attempts).
    marker = tmp_path / "first-attempt-done"
    code = f"import os, sys; p = {str(marker)!r}; e = os.path.exists(p); open(p, 'w'); sys.exit(0 if e else 4)"
    create(kube_api, kube_namespace, rayjob("flaky", py(code), backoffLimit=2))
    status = wait_status(kube_api, kube_namespace, "flaky", "Complete")
    assert status["jobStatus"] == "SUCCEEDED"
    runs = [r for r in standin.runs if r.namespace == kube_namespace and r.name == "flaky"]
    assert [(r.attempt, r.outcome) for r in runs] == [(1, "failed"), (2, "succeeded")]
    assert runs[0].root != runs[1].root  # a new cluster: a fresh folder

    create(kube_api, kube_namespace, rayjob("hopeless", py("import sys; sys.exit(5)"), backoffLimit=1))
    status = wait_status(kube_api, kube_namespace, "hopeless", "Failed")
    assert status["failed"] == 2 and status["reason"] == "AppFailed"
    attempts = [r.attempt for r in standin.runs if r.namespace == kube_namespace and r.name == "hopeless"]
    assert attempts == [1, 2]


def test_jobs_get_a_clean_environment_and_a_folder_of_their_own(
    kube_api: KubeApi, kube_namespace: str, standin: KubeRayStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("E2GAN_LEAK_FROM_THE_TEST", "secret")  # the test process's env never reaches a job
    out = tmp_path / "seen.txt"
    code = (f"import os; open({str(out)!r}, 'w').write(repr((os.environ.get('E2GAN_LEAK_FROM_THE_TEST'), "
            "os.getcwd(), os.environ['HOME'], os.environ['TMPDIR'])))")
    create(kube_api, kube_namespace, rayjob("clean", py(code), [{"name": "PLAIN", "value": "v"}]))
    wait_status(kube_api, kube_namespace, "clean", "Complete")
    leaked, cwd, home, tmpdir = eval(out.read_text())  # noqa: S307 - our own repr of a tuple of str
    (run,) = [r for r in standin.runs if r.namespace == kube_namespace]
    assert leaked is None and run.env["PLAIN"] == "v"
    assert cwd == str(run.root) and home.startswith(cwd) and tmpdir.startswith(cwd)


def test_pods_are_judged_by_pod_security_and_a_refusal_is_an_event(
    kube_api: KubeApi, kube_namespace: str, standin: KubeRayStandIn, tmp_path: Path
) -> None:
    label = {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    assert kube_api.request("PATCH", f"/api/v1/namespaces/{kube_namespace}", label,
                            content_type="application/merge-patch+json")[0] == 200
    marker = tmp_path / "ran"
    create(kube_api, kube_namespace, rayjob("loose", py(f"open({str(marker)!r}, 'w')")))  # no securityContext

    def warning() -> dict[str, Any] | None:
        _, _, events = kube_api.request("GET", f"/api/v1/namespaces/{kube_namespace}/events")
        return next((e for e in events["items"] if e["involvedObject"]["name"] == "loose"), None)

    end = time.monotonic() + 20
    while warning() is None and time.monotonic() < end:
        time.sleep(0.05)
    event = warning()
    assert event is not None and event["reason"] == "FailedCreateHeadPod" and event["type"] == "Warning"
    assert 'violates PodSecurity "restricted:latest"' in event["message"]
    _, _, job = kube_api.request("GET", f"{RAYJOBS.format(ns=kube_namespace)}/loose")
    assert job["status"]["jobDeploymentStatus"] == "Initializing" and not marker.exists()

    hardened = {"securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{"name": "ray-head", "image": "trainer:test", "securityContext": {
                    "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}]}
    body = rayjob("hardened", py(f"open({str(marker)!r}, 'w')"))
    body["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"] = hardened
    body["spec"]["submitterPodTemplate"] = {"spec": {**hardened, "restartPolicy": "Never"}}
    create(kube_api, kube_namespace, body)
    wait_status(kube_api, kube_namespace, "hardened", "Complete")
    assert marker.exists()
