"""The operator as deployed (`kopf run -m e2gan_operator.main`), end to end against the emulated API
server, with the KubeRay stand-in running each RayJob's entrypoint. Here `e2gan` on the PATH is the
fast fake trainer (tests/operator/fake_trainer.py); test_user_path.py runs the real one."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from catalog import Catalog, open_catalog
from e2gan_operator.rayjob import decode_spec
from e2gan_operator.reasons import Reason
from tests.harness.kube_api import write_kubeconfig
from tests.harness.kuberay_standin import KubeRayStandIn
from tests.operator.process import REPO, OperatorProcess, start_operator

if TYPE_CHECKING:
    from tests.harness.fixtures import KubeApi

pytest_plugins = ["tests.harness.fixtures"]

EXAMPLES = REPO / "examples" / "concepts"
# Catalog reads never leave loopback, even for a spec naming an s3:// catalog.
OWNERSHIP = hasattr(Catalog, "series_owner")  # the catalog records owners (issue 13)
SAFE_S3 = {"E2GAN_S3_ENDPOINT": "127.0.0.1:9", "E2GAN_S3_SECURE": "false", "E2GAN_S3_RETRIES": "0"}


def local_catalogs(env: Env) -> dict[str, str]:
    """The tests' catalogs are folders under the test's temporary folder: the only local ones allowed."""
    return {"E2GAN_LOCAL_CATALOG_ROOTS": str(env.tmp)}


def wait_for(check: Callable[[], Any], timeout: float = 60, every: float = 0.1, what: str = "") -> Any:
    end = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < end:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what or check}: last {last!r}")


class Env:
    def __init__(self, api: KubeApi, ns: str, tmp: Path) -> None:
        self.api, self.ns, self.tmp = api, ns, tmp
        self.operator_user = ""  # the module operator's ServiceAccount, as the API server names it

    def get(self, plural: str, name: str, group: str = "e2gan.dev/v1alpha1") -> dict[str, Any] | None:
        status, _, body = self.api.request("GET", f"/apis/{group}/namespaces/{self.ns}/{plural}/{name}")
        return body if status == 200 else None

    def rayjobs(self, owner: str | None = None) -> list[dict[str, Any]]:
        _, _, body = self.api.request("GET", f"/apis/ray.io/v1/namespaces/{self.ns}/rayjobs")
        items = body["items"]
        return [j for j in items if owner is None or j["metadata"]["labels"].get("e2gan.dev/owner") == owner]

    def events(self, name: str) -> list[dict[str, Any]]:
        _, _, body = self.api.request("GET", f"/api/v1/namespaces/{self.ns}/events")
        return [e for e in body["items"] if e["involvedObject"]["name"] == name]

    def manifest(self, source: Path | dict[str, Any], **spec: Any) -> Path:
        doc = yaml.safe_load(source.read_text()) if isinstance(source, Path) else source
        doc["spec"].update(spec)
        path = self.tmp / f"{doc['metadata']['name']}-{time.monotonic_ns()}.yaml"
        path.write_text(yaml.safe_dump(doc))
        return path

    def kubectl(self, *args: str) -> Any:
        return self.api.kubectl("-n", self.ns, *args)

    def phase(self, name: str) -> str | None:
        obj = self.get("conceptadapters", name)
        return ((obj or {}).get("status") or {}).get("phase")


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == kind)


@pytest.fixture(scope="module")
def env(e2gan_crds: KubeApi, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    ns = f"e2e-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    # Pod Security "restricted", as on a production cluster: KubeRay's pods (the stand-in creates
    # them from the RayJob) are refused if the operator's pod templates break it.
    labels = {"pod-security.kubernetes.io/enforce": "restricted"}
    assert e2gan_crds.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns, "labels": labels}})[0] == 201
    yield Env(e2gan_crds, ns, tmp_path_factory.mktemp("e2e"))
    e2gan_crds.request("DELETE", f"/api/v1/namespaces/{ns}")


@pytest.fixture(scope="module")
def kuberay(env: Env) -> Iterator[KubeRayStandIn]:
    shim = env.tmp / "bin"
    shim.mkdir()
    (shim / "e2gan").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m tests.operator.fake_trainer "$@"\n')
    (shim / "e2gan").chmod(0o755)
    # Each stage lasts longer than the operator's poll (0.3 s), so the status passes through them.
    extra = {"PATH": f"{shim}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(REPO),
             "FAKE_TRAINER_STEP_SECONDS": "0.4", **SAFE_S3}
    with KubeRayStandIn(env.api.kubeconfig, env.ns, env=extra) as standin:
        yield standin


def chart_service_account(env: Env) -> Path:
    """The chart's RBAC for an operator watching env.ns, applied to the API server, and a kubeconfig
    holding that ServiceAccount's token: the emulator authorizes each of the operator's requests
    against the chart's Roles, so a permission the chart lacks fails here as on a cluster."""
    from tests.charts.rendering import render

    rendered = render({"watch": {"mode": "namespaced", "namespaces": [env.ns]}}, name=f"op-{env.ns}", namespace=env.ns)
    rbac = [d for d in rendered.docs if d["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding",
                                                       "Role", "RoleBinding")]
    applied = env.api.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(rbac))
    assert applied.returncode == 0, applied.stderr
    account = rendered.one("ServiceAccount")["metadata"]["name"]
    env.operator_user = f"system:serviceaccount:{env.ns}:{account}"
    token = env.api.server.service_account_token(env.ns, account)
    return write_kubeconfig(env.tmp / "operator-kubeconfig", env.api.url, token, env.ns)


