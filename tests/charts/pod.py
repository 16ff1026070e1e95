"""Run a rendered Deployment's container as a local process, the way a kubelet would start it.

The container's command, args and environment are taken as rendered; what a node provides
is emulated on this machine:

- volumes: configMap and secret volumes are read from the API server (as the kubelet reads
  them) and written as files, `items` honoured; emptyDir is an empty folder. Each mount path
  is a folder under `root`, and every argument or environment value that names a path under a
  mount path is rewritten to the folder (/etc/e2gan/defaults.yaml → ROOT/etc/e2gan/defaults.yaml);
- the pod network: each containerPort gets a free port on 127.0.0.1; `0.0.0.0:PORT` in an
  argument becomes `127.0.0.1:HOSTPORT`, and an environment value equal to a containerPort
  becomes the host port (nothing listens beyond loopback);
- `valueFrom`: fieldRef (metadata.name, metadata.namespace), secretKeyRef, configMapKeyRef;
- the service account: the API server is reached through KUBECONFIG (no token is mounted).
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.harness.ports import ReservedPort

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def get_object(kubectl: Kubectl, kind: str, name: str, namespace: str) -> dict[str, Any]:
    result = kubectl("get", kind, name, "-n", namespace, "-o", "json")
    assert result.returncode == 0, f"{kind} {namespace}/{name}: {result.stderr}"
    return json.loads(result.stdout)


@dataclass
class PodProcess:
    """The container running as a process, with its host-side view of volumes and ports."""

    process: subprocess.Popen[bytes]
    argv: list[str]
    env: dict[str, str]
    root: Path
    ports: dict[str, int]  # containerPort name → host port on 127.0.0.1
    log_path: Path
    pod_name: str
    container: dict[str, Any] = field(repr=False, default_factory=dict)
    # Held for the container's life, so no other process takes its ports (tests/harness/ports.py).
    reservations: list[ReservedPort] = field(repr=False, default_factory=list)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def probe(self, kind: str, timeout: float = 5.0) -> int:
        """Run the container's httpGet probe once; the HTTP status (0 when nothing answers)."""
        http = self.container[kind]["httpGet"]
        port = http["port"]
        host_port = self.ports[port] if isinstance(port, str) else self.ports[self._port_name(port)]
        url = f"http://127.0.0.1:{host_port}{http.get('path', '/')}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return 0

    def _port_name(self, number: int) -> str:
        return next(p["name"] for p in self.container["ports"] if p["containerPort"] == number)

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Seconds until the readiness probe answers 200; fails with the log when the process dies."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.process.poll() is not None:
                raise AssertionError(f"the operator exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            if self.probe("readinessProbe", timeout=2) == 200:
                return time.monotonic() - start
            time.sleep(0.2)
        raise AssertionError(f"readiness probe not 200 after {timeout}s:\n{self.log()[-4000:]}")

    def stop(self, grace: float = 30.0) -> int:
        """SIGTERM, then SIGKILL after the grace period, as the kubelet does; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        for reservation in self.reservations:
            reservation.release()
        return int(self.process.returncode)


def _write_items(folder: Path, data: dict[str, bytes], items: list[dict[str, Any]] | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    selected = {i["key"]: i["path"] for i in items} if items else {k: k for k in data}
    for key, path in selected.items():
        assert key in data, f"volume item {key!r} is missing from its source (keys: {sorted(data)})"
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data[key])


def start_pod(
    deployment: dict[str, Any],
    kubectl: Kubectl,
    workdir: Path,
    *,
    kubeconfig: Path,
    extra_env: dict[str, str] | None = None,
) -> PodProcess:
    """Start the Deployment's only container with its rendered command, args and environment."""
    namespace = deployment["metadata"]["namespace"]
    pod_spec = deployment["spec"]["template"]["spec"]
    (container,) = pod_spec["containers"]
    pod_name = f"{deployment['metadata']['name']}-{os.getpid():x}-local"
    root = workdir / "root"
    volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}

    # Volumes, as the kubelet lays them out.
    mounts: dict[str, Path] = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        host = root / mount["mountPath"].lstrip("/")
        if "configMap" in volume:
            cm = get_object(kubectl, "configmap", volume["configMap"]["name"], namespace)
            data = {k: v.encode() for k, v in (cm.get("data") or {}).items()}
            _write_items(host, data, volume["configMap"].get("items"))
        elif "secret" in volume:
            secret = get_object(kubectl, "secret", volume["secret"]["secretName"], namespace)
            data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
            _write_items(host, data, volume["secret"].get("items"))
        elif "emptyDir" in volume:
            host.mkdir(parents=True, exist_ok=True)
        else:
            raise AssertionError(f"volume {volume['name']}: unsupported source {sorted(volume)}")
        mounts[mount["mountPath"]] = host

    def remap_path(value: str) -> str:
        for mount_path in sorted(mounts, key=len, reverse=True):
            if value == mount_path or value.startswith(mount_path.rstrip("/") + "/"):
                return str(mounts[mount_path]) + value[len(mount_path.rstrip("/")):]
        return value

    # The pod network, on loopback.
    reservations = {p["name"]: ReservedPort() for p in container.get("ports", [])}
    ports = {name: reservation.port for name, reservation in reservations.items()}
    by_number = {str(p["containerPort"]): ports[p["name"]] for p in container.get("ports", [])}

    def remap_arg(arg: str) -> str:
        for number, host_port in by_number.items():
            arg = arg.replace(f"0.0.0.0:{number}", f"127.0.0.1:{host_port}")
        flag, eq, value = arg.partition("=")
        return f"{flag}={remap_path(value)}" if eq else remap_path(arg)

    env: dict[str, str] = {}
    for var in container.get("env", []):
        if "value" in var:
            value = str(var["value"])
            env[var["name"]] = str(by_number[value]) if value in by_number else remap_path(value)
            continue
        source = var["valueFrom"]
        if "fieldRef" in source:
            env[var["name"]] = {"metadata.name": pod_name, "metadata.namespace": namespace}[
                source["fieldRef"]["fieldPath"]
            ]
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            secret = get_object(kubectl, "secret", ref["name"], namespace)
            env[var["name"]] = base64.b64decode(secret["data"][ref["key"]]).decode()
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            env[var["name"]] = get_object(kubectl, "configmap", ref["name"], namespace)["data"][ref["key"]]
        else:
            raise AssertionError(f"env {var['name']}: unsupported valueFrom {sorted(source)}")

    # What the node adds: PATH of the image (here the virtual environment), the API server.
    env.update(
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        KUBECONFIG=str(kubeconfig),
        HOME=str(workdir / "home"),
        LANG="C.UTF-8",
        **(extra_env or {}),
    )
    (workdir / "home").mkdir(exist_ok=True)
    argv = [*container.get("command", []), *(remap_arg(a) for a in container.get("args", []))]
    assert argv, "the container has neither command nor args"
    log_path = workdir / "container.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    return PodProcess(process, argv, env, root, ports, log_path, pod_name, container, list(reservations.values()))
