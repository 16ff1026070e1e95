"""Shared test setup: loopback-only Ray, offline model hubs, the harness fixtures."""

import os
import sys
from pathlib import Path
from typing import Any

# Before any test imports ray or huggingface_hub (both read these at import time).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "120")

ROOT = Path(__file__).resolve().parents[1]
# `operator/` cannot be a package (stdlib name): its package lives one level down.
sys.path.insert(0, str(ROOT / "operator"))

pytest_plugins = ["tests.harness.fixtures"]

KUBERAY_CRDS = ROOT.parent / "shared" / "kuberay"


RAYJOB_CRD = KUBERAY_CRDS / "ray.io_rayjobs.yaml"
NO_KUBERAY = (f"KubeRay's real RayJob CRD was NOT applied ({RAYJOB_CRD} is absent): end-to-end tests used a "
              "permissive stand-in CRD, and the checks against KubeRay's schema were skipped")


def pytest_report_header(config: object) -> str:
    """Say once which RayJob CRD the end-to-end tests apply: KubeRay's, or the permissive stand-in."""
    return f"KubeRay's real RayJob CRD: {RAYJOB_CRD}" if RAYJOB_CRD.is_file() else NO_KUBERAY


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: object) -> None:
    if not RAYJOB_CRD.is_file():  # also under -q, where the header is not shown
        terminalreporter.write_line(NO_KUBERAY, yellow=True)