@pytest.fixture(scope="module")
def operator(env: Env, kuberay: KubeRayStandIn) -> Iterator[OperatorProcess]:
    op = start_operator(chart_service_account(env), [env.ns], env.tmp / "operator.log",
                        env={"E2GAN_POLL_SECONDS": "0.3", **SAFE_S3, **local_catalogs(env)})
    yield op
    op.stop()


def test_apply_trains_publishes_and_delete_honours_the_policy(env: Env, operator: OperatorProcess) -> None:
    created_before = operator.metric("e2gan_operator_rayjobs_created_total", kind="ConceptAdapter")
    catalog_dir = env.tmp / "catalog"
    result = env.kubectl("apply", "-f", str(env.manifest(EXAMPLES / "tiny.yaml", catalog={"uri": str(catalog_dir)})))
    assert result.returncode == 0, result.stderr
    wait_for(lambda: env.phase("tiny-sketch") == "Ready", what="tiny-sketch Ready")
    obj = env.get("conceptadapters", "tiny-sketch")
    assert obj is not None
    st = obj["status"]
    assert st["published"]["version"] == "v1" and st["fidelity"].endswith("dB") and st["trials"] == "1/1"
    assert condition(obj, "Ready")["status"] == "True" and st["observedGeneration"] == obj["metadata"]["generation"]
    assert obj["metadata"]["finalizers"] == ["e2gan.dev/finalizer"]
    annotations = obj["metadata"]["annotations"]
    assert "kopf.e2gan.dev/last-handled-configuration" in annotations  # kopf's own prefix, not the users'
    assert not [k for k in annotations if k.startswith("e2gan.dev/")]
    assert [e.concept for e in open_catalog(catalog_dir).index()] == ["pencil-sketch"]

    table = env.kubectl("get", "conceptadapters", "tiny-sketch")  # by name: other tests share the namespace
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()[:2]
    assert header.split() == ["NAME", "PHASE", "CONCEPT", "RANKS", "FIDELITY", "TRIALS", "VERSION", "AGE"]
    assert row.split()[:2] == ["tiny-sketch", "Ready"] and " v1 " in row and "dB" in row
    assert env.kubectl("get", "e2gan").returncode == 0  # the category
    wide = env.kubectl("get", "cad", "-o", "wide")  # a short name; the wide columns include the message
    assert wide.returncode == 0 and "published pencil-sketch v1" in wide.stdout, wide.stdout + wide.stderr

    reasons = {e["reason"] for e in env.events("tiny-sketch")}
    assert {"RayJobCreated", "StageChanged", "Published"} <= reasons <= {r.value for r in Reason}

    # Re-applying the unchanged manifest retrains nothing ("unchanged": kubectl sent no change at all).
    again = env.kubectl("apply", "-f", str(env.manifest(EXAMPLES / "tiny.yaml", catalog={"uri": str(catalog_dir)})))
    assert again.returncode == 0 and "unchanged" in again.stdout, again.stdout + again.stderr
    # A change that does not train (catalog.keepVersions) is reconciled, and still one RayJob.
    updates = operator.metric("e2gan_operator_reconciles_total", kind="ConceptAdapter", trigger="update")
    assert env.kubectl("patch", "conceptadapter", "tiny-sketch", "--type=merge", "-p",
                       '{"spec":{"catalog":{"keepVersions":4}}}').returncode == 0
    wait_for(lambda: operator.metric("e2gan_operator_reconciles_total", kind="ConceptAdapter", trigger="update")
             > updates, what="the update reconciled")
    assert len(env.rayjobs("tiny-sketch")) == 1 and env.phase("tiny-sketch") == "Ready"
    assert operator.metric("e2gan_operator_rayjobs_created_total", kind="ConceptAdapter") - created_before == 1

    deleted = env.kubectl("delete", "conceptadapter", "tiny-sketch", "--wait=true", "--timeout=60s")
    assert deleted.returncode == 0, deleted.stderr
    assert env.get("conceptadapters", "tiny-sketch") is None
    if OWNERSHIP:  # deletionPolicy: Delete removes what the catalog records as this resource's
        assert open_catalog(catalog_dir).index() == []
    assert wait_for(lambda: env.rayjobs("tiny-sketch") == [], what="owned RayJob gone") is True


