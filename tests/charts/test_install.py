"""Install the chart into the emulated API server and run the operator exactly as it renders.

What `helm install` does, step by step, with the real pieces: Helm's engine renders the chart
(helm-python-sdk), the real kubectl applies the chart's crds/ and then its manifests to the
emulated API server (tests/harness/kube_api), and the operator is started from the rendered
Deployment's command, args and environment, its volumes filled from the ConfigMap and Secret
as stored in the API server (tests/charts/pod.py). KubeRay's real RayJob CRD
(shared/kuberay) validates what the operator creates. A tiny ConceptAdapter is applied and
the test then plays KubeRay: it runs the RayJob's entrypoint (the fake trainer's `e2gan`,
which publishes a real adapter in seconds) with the Ray head's environment against a real S3
server (rclone) and reports the job's status, until the adapter is Ready and its files can be
pulled. The operator runs with its ServiceAccount's token, so the
emulator authorizes each of its requests against the chart's Roles as installed (a missing
permission is a 403, as on a cluster); every request it made is finally checked against the
rendered RBAC too.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from aiohttp import web

from e2gan_api.crd import openapi_to_json_schema
from tests.catalog.conftest import S3Server, rclone_factory  # noqa: F401 - rclone_factory is a fixture
from tests.charts import rbac
from tests.charts.pod import PodProcess, start_pod
from tests.charts.rendering import CHART_DIR, NAMESPACE, RELEASE, REPO_ROOT, Rendered, render
from tests.harness.fixtures import KubeApi
from tests.harness.kube_api import KubeApiApp, KubeApiServer, write_kubeconfig
from tests.harness.kuberay_standin import KUBERAY_CRD, KubeRayStandIn, rayjob_crd

TINY = REPO_ROOT / "examples" / "concepts" / "tiny.yaml"
TEAM = "team-a"
SECRET = "e2gan-catalog-credentials"

# The test's own clients: kubectl, and the kubernetes library of the KubeRay stand-in.
TEST_CLIENTS = ("kubectl/", "OpenAPI-Generator/")


class AuditedApi(KubeApiApp):
    """The emulated API, recording every request the operator makes (any client but the test's own)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.audit: list[tuple[str, str, dict[str, str]]] = []
        self.created: list[dict[str, Any]] = []  # bodies the operator POSTed, before any pruning

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if not request.headers.get("User-Agent", "").startswith(TEST_CLIENTS):
            self.audit.append((request.method, request.path, dict(request.query)))
            if request.method == "POST" and request.can_read_body:
                with contextlib.suppress(ValueError):
                    self.created.append(json.loads(await request.read()))  # aiohttp keeps the body for the handler
        return await super()._middleware(request, handler)


def wait_for(what: str, check: Callable[[], Any], timeout: float, pod: PodProcess | None = None) -> Any:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        value = check()
        if value:
            return value
        if pod is not None and pod.process.poll() is not None:
            raise AssertionError(f"the operator exited ({pod.process.returncode}) waiting for {what}:\n{pod.log()[-4000:]}")
        time.sleep(0.25)
    tail = pod.log()[-4000:] if pod else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{tail}")


@dataclass
class Installed:
    mode: str
    api: KubeApi
    app: AuditedApi
    s3: S3Server
    bucket: str
    rendered: Rendered
    workdir: Path
    timings: dict[str, float] = field(default_factory=dict)
    pod: PodProcess = field(init=False)
    start: Callable[[], PodProcess] = field(init=False)  # the kubelet starting the Deployment's pod (again)

    def kubectl(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.api.kubectl(*args, input=input)

    def apply(self, docs: list[dict[str, Any]] | str, *flags: str) -> None:
        text = docs if isinstance(docs, str) else yaml.safe_dump_all(docs)
        result = self.kubectl("apply", *flags, "-f", "-", input=text)
        assert result.returncode == 0, result.stderr

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        ns = ["-n", namespace] if namespace else []
        result = self.kubectl("get", kind, name, *ns, "-o", "json")
        return json.loads(result.stdout) if result.returncode == 0 else None


def secret_manifest(namespace: str, s3: S3Server) -> dict[str, Any]:
    """The Secret an administrator creates (NOTES.txt step 2): keys accesskey and secretkey."""
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": SECRET, "namespace": namespace},
        "stringData": {"accesskey": s3.access_key, "secretkey": s3.secret_key},
    }


MODE_VALUES: dict[str, dict[str, Any]] = {
    "cluster": {},
    "namespaced": {"watch": {"mode": "namespaced", "namespaces": [TEAM]}},
}


@contextlib.contextmanager
def install(mode: str, workdir: Path, s3: S3Server) -> Iterator[Installed]:
    """helm install into a fresh emulated API server, then start the operator pod; stop both after."""
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    bucket = s3.new_bucket()
    # The admin's one-time `e2gan catalog init`: rclone honours no conditional writes, so lock mode.
    from catalog import open_catalog
    from catalog.settings import S3Settings

    settings = S3Settings.from_env({"E2GAN_S3_ENDPOINT": s3.endpoint, "E2GAN_S3_SECURE": "false",
                                    "E2GAN_S3_REGION": s3.region, "E2GAN_S3_ACCESS_KEY": s3.access_key,
                                    "E2GAN_S3_SECRET_KEY": s3.secret_key})
    open_catalog(f"s3://{bucket}/catalog", settings=settings).init(guard="lock")
    server = KubeApiServer()
    app = AuditedApi(server.api.cluster, server.token, server.api.bookmark_interval)
    server.api = app
    server.start()
    try:
        kubeconfig = write_kubeconfig(workdir / "kubeconfig", server.url, server.token, "default")
        api = KubeApi(server, kubeconfig, workdir / "kubectl-cache")
        # Values for this "cluster": the catalog endpoint, a worker pool, a faster progress poll.
        values = {
            **MODE_VALUES[mode],
            "catalog": {"endpoint": s3.endpoint, "secure": False, "region": s3.region},
            "ray": {"worker": {"nodeSelector": {"pool": "cpu"}}},
            "operator": {"extraEnv": [{"name": "E2GAN_POLL_SECONDS", "value": "1"}]},
        }
        rendered = render(values)
        installed = Installed(mode, api, app, s3, bucket, rendered, workdir, timings)
        # What the administrator prepares: namespaces, the catalog Secret (NOTES.txt), KubeRay.
        installed.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in (NAMESPACE, TEAM)])
        installed.apply([secret_manifest(n, s3) for n in (NAMESPACE, TEAM)])
        result = api.kubectl("apply", "--server-side", "-f", str(KUBERAY_CRD), timeout=120)
        assert result.returncode == 0, result.stderr
        # helm install: crds/ first, then the rendered manifests.
        result = api.kubectl("apply", "-f", str(CHART_DIR / "crds"))
        assert result.returncode == 0, result.stderr
        installed.apply(rendered.docs)
        timings["install"] = time.monotonic() - t0

        # The kubelet: the Deployment's container, as stored in the API server, as a process.
        deployment = installed.get("deployment", RELEASE, NAMESPACE)
        assert deployment is not None
        t1 = time.monotonic()
        starts = iter(range(1, 1000))
        # The kubelet mounts the Deployment's ServiceAccount token: the operator's every request is
        # authorized by the chart's Roles as stored in the API server (the emulator enforces RBAC).
        service_account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
        pod_kubeconfig = write_kubeconfig(workdir / "pod-kubeconfig", server.url,
                                          server.service_account_token(NAMESPACE, service_account), NAMESPACE)

        def start() -> PodProcess:
            folder = workdir / f"pod-{next(starts)}"
            folder.mkdir()
            pod = start_pod(
                deployment, api.kubectl, folder, kubeconfig=pod_kubeconfig,
                extra_env={
                    # The pod network is loopback here; the package is importable from its source folder.
                    "E2GAN_METRICS_HOST": "127.0.0.1",
                    "PYTHONPATH": os.pathsep.join([str(REPO_ROOT / "operator"), str(REPO_ROOT)]),
                },
            )
            pod.wait_ready(timeout=90)
            return pod

        installed.start = start
        installed.pod = start()
        try:
            timings["start_to_ready"] = time.monotonic() - t1
            yield installed
        finally:
            installed.pod.stop()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def s3(rclone_factory: Callable[..., S3Server]) -> S3Server:  # noqa: F811 - the imported fixture
    if not KUBERAY_CRD.is_file():
        pytest.skip(f"KubeRay's RayJob CRD is not at {KUBERAY_CRD} (shared/kuberay)")
    return rclone_factory()


