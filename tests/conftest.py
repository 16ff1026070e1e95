"""Shared test setup: loopback-only Ray, offline model hubs, the harness fixtures."""

import os
import sys
from pathlib import Path

# Before any test imports ray or huggingface_hub (both read these at import time).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "120")

ROOT = Path(__file__).resolve().parents[1]
# `operator/` cannot be a package (stdlib name): its package lives one level down.
sys.path.insert(0, str(ROOT / "operator"))

pytest_plugins = ["tests.harness.fixtures"]