def test_the_operator_works_within_the_charts_rbac_and_pod_security(
    env: Env, operator: OperatorProcess, kuberay: KubeRayStandIn
) -> None:
    # A resource of its own, so that this test sees a whole reconcile whatever ran before it.
    catalog = {"uri": str(env.tmp / "rbac-catalog")}
    doc = yaml.safe_load((EXAMPLES / "tiny.yaml").read_text())
    doc["metadata"]["name"] = "within-rbac"
    doc["spec"]["concept"] = "rbac-sketch"
    assert env.kubectl("apply", "-f", str(env.manifest(doc, catalog=catalog))).returncode == 0
    wait_for(lambda: env.phase("within-rbac") == "Ready", what="within-rbac Ready")
    app = env.api.server.api
    account = env.operator_user
    assert app.authorized[account] > 0, dict(app.authorized)  # the operator really spoke as its ServiceAccount
    assert [d for d in app.denied if d.startswith(account + ":")] == []
    assert kuberay.refusals == []  # every Ray pod met Pod Security "restricted"
    assert env.kubectl("delete", "conceptadapter", "within-rbac", "--timeout=60s").returncode == 0


def test_failure_in_the_job_reaches_the_status(env: Env, operator: OperatorProcess) -> None:
    manifest = env.manifest(EXAMPLES / "tiny.yaml", prompt="please FAIL", catalog={"uri": str(env.tmp / "cat2")})
    doc = yaml.safe_load(manifest.read_text())
    doc["metadata"]["name"] = "doomed"
    manifest.write_text(yaml.safe_dump(doc))
    assert env.kubectl("apply", "-f", str(manifest)).returncode == 0
    wait_for(lambda: env.phase("doomed") == "Failed", what="doomed Failed")
    obj = env.get("conceptadapters", "doomed")
    assert obj is not None
    stalled = condition(obj, "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "TrainingFailed"
    assert "asked this fake trainer to fail" in stalled["message"]
    assert "TrainingFailed" in {e["reason"] for e in env.events("doomed")}


BAD_MANIFESTS = {
    "wrong type": {"search": {"trials": "four"}},
    "huge number": {"training": {"steps": 10**15}},
    "unknown teacher": {"teacher": {"kind": "midjourney"}},
    "unknown field": {"teachr": {"kind": "sdedit"}},
    "hostile URI": {"catalog": {"uri": "$(curl evil)"}},
    "shell metacharacters in a path": {"catalog": {"uri": "a;reboot"}},
    "short bucket": {"catalog": {"uri": "s3://A"}},
    "parallel > trials": {"search": {"trials": 1, "parallelTrials": 4}},
    "dot segments": {"catalog": {"uri": "s3://bucket/../.."}},
    "zero memory": {"resources": {"memoryPerWorker": "0"}},
    "huge memory": {"resources": {"memoryPerWorker": "99999999999999T"}},
}


@pytest.mark.parametrize("label", list(BAD_MANIFESTS))
def test_malformed_resources_are_refused_at_admission(env: Env, label: str) -> None:
    doc = {"apiVersion": "e2gan.dev/v1alpha1", "kind": "ConceptAdapter", "metadata": {"name": "bad"},
           "spec": {"concept": "x", "prompt": "p", **BAD_MANIFESTS[label]}}
    result = env.kubectl("apply", "-f", str(env.manifest(doc)))
    assert result.returncode != 0, f"{label}: admitted"
    assert "spec." in result.stderr or "unknown field" in result.stderr, result.stderr
    assert env.get("conceptadapters", "bad") is None


def test_bad_names_are_refused(env: Env) -> None:
    doc = {"apiVersion": "e2gan.dev/v1alpha1", "kind": "ConceptAdapter", "metadata": {"name": "a." + "b" * 60},
           "spec": {"concept": "x", "prompt": "p"}}
    result = env.kubectl("apply", "-f", str(env.manifest(doc)))
    assert result.returncode != 0 and "DNS-1123 label" in result.stderr, result.stderr


def test_untrainable_resources_stall_with_a_message_and_the_operator_does_not_spin(
    env: Env, operator: OperatorProcess
) -> None:
    cases = {
        "relative-catalog": ({"catalog": {"uri": "./catalog"}}, "InvalidSpec", "catalog.uri"),
        "etc-catalog": ({"catalog": {"uri": "file:///etc"}}, "InvalidSpec", "catalog.uri"),
        "no-catalog": ({}, "InvalidSpec", "no default catalog"),
        "no-base": ({"base": {"name": "missing-base"}, "catalog": {"uri": str(env.tmp / "cat-nb")}}, "BaseNotFound",
                    "ConceptBase 'missing-base'"),
    }
    for name, (spec, _, _) in cases.items():
        doc = {"apiVersion": "e2gan.dev/v1alpha1", "kind": "ConceptAdapter", "metadata": {"name": name},
               "spec": {"concept": "x", "prompt": "p", **spec}}
        assert env.kubectl("apply", "-f", str(env.manifest(doc))).returncode == 0
    for name, (_, reason, text) in cases.items():
        wait_for(lambda n=name: env.phase(n) == "Failed", what=f"{name} stalled")
        obj = env.get("conceptadapters", name)
        assert obj is not None
        stalled = condition(obj, "Stalled")
        assert (stalled["status"], stalled["reason"]) == ("True", reason) and text in stalled["message"]
        assert env.rayjobs(name) == []
    polls = operator.metric("e2gan_operator_reconciles_total", kind="ConceptAdapter", trigger="poll")
    # Nothing of these is polled (a missing base is heard of when it is created). A positive signal
    # first: a later resource has been processed, so the operator was busy meanwhile.
    marker = {"apiVersion": "e2gan.dev/v1alpha1", "kind": "ConceptAdapter", "metadata": {"name": "marker"},
              "spec": {"concept": "x", "prompt": "p", "catalog": {"uri": "./later"}}}
    assert env.kubectl("apply", "-f", str(env.manifest(marker))).returncode == 0
    wait_for(lambda: env.phase("marker") == "Failed", what="marker processed")
    assert operator.metric("e2gan_operator_reconciles_total", kind="ConceptAdapter", trigger="poll") == polls
    assert operator.alive() and operator.healthz()[0] == 200
    for name in [*cases, "marker"]:
        assert env.kubectl("delete", "conceptadapter", name, "--timeout=30s").returncode == 0


def test_killed_mid_reconcile_converges_with_one_rayjob(env: Env, kuberay: KubeRayStandIn) -> None:
    ns = f"{env.ns}-kill"
    assert env.api.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})[0] == 201
    other = Env(env.api, ns, env.tmp)
    shim_env = dict(kuberay.env)
    try:
        with KubeRayStandIn(env.api.kubeconfig, ns, env=shim_env):
            dying = start_operator(env.api.kubeconfig, [ns], env.tmp / "dying.log",
                                   env={"E2GAN_FAILPOINT": "after-rayjob-create", **SAFE_S3, **local_catalogs(env)})
            manifest = other.manifest(EXAMPLES / "tiny.yaml", catalog={"uri": str(env.tmp / "cat-kill")})
            assert other.kubectl("apply", "-f", str(manifest)).returncode == 0
            assert wait_for(lambda: dying.process.poll() is not None, what="failpoint exit") is True
            assert dying.process.returncode == 3 and len(other.rayjobs()) == 1
            status = (other.get("conceptadapters", "tiny-sketch") or {}).get("status") or {}
            assert "rayJobName" not in status  # it died before writing the status

            restarted = start_operator(env.api.kubeconfig, [ns], env.tmp / "restarted.log",
                                       env={"E2GAN_POLL_SECONDS": "0.3", **SAFE_S3, **local_catalogs(env)})
            try:
                wait_for(lambda: other.phase("tiny-sketch") == "Ready", what="Ready after restart")
                assert len(other.rayjobs()) == 1
                assert restarted.metric("e2gan_operator_rayjobs_adopted_total") == 1
                assert restarted.metric("e2gan_operator_rayjobs_created_total") == 0
            finally:
                restarted.stop()
    finally:
        env.api.request("DELETE", f"/api/v1/namespaces/{ns}")


