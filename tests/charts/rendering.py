"""Render the e2gan-operator chart with Helm's own engine (helm-python-sdk, offline) for the tests."""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import helm_python as helm
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "e2gan-operator"
RELEASE = "e2gan-operator"
NAMESPACE = "e2gan-system"

# The modes and optional features every structural test renders.
MODES: dict[str, dict[str, Any]] = {
    "cluster": {},
    "namespaced": {"watch": {"mode": "namespaced", "namespaces": ["team-a", "team-b"]}},
    "standalone": {"peering": {"enabled": False}},
    "everything": {
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
        "networkPolicy": {
            "enabled": True,
            "metricsFrom": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}],
            "catalog": {"to": [{"namespaceSelector": {"matchLabels": {"name": "minio"}}}], "ports": [9000]},
        },
        "catalog": {"secure": True, "caBundle": {"configMapName": "corp-ca", "key": "ca.crt"},
                    "defaultUri": "s3://adapters/team"},
        "image": {"digest": "sha256:" + "a" * 64},
        "ray": {
            "worker": {
                "nodeSelector": {"pool": "gpu"},
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            },
            "shmSizeLimit": "16Gi",
            "env": [{"name": "HF_HUB_OFFLINE", "value": "1"},
                    {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}}],
            "volumes": [{"name": "teachers", "mountPath": "/models",
                         "persistentVolumeClaim": {"claimName": "teacher-weights", "readOnly": True}}],
            "profiles": {"sdxl": {"volumes": [{"name": "sdxl", "mountPath": "/models/sdxl",
                                               "image": {"reference": "registry.example.com/sdxl:1"}}],
                                  "worker": {"nodeSelector": {"gpu": "a100"}}}},
            "submitter": {"image": "registry.example.com/ray:2.60.0-py311-cpu",
                          "tolerations": [{"key": "system", "operator": "Exists", "effect": "NoSchedule"}]},
            "networkPolicy": {"namespaces": ["team-a"],
                              "metricsFrom": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]},
            "job": {"preRunningDeadlineSeconds": 1800},
        },
        "operator": {"extraArgs": ["--verbose"], "extraEnv": [{"name": "E2GAN_POLL_SECONDS", "value": "5"}]},
    },
    "local-catalog-only": {"catalog": {"endpoint": ""}, "rbac": {"aggregatedRoles": False}},
}


def operator_module(name: str) -> ModuleType:
    """`e2gan_operator.<name>`, from the installed package or else from its source folder
    (pyproject.toml maps the package to operator/e2gan_operator)."""
    try:
        return importlib.import_module(f"e2gan_operator.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != "e2gan_operator":
            raise
    sys.path.insert(0, str(REPO_ROOT / "operator"))
    return importlib.import_module(f"e2gan_operator.{name}")


def load_chart() -> helm.Chart:
    return helm.Chart.load(str(CHART_DIR))


@dataclass
class Rendered:
    """The manifests of one `helm template`, by kind and name."""

    files: dict[str, str]
    docs: list[dict[str, Any]]

    def kinds(self) -> list[str]:
        return sorted(d["kind"] for d in self.docs)

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [d for d in self.all(kind) if name is None or d["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}: {self.kinds()}"
        return found[0]

    @property
    def notes(self) -> str:
        return next(v for k, v in self.files.items() if k.endswith("NOTES.txt"))

    @property
    def deployment(self) -> dict[str, Any]:
        return self.one("Deployment")

    @property
    def container(self) -> dict[str, Any]:
        containers = self.deployment["spec"]["template"]["spec"]["containers"]
        assert [c["name"] for c in containers] == ["operator"]
        return containers[0]

    @property
    def env(self) -> dict[str, Any]:
        """The operator container's environment: plain values as strings, references as dicts."""
        return {e["name"]: e.get("value", e.get("valueFrom")) for e in self.container["env"]}

    @property
    def defaults(self) -> dict[str, Any]:
        """The parsed defaults.yaml of the operator's ConfigMap."""
        cm = next(d for d in self.all("ConfigMap") if d["metadata"]["name"].endswith("-defaults"))
        return yaml.safe_load(cm["data"]["defaults.yaml"])


def render(values: dict[str, Any] | None = None, *, name: str = RELEASE, namespace: str = NAMESPACE) -> Rendered:
    files = load_chart().render(values or {}, name=name, namespace=namespace, is_install=True)
    docs = [
        doc
        for path, text in sorted(files.items())
        if path.endswith((".yaml", ".yml"))
        for doc in yaml.safe_load_all(text)
        if doc
    ]
    return Rendered(files, docs)


def chart_crds() -> dict[str, str]:
    """The chart's crds/ as Helm loads them: file name → text."""
    return {Path(c["filename"]).name: c["data"] for c in load_chart().crds}