@pytest.fixture(scope="module")
def cluster_install(tmp_path_factory: pytest.TempPathFactory, s3: S3Server) -> Iterator[Installed]:
    with install("cluster", tmp_path_factory.mktemp("install-cluster"), s3) as installed:
        yield installed


@pytest.fixture(scope="module")
def namespaced_install(tmp_path_factory: pytest.TempPathFactory, s3: S3Server) -> Iterator[Installed]:
    with install("namespaced", tmp_path_factory.mktemp("install-namespaced"), s3) as installed:
        yield installed


@pytest.fixture(params=["cluster", "namespaced"])
def installed(request: pytest.FixtureRequest) -> Installed:
    return request.getfixturevalue(f"{request.param}_install")


def test_operator_runs_as_the_deployment_says(installed: Installed) -> None:
    pod, rendered = installed.pod, installed.rendered
    container = rendered.container
    assert pod.argv[0] == container["command"][0] == "kopf"
    # Only the pod network differs: 0.0.0.0:8080 is 127.0.0.1:<free port> here.
    expected = [*container["command"], *container["args"]]
    expected = [a.replace("0.0.0.0:8080", f"127.0.0.1:{pod.ports['health']}") for a in expected]
    assert pod.argv == expected
    for name, value in rendered.env.items():
        if isinstance(value, str) and not value.startswith("/") and value != "9090":
            assert pod.env[name] == value, name
    assert pod.env["E2GAN_METRICS_PORT"] == str(pod.ports["metrics"])
    # The defaults file and the credentials came through the volumes, as mounted.
    defaults = Path(pod.env["E2GAN_DEFAULTS_FILE"])
    assert yaml.safe_load(defaults.read_text()) == rendered.defaults
    creds = Path(pod.env["E2GAN_S3_CREDENTIALS_DIR"])
    assert (creds / "accesskey").read_text() == installed.s3.access_key
    assert pod.probe("livenessProbe") == 200 and pod.probe("readinessProbe") == 200