def test_probes_metrics_logs_and_graceful_shutdown(env: Env, operator: OperatorProcess) -> None:
    code, body = operator.healthz()
    assert code == 200 and "reconciles" in body
    # One reconcile of this test's own, so the checks below do not depend on which tests ran first.
    doc = yaml.safe_load((EXAMPLES / "tiny.yaml").read_text())
    doc["metadata"]["name"] = "probe-sketch"
    doc["spec"]["suspend"] = True
    assert env.kubectl("apply", "-f", str(env.manifest(doc, catalog={"uri": str(env.tmp / "cat-probe")}))).returncode == 0
    try:
        wait_for(lambda: env.phase("probe-sketch") is not None, what="probe-sketch reconciled")
        text = operator.metrics()
        for name in ("e2gan_operator_reconciles_total", "e2gan_operator_reconcile_duration_seconds_bucket",
                     "e2gan_operator_resources", "process_resident_memory_bytes"):
            assert name in text
    finally:
        env.kubectl("delete", "conceptadapter", "probe-sketch", "--timeout=60s")
    lines = [json.loads(line) for line in operator.log().splitlines() if line.startswith("{")]
    assert any(r.get("name") and r.get("namespace") == env.ns for r in lines)
    spare = start_operator(env.api.kubeconfig, [f"{env.ns}-idle"], env.tmp / "spare.log")
    started = time.monotonic()
    assert spare.stop() == 0 and time.monotonic() - started < 15
    assert "e2gan operator stopped" in spare.log()


