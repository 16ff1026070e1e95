"""examples/gitops: the adapter catalog as code, with its Argo CD and Flux snippets.

The adapters folder is built with the real kustomize (kubectl kustomize) and sent to the
emulated API server with the chart's CRDs (schema, defaults and CEL rules checked there);
the Argo CD and Flux objects point at paths that exist and carry Helm values the chart's
schema accepts; the Argo CD Lua health check (run in Lua by lupa) and the Flux health
expressions (run by the harness's CEL evaluator) map the statuses the operator writes to
the health they document.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2gan_api import ConceptAdapterSpec
from tests.charts.rendering import CHART_DIR, REPO_ROOT, load_chart, operator_module, render
from tests.harness.fixtures import KubeApi
from tests.harness.kube_api import cel

GITOPS = REPO_ROOT / "examples" / "gitops"
ADAPTERS = GITOPS / "adapters"
ADAPTERS_NAMESPACE = "e2gan-adapters"


def load_all(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def gitops_objects(kind: str) -> list[dict[str, Any]]:
    return [d for p in sorted(GITOPS.rglob("*.yaml")) for d in load_all(p) if d.get("kind") == kind]


def flux_kustomizations() -> dict[str, dict[str, Any]]:
    """Flux's Kustomizations by name (not kustomize's own kustomization.yaml)."""
    return {k["metadata"]["name"]: k for k in gitops_objects("Kustomization")
            if k.get("apiVersion", "").startswith("kustomize.toolkit.fluxcd.io/")}


def kustomize(kube: KubeApi) -> list[dict[str, Any]]:
    result = kube.kubectl("kustomize", str(ADAPTERS))
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


@pytest.fixture(scope="module")
def crds_applied(kube_api: KubeApi) -> KubeApi:
    result = kube_api.kubectl("apply", "-f", str(CHART_DIR / "crds"))
    assert result.returncode == 0, result.stderr
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ADAPTERS_NAMESPACE}}
    result = kube_api.kubectl("apply", "-f", "-", input=yaml.safe_dump(namespace))
    assert result.returncode == 0, result.stderr
    return kube_api


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((ADAPTERS / "kustomization.yaml").read_text())
    files = sorted(p.name for p in ADAPTERS.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(kustomization["resources"]) == files
    assert kustomization["namespace"] == ADAPTERS_NAMESPACE


def test_adapters_are_accepted_by_the_api_server(crds_applied: KubeApi) -> None:
    docs = kustomize(crds_applied)
    assert len(docs) >= 3 and {d["kind"] for d in docs} == {"ConceptAdapter"}
    concepts = [d["spec"]["concept"] for d in docs]
    assert len(set(concepts)) == len(concepts), "one ConceptAdapter per concept"
    for doc in docs:
        assert doc["metadata"]["namespace"] == ADAPTERS_NAMESPACE
        ConceptAdapterSpec.model_validate(doc["spec"])  # the trainer's own model accepts the spec too
    result = crds_applied.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(docs))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("created (server dry run)") == len(docs), result.stdout


def test_the_api_server_check_is_real(crds_applied: KubeApi) -> None:
    # Negative control: a CEL rule of the CRD (heldOut < pairs) refuses a broken adapter.
    broken = copy.deepcopy(kustomize(crds_applied)[0])
    broken["spec"]["data"]["heldOut"] = broken["spec"]["data"]["pairs"]
    result = crds_applied.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(broken))
    assert result.returncode != 0 and "heldOut" in result.stderr


def test_pruning_keeps_published_versions_by_default() -> None:
    for path in sorted(ADAPTERS.glob("*.yaml")):
        for doc in load_all(path):
            if doc["kind"] == "ConceptAdapter":
                assert doc["spec"].get("deletionPolicy") == "Retain", path.name


def test_argocd_and_flux_point_at_paths_that_exist() -> None:
    apps = {a["metadata"]["name"]: a for a in gitops_objects("Application")}
    assert set(apps) == {"e2gan-operator", "e2gan-adapters"}
    for app in apps.values():
        assert (REPO_ROOT / app["spec"]["source"]["path"]).is_dir(), app["spec"]["source"]["path"]
        assert app["spec"]["syncPolicy"]["automated"]["prune"] is True
    assert int(apps["e2gan-operator"]["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) < 0
    flux = flux_kustomizations()
    assert set(flux) == {"e2gan-operator", "e2gan-adapters"}
    for kustomization in flux.values():
        assert (REPO_ROOT / kustomization["spec"]["path"]).is_dir(), kustomization["spec"]["path"]
        assert kustomization["spec"]["prune"] is True
    assert flux["e2gan-adapters"]["spec"]["dependsOn"] == [{"name": "e2gan-operator"}]
    (release,) = gitops_objects("HelmRelease")
    assert (REPO_ROOT / release["spec"]["chart"]["spec"]["chart"]) == CHART_DIR
    assert release["spec"]["install"]["crds"] == release["spec"]["upgrade"]["crds"] == "CreateReplace"
    (source,) = gitops_objects("GitRepository")
    assert {k["spec"]["sourceRef"]["name"] for k in flux.values()} | {
        release["spec"]["chart"]["spec"]["sourceRef"]["name"]} == {source["metadata"]["name"]}


def test_gitops_helm_values_pass_the_charts_schema() -> None:
    (app,) = [a for a in gitops_objects("Application") if a["metadata"]["name"] == "e2gan-operator"]
    (release,) = gitops_objects("HelmRelease")
    for values in (app["spec"]["source"]["helm"]["valuesObject"], release["spec"]["values"]):
        load_chart().validate_schema(values)
        assert render(values).env["E2GAN_S3_ENDPOINT"] == values["catalog"]["endpoint"]


# ---------------------------------------------------------------------------------------- health


def operator_status(state: str, generation: int = 2) -> dict[str, Any]:
    """A ConceptAdapter as the operator leaves it in `state` (its own condition builder)."""
    conditions = operator_module("conditions")
    reasons = operator_module("reasons")
    reason, phase = {
        "ready": (reasons.Reason.PUBLISHED, "Ready"),
        "reconciling": (reasons.Reason.RUNNING, "Running"),
        "stalled": (reasons.Reason.TRAINING_FAILED, "Failed"),
        "suspended": (reasons.Reason.SUSPENDED, "Suspended"),
    }[state]
    outcome = conditions.Outcome(state, reason, f"{state} because of {reason.value}")
    return {
        "apiVersion": "e2gan.dev/v1alpha1", "kind": "ConceptAdapter",
        "metadata": {"name": "pencil-sketch", "namespace": ADAPTERS_NAMESPACE, "generation": generation},
        "spec": {"concept": "pencil-sketch", "prompt": "sketch"},
        "status": {"observedGeneration": generation, "phase": phase,
                   "conditions": conditions.conditions(outcome, generation, None)},
    }


HEALTH_CASES = [("ready", "Healthy", "Current"), ("reconciling", "Progressing", "InProgress"),
                ("stalled", "Degraded", "Failed"), ("suspended", "Suspended", "Current")]


@pytest.fixture(scope="module")
def argocd_health() -> Iterator[dict[str, Any]]:
    lupa = pytest.importorskip("lupa", reason="lupa (Lua for Python) is not installed")
    (cm,) = [c for c in gitops_objects("ConfigMap") if c["metadata"]["name"] == "argocd-cm"]
    prefix = "resource.customizations.health."
    scripts = {k.removeprefix(prefix): v for k, v in cm["data"].items() if k.startswith(prefix)}
    assert set(scripts) == {"e2gan.dev_ConceptAdapter", "e2gan.dev_ConceptBase"}

    def run(kind: str, obj: dict[str, Any]) -> tuple[str, str]:
        # Argo CD runs each script as a chunk with the resource bound to the global `obj`.
        lua = lupa.LuaRuntime(unpack_returned_tuples=True)
        lua.globals().obj = lua.table_from(obj, recursive=True)
        hs = lua.execute(scripts[f"e2gan.dev_{kind}"])
        return hs["status"], hs["message"]

    yield {"run": run}


@pytest.mark.parametrize(("state", "argocd", "flux"), HEALTH_CASES)
def test_argocd_health_follows_the_operators_status(argocd_health: dict[str, Any], state: str, argocd: str,
                                                    flux: str) -> None:
    obj = operator_status(state)
    for kind in ("ConceptAdapter", "ConceptBase"):
        status, message = argocd_health["run"](kind, {**obj, "kind": kind})
        assert status == argocd
        assert message


def test_argocd_health_waits_for_the_operator(argocd_health: dict[str, Any]) -> None:
    fresh = operator_status("ready")
    del fresh["status"]
    assert argocd_health["run"]("ConceptAdapter", fresh)[0] == "Progressing"
    # A Ready status computed for an older spec: the new one is not trained yet.
    stale = operator_status("ready", generation=2)
    stale["metadata"]["generation"] = 3
    assert argocd_health["run"]("ConceptAdapter", stale)[0] == "Progressing"


def flux_health(obj: dict[str, Any]) -> str:
    (exprs,) = flux_kustomizations()["e2gan-adapters"]["spec"]["healthCheckExprs"]
    assert (exprs["apiVersion"], exprs["kind"]) == ("e2gan.dev/v1alpha1", "ConceptAdapter")
    env = {k: obj[k] for k in ("metadata", "spec", "status")}
    # Flux evaluates inProgress, then failed, then current; none true means in progress. An
    # evaluation error (a missing field read without has()) fails the test.
    for key, verdict in (("inProgress", "InProgress"), ("failed", "Failed"), ("current", "Current")):
        if cel.evaluate(cel.compile_rule(exprs[key]), env) is True:
            return verdict
    return "InProgress"


@pytest.mark.parametrize(("state", "argocd", "flux"), HEALTH_CASES)
def test_flux_health_exprs_follow_the_operators_status(state: str, argocd: str, flux: str) -> None:
    assert flux_health(operator_status(state)) == flux


@pytest.mark.parametrize("status", [{}, {"phase": "Pending"}, {"observedGeneration": 2}],
                         ids=["empty", "phase only", "no conditions"])
def test_flux_health_guards_a_missing_status(status: dict[str, Any]) -> None:
    obj = operator_status("ready")
    obj["status"] = status
    assert flux_health(obj) == "InProgress"


def test_flux_health_waits_for_the_latest_generation() -> None:
    for state in ("ready", "stalled"):
        stale = operator_status(state, generation=2)
        stale["metadata"]["generation"] = 3
        assert flux_health(stale) == "InProgress", state


def test_flux_builds_the_chart_from_every_revision() -> None:
    (release,) = gitops_objects("HelmRelease")
    assert release["spec"]["chart"]["spec"]["reconcileStrategy"] == "Revision"