def test_metrics_are_served_where_the_chart_points(installed: Installed) -> None:
    service = installed.rendered.one("Service")
    port_name = service["spec"]["ports"][0]["targetPort"]
    with urllib.request.urlopen(f"http://127.0.0.1:{installed.pod.ports[port_name]}/metrics", timeout=5) as resp:
        body = resp.read().decode()
    assert "e2gan_operator_" in body


def test_operator_joins_the_charts_peering(installed: Installed) -> None:
    kind, namespace = ("clusterkopfpeering", None) if installed.mode == "cluster" else ("kopfpeering", TEAM)

    def joined() -> dict[str, Any] | None:
        peering = installed.get(kind, RELEASE, namespace)
        return peering if peering and installed.pod.pod_name in (peering.get("status") or {}) else None

    peering = wait_for(f"the operator in the chart's {kind}", joined, timeout=15, pod=installed.pod)
    assert peering["status"][installed.pod.pod_name]["priority"] == 0


@pytest.fixture
def adapter(installed: Installed) -> dict[str, Any]:
    """The tiny ConceptAdapter applied in the team namespace, and the RayJob the operator made for it."""
    manifest = yaml.safe_load(TINY.read_text())
    manifest["metadata"]["namespace"] = TEAM
    manifest["spec"]["catalog"]["uri"] = f"s3://{installed.bucket}/catalog"
    t0 = time.monotonic()
    installed.apply([manifest])
    name = manifest["metadata"]["name"]

    def rayjob() -> dict[str, Any] | None:
        result = installed.kubectl("get", "rayjobs", "-n", TEAM, "-l", f"e2gan.dev/owner={name}", "-o", "json")
        items = json.loads(result.stdout)["items"] if result.returncode == 0 else []
        return items[0] if items else None

    job = wait_for("the RayJob", rayjob, timeout=60, pod=installed.pod)
    installed.timings.setdefault("apply_to_rayjob", time.monotonic() - t0)
    return {"manifest": manifest, "name": name, "rayjob": job}