def test_adapter_on_a_concept_base_trains_after_the_base_publishes(env: Env, operator: OperatorProcess) -> None:
    catalog = {"uri": str(env.tmp / "cat-base")}
    adapter = env.manifest(EXAMPLES / "blueprint-on-studio-base.yaml", catalog=catalog,
                           resources={"workers": 1, "gpusPerWorker": 0})
    assert env.kubectl("apply", "-f", str(adapter)).returncode == 0
    wait_for(lambda: env.phase("blueprint") == "Failed", what="blueprint waits: no base yet")
    base = env.manifest(EXAMPLES / "base.yaml", catalog=catalog)
    assert env.kubectl("apply", "-f", str(base)).returncode == 0
    wait_for(lambda: ((env.get("conceptbases", "studio-base") or {}).get("status") or {}).get("phase") == "Ready",
             what="studio-base Ready")
    wait_for(lambda: env.phase("blueprint") == "Ready", what="blueprint Ready")
    published = env.get("conceptbases", "studio-base")["status"]["published"]  # type: ignore[index]
    (job,) = env.rayjobs("blueprint")
    assert decode_spec(job["spec"]["entrypoint"])["base"]["weights"] == published["uri"]
    table = env.kubectl("get", "conceptbases", "studio-base").stdout.splitlines()
    assert table[0].split()[:5] == ["NAME", "PHASE", "CONCEPTS", "FIDELITY", "VERSION"]
    assert table[1].split()[:3] == ["studio-base", "Ready", "5"]
    for kind, name in (("conceptadapter", "blueprint"), ("conceptbase", "studio-base")):
        assert env.kubectl("delete", kind, name, "--timeout=60s").returncode == 0


