"""Run the operator as users run it, `kopf run -m e2gan_operator.main`, in its own process.

Used by the end-to-end tests and by bench/operator.py. The process gets a kubeconfig for the
emulated API server, loopback-only liveness and metrics ports, and a log file.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.harness.ports import ReservedPort

REPO = Path(__file__).resolve().parents[2]


@dataclass
class OperatorProcess:
    process: subprocess.Popen[bytes]
    log_path: Path
    liveness_port: int
    metrics_port: int
    # Held for the process's life, so no other process takes its ports (tests/harness/ports.py).
    reservations: tuple[ReservedPort, ...] = ()

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def _get(self, port: int, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def healthz(self) -> tuple[int, str]:
        return self._get(self.liveness_port, "/healthz")

    def metrics(self) -> str:
        return self._get(self.metrics_port, "/metrics")[1]

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of one metric whose labels include `labels`."""
        total = 0.0
        for line in self.metrics().splitlines():
            match = re.match(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
            if not match:
                continue
            have = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
            if all(have.get(k) == v for k, v in labels.items()):
                total += float(match.group(2))
        return total

    def wait_ready(self, timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not self.alive():
                raise RuntimeError(f"operator exited with {self.process.returncode}:\n{self.log()[-4000:]}")
            try:
                if self.healthz()[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"operator not live within {timeout} s:\n{self.log()[-4000:]}")

    def rss_mb(self) -> float:
        """Peak resident memory (VmHWM) of the operator process, in MB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM in /proc status")

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM (graceful shutdown), then SIGKILL if it hangs; returns the exit code."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._release()
        return self.process.returncode

    def kill(self) -> None:
        if self.alive():
            self.process.kill()
            self.process.wait()
        self._release()

    def _release(self) -> None:
        for reservation in self.reservations:
            reservation.release()


def start_operator(
    kubeconfig: Path,
    namespaces: list[str],
    log_path: Path,
    env: dict[str, str] | None = None,
    wait: bool = True,
) -> OperatorProcess:
    reservations = (ReservedPort(), ReservedPort())
    liveness, metrics = (r.port for r in reservations)
    path = os.pathsep.join([str(REPO / "operator"), str(REPO), os.environ.get("PYTHONPATH", "")])
    full_env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "PYTHONPATH": path,
        "E2GAN_METRICS_PORT": str(metrics),
        "E2GAN_METRICS_HOST": "127.0.0.1",
        "E2GAN_DEFAULTS_FILE": str(log_path.parent / "no-defaults.yaml"),
        "E2GAN_LOG_FORMAT": "json",
        **(env or {}),
    }
    args = [sys.executable, "-m", "kopf", "run", "-m", "e2gan_operator.main",
            f"--liveness=http://127.0.0.1:{liveness}/healthz"]
    args += [f"--namespace={ns}" for ns in namespaces] if namespaces else ["--all-namespaces"]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(args, env=full_env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    handle = OperatorProcess(process, log_path, liveness, metrics, reservations)
    if wait:
        handle.wait_ready()
    return handle