def test_rayjob_uses_the_charts_defaults(installed: Installed, adapter: dict[str, Any]) -> None:
    job, defaults = adapter["rayjob"], installed.rendered.defaults
    env = installed.rendered.env
    cluster = job["spec"]["rayClusterSpec"]
    assert cluster["rayVersion"] == defaults["rayVersion"]
    # deletionRules (the chart's default strategy): a failed job's head is kept for the TTL.
    ttl = defaults["job"]["ttlSecondsAfterFinished"]
    assert {"policy": "DeleteCluster", "condition": {"jobStatus": "FAILED", "ttlSeconds": ttl}} in \
        job["spec"]["deletionStrategy"]["deletionRules"]
    assert job["spec"]["activeDeadlineSeconds"] == defaults["job"]["activeDeadlineSeconds"]
    assert job["spec"]["preRunningDeadlineSeconds"] == defaults["job"]["preRunningDeadlineSeconds"]
    assert cluster["authOptions"] == {"mode": "token"}
    head = cluster["headGroupSpec"]["template"]["spec"]
    (worker_group,) = cluster["workerGroupSpecs"]
    worker = worker_group["template"]["spec"]
    submitter = job["spec"]["submitterPodTemplate"]["spec"]
    assert submitter["containers"][0]["image"] != env["E2GAN_TRAINER_IMAGE"]
    for pod in (head, worker, submitter):
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsUser"] == defaults["pods"]["runAsUser"]
    for pod in (head, worker):
        (container,) = pod["containers"]
        assert container["image"] == env["E2GAN_TRAINER_IMAGE"]
        pod_env = {e["name"]: e for e in container["env"]}
        assert pod_env["E2GAN_S3_ENDPOINT"]["value"] == installed.s3.endpoint
        assert pod_env["E2GAN_S3_SECURE"]["value"] == "false"
        assert pod_env["E2GAN_S3_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {"name": SECRET, "key": "accesskey"}
    assert head["containers"][0]["resources"] == defaults["head"]["resources"]
    assert worker["nodeSelector"] == {"pool": "cpu"}
    assert job["spec"]["entrypoint"].startswith("e2gan distill ")
    assert job["metadata"]["ownerReferences"][0]["name"] == adapter["name"]
    # What the operator sent is valid for KubeRay's own CRD, with no field KubeRay would drop.
    (sent,) = [b for b in installed.app.created if b.get("kind") == "RayJob" and
               b["metadata"]["name"] == job["metadata"]["name"]]
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in rayjob_validator().iter_errors(sent)]
    assert not errors, errors


@functools.cache
def rayjob_validator() -> jsonschema.Draft202012Validator:
    crd = rayjob_crd()
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    # The schema is KubeRay's (1.4 MB): trusted, so not checked against the metaschema first.
    return jsonschema.Draft202012Validator(openapi_to_json_schema(version["schema"]["openAPIV3Schema"], strict=True))


@pytest.mark.slow
@pytest.mark.skipif(not any((REPO_ROOT / "trainers" / "assets").glob("base-*.safetensors")),
                    reason="the trainer's built-in base weights are not built yet (trainers/assets/base-*.safetensors)")
