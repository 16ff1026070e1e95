"""kopf operators against the emulated API server: in-process (KopfRunner) and as a
`kopf run` subprocess against the server running as its own process."""

from __future__ import annotations

import importlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

import kopf
import pytest
from kopf.testing import KopfRunner
from kubernetes import client, config
from kubernetes.client.rest import ApiException

if TYPE_CHECKING:
    from tests.harness.fixtures import KubeApi, KubeApiProcess

pytest_plugins = ["tests.harness.fixtures"]

GROUP, VERSION, PLURAL = "harness.e2gan.dev", "v1", "widgets"


def widget(name: str) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Widget", "metadata": {"name": name},
            "spec": {"concept": "sketch"}}


def wait_for(predicate: Any, timeout: float = 15.0, interval: float = 0.005) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def phase(custom: client.CustomObjectsApi, namespace: str, name: str) -> str | None:
    obj = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    return (obj.get("status") or {}).get("phase")


def gone(custom: client.CustomObjectsApi, namespace: str, name: str) -> bool:
    try:
        custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    except ApiException as error:
        return error.status == 404
    return False


@pytest.fixture
def sample_operator() -> Iterator[tuple[ModuleType, kopf.OperatorRegistry]]:
    """The sample operator's handlers in a registry of their own, so no other test's
    KopfRunner picks them up from kopf's global default registry."""
    previous = kopf.get_default_registry()
    registry = kopf.OperatorRegistry()
    kopf.set_default_registry(registry)
    sys.modules.pop("tests.harness.sample_operator", None)
    try:
        module = importlib.import_module("tests.harness.sample_operator")
        yield module, registry
    finally:
        kopf.set_default_registry(previous)
        sys.modules.pop("tests.harness.sample_operator", None)


def test_kopf_create_and_delete_handlers_run(kube_api: KubeApi, widget_crd: dict[str, Any], kube_namespace: str,
                                             sample_operator: tuple[ModuleType, kopf.OperatorRegistry],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    module, registry = sample_operator
    monkeypatch.setenv("KUBECONFIG", str(kube_api.kubeconfig))
    api = kube_api.client()
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    args = ["run", "--standalone", "--namespace", kube_namespace]
    with KopfRunner(args, registry=registry, timeout=60) as runner:
        custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, widget("warm-up"))
        wait_for(lambda: phase(custom, kube_namespace, "warm-up") == "Ready")

        latencies = []
        for n in range(5):
            started = time.perf_counter()
            custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, widget(f"w{n}"))
            wait_for(lambda n=n: phase(custom, kube_namespace, f"w{n}") == "Ready")
            latencies.append(time.perf_counter() - started)
        obj = custom.get_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "w0")
        assert obj["metadata"]["finalizers"] == ["kopf.zalando.org/KopfFinalizerMarker"]
        assert obj["status"]["created"] == {"concept": "sketch"}  # the handler's result
        assert obj["status"]["conditions"] == [{"type": "Ready", "status": "True", "reason": "Created"}]

        custom.delete_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "w0")
        wait_for(lambda: gone(custom, kube_namespace, "w0"))
        events = wait_for(lambda: [e for e in core.list_namespaced_event(kube_namespace).items
                                   if e.reason == "WidgetDeleted"])
        assert events[0].involved_object.name == "w0"
    assert runner.exception is None and runner.exit_code == 0, runner.output
    assert module.DELETED == ["w0"]
    median = statistics.median(latencies)
    print(f"kopf create -> status patched: median {median * 1000:.1f} ms over {len(latencies)}")
    assert median < 1.0, latencies


def test_kopf_run_subprocess_against_server_process(kube_api_process: KubeApiProcess, tmp_path: Any) -> None:
    from tests.harness.fixtures import REPO_ROOT, WIDGET_CRD

    api = config.new_client_from_config(config_file=str(kube_api_process.kubeconfig))
    client.ApiextensionsV1Api(api).create_custom_resource_definition(WIDGET_CRD)
    custom = client.CustomObjectsApi(api)
    env = {**os.environ, "KUBECONFIG": str(kube_api_process.kubeconfig), "PYTHONPATH": str(REPO_ROOT)}
    log = (tmp_path / "kopf.log").open("w")
    operator = subprocess.Popen(
        [sys.executable, "-m", "kopf", "run", "--standalone", "--namespace", "default",
         "-m", "tests.harness.sample_operator"],
        cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, widget("remote"))
        wait_for(lambda: phase(custom, "default", "remote") == "Ready", timeout=30, interval=0.05)
        custom.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "remote")
        wait_for(lambda: gone(custom, "default", "remote"), interval=0.05)
    finally:
        operator.terminate()
        operator.wait(timeout=20)
        log.close()
    output = (tmp_path / "kopf.log").read_text()
    assert "Handler 'created' succeeded" in output and "Handler 'deleted' succeeded" in output, output