def test_a_corrupt_kopf_annotation_is_reset_with_an_event(env: Env, operator: OperatorProcess) -> None:
    doc = yaml.safe_load((EXAMPLES / "tiny.yaml").read_text())
    doc["metadata"] = {"name": "garbled", "annotations": {
        "kopf.e2gan.dev/last-handled-configuration": "{not json", "kopf.e2gan.dev/sketch-create": "[1,"}}
    doc["spec"]["catalog"] = {"uri": str(env.tmp / "cat-garbled")}
    assert env.kubectl("apply", "-f", str(env.manifest(doc))).returncode == 0
    wait_for(lambda: env.phase("garbled") == "Ready", what="garbled Ready")
    assert "AnnotationReset" in {e["reason"] for e in env.events("garbled")}
    obj = env.get("conceptadapters", "garbled")
    assert obj is not None
    json.loads(obj["metadata"]["annotations"]["kopf.e2gan.dev/last-handled-configuration"])  # rewritten
    assert env.kubectl("delete", "conceptadapter", "garbled", "--timeout=60s").returncode == 0


def test_catalog_uri_stays_immutable_across_removal(env: Env) -> None:
    doc = {"apiVersion": "e2gan.dev/v1alpha1", "kind": "ConceptAdapter", "metadata": {"name": "fixed-catalog"},
           "spec": {"concept": "x", "prompt": "p", "catalog": {"uri": "s3://team-a/catalog"}, "suspend": True}}
    path = f"/apis/e2gan.dev/v1alpha1/namespaces/{env.ns}/conceptadapters"
    assert env.api.request("POST", path, doc)[0] == 201
    merge = "application/merge-patch+json"
    removed = env.api.request("PATCH", f"{path}/fixed-catalog", {"spec": {"catalog": None}}, content_type=merge)
    assert removed[0] == 422 and "catalog.uri is immutable" in json.dumps(removed[2]), removed
    changed = env.api.request("PATCH", f"{path}/fixed-catalog", {"spec": {"catalog": {"uri": "s3://other-bucket/x"}}},
                              content_type=merge)
    assert changed[0] == 422, changed
    # Without a catalog at creation, one cannot be added later (the operator's default was used).
    bare = {**doc, "metadata": {"name": "default-catalog"}, "spec": {"concept": "x", "prompt": "p", "suspend": True}}
    assert env.api.request("POST", path, bare)[0] == 201
    added = env.api.request("PATCH", f"{path}/default-catalog", {"spec": {"catalog": {"uri": "s3://other-bucket/x"}}},
                            content_type=merge)
    assert added[0] == 422 and "catalog.uri is immutable" in json.dumps(added[2]), added
    kept = env.api.request("PATCH", f"{path}/default-catalog", {"spec": {"catalog": {"keepVersions": 3}}},
                           content_type=merge)
    assert kept[0] == 200, kept
    for name in ("fixed-catalog", "default-catalog"):
        assert env.kubectl("delete", "conceptadapter", name, "--timeout=30s").returncode == 0


def test_duplicate_base_concepts_are_refused_at_admission(env: Env) -> None:
    doc = {"apiVersion": "e2gan.dev/v1alpha1", "kind": "ConceptBase", "metadata": {"name": "dup"},
           "spec": {"concepts": [{"concept": "a", "prompt": "p"}, {"concept": "a", "prompt": "q"}]}}
    result = env.kubectl("apply", "-f", str(env.manifest(doc)))
    assert result.returncode != 0 and "each concept may appear only once" in result.stderr, result.stderr