@pytest.mark.timeout(900)
@pytest.mark.parametrize("installed", ["cluster"], indirect=True)
def test_tiny_concept_reaches_ready_and_its_adapter_can_be_pulled(installed: Installed, adapter: dict[str, Any]) -> None:
    name = adapter["name"]
    t0 = time.monotonic()
    # KubeRay: the stand-in runs the RayJob's entrypoint with the Ray head's environment
    # (the catalog Secret resolved) and writes the status KubeRay would. `e2gan` in the "image"
    # is the fast fake trainer (tests/operator/fake_trainer.py): it speaks the trainer's contract
    # (progress objects, a verified publish to the S3 catalog from the pod's E2GAN_S3_* env) in
    # seconds; the real trainer through the operator and S3 is tests/operator/test_user_path.py.
    shim = installed.workdir / "image-bin"
    shim.mkdir(exist_ok=True)
    (shim / "e2gan").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tests.operator.fake_trainer "$@"\n')
    (shim / "e2gan").chmod(0o755)
    image = {"PATH": f"{shim}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin",
             "PYTHONPATH": str(REPO_ROOT), "FAKE_TRAINER_STEP_SECONDS": "0.2"}
    with KubeRayStandIn(installed.api.kubeconfig, namespace=TEAM, env=image) as kuberay:

        def ready() -> dict[str, Any] | None:
            obj = installed.get("conceptadapter", name, TEAM) or {}
            status = obj.get("status") or {}
            if status.get("phase") == "Ready":
                return obj
            for c in status.get("conditions") or []:
                if c["type"] == "Stalled" and c["status"] == "True":
                    output = kuberay.runs[-1].output[-3000:] if kuberay.runs else ""
                    pytest.fail(f"the ConceptAdapter is Stalled: {c['message']}\n{output}")
            return None

        obj = wait_for("the ConceptAdapter to be Ready", ready, timeout=800, pod=installed.pod)
    installed.timings["apply_to_ready"] = time.monotonic() - t0
    (run,) = kuberay.runs
    assert run.outcome == "succeeded" and run.name == adapter["rayjob"]["metadata"]["name"]
    assert {c["type"]: c["status"] for c in obj["status"]["conditions"]}["Ready"] == "True"
    # kubectl wait, as NOTES.txt tells users.
    waited = installed.kubectl("wait", f"conceptadapter/{name}", "-n", TEAM, "--for=condition=Ready", "--timeout=10s")
    assert waited.returncode == 0, waited.stderr

    # Pull the adapter as NOTES.txt says: the catalog CLI with the catalog Secret's keys.
    published = obj["status"]["published"]
    spec = adapter["manifest"]["spec"]
    assert published["uri"].startswith(spec["catalog"]["uri"] + "/")
    s3 = installed.s3
    pull_env = {**os.environ, "E2GAN_S3_ENDPOINT": s3.endpoint, "E2GAN_S3_SECURE": "false",
                "E2GAN_S3_REGION": s3.region, "E2GAN_S3_ACCESS_KEY": s3.access_key, "E2GAN_S3_SECRET_KEY": s3.secret_key}
    dest = installed.workdir / "pulled"
    pulled = subprocess.run(
        [sys.executable, "-m", "catalog", "--catalog", spec["catalog"]["uri"], "pull", spec["concept"], str(dest),
         "--version", published["version"]],
        env=pull_env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    files = {p.name for p in dest.iterdir()}
    assert {"manifest.json", "adapter_model.safetensors", "adapter_config.json"} <= files, files
    assert json.loads((dest / "manifest.json").read_text())["concept"] == spec["concept"]


def test_operator_requests_are_allowed_by_the_charts_rbac(installed: Installed) -> None:
    namespaced = {(rt.group, rt.plural): rt.namespaced for rt in installed.api.server.cluster.registry.types()}
    requests = {
        req for method, path, query in list(installed.app.audit)
        if (req := rbac.request_from_http(method, path, query, namespaced)) is not None
    }
    assert requests, "the operator made no API request"
    denied = [str(r) for r in sorted(requests, key=str)
              if not rbac.allowed(installed.rendered.docs, RELEASE, NAMESPACE, r)]
    assert not denied, "the chart's RBAC refuses requests the operator made:\n" + "\n".join(denied)
    used = {(r.group, f"{r.resource}/{r.subresource}" if r.subresource else r.resource, r.verb) for r in requests}
    print(f"{installed.mode} mode, operator API use:", sorted(used))
    print(f"{installed.mode} mode, timings:", {k: round(v, 2) for k, v in installed.timings.items()})


def test_operator_stops_cleanly_on_sigterm(installed: Installed) -> None:
    # The kubelet's SIGTERM (Recreate strategy, rollout, uninstall); then the pod is started again, as
    # after a rollout, so the tests that run after this one (in random order) still have an operator.
    code = installed.pod.stop(grace=installed.rendered.deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"])
    log = installed.pod.log()
    installed.pod = installed.start()
    assert code == 0, log[-3000:]
