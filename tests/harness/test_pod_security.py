"""Pod Security Admission in the emulated API server (tests/harness/kube_api/pod_security.py)."""

from __future__ import annotations

import copy
from typing import Any

from tests.harness.fixtures import KubeApi
from tests.harness.kube_api.pod_security import violations

pytest_plugins = ["tests.harness.fixtures"]

HARDENED: dict[str, Any] = {
    "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [{"name": "app", "image": "registry.local/app:1", "securityContext": {
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}],
    "volumes": [{"name": "shm", "emptyDir": {"medium": "Memory"}},
                {"name": "weights", "image": {"reference": "registry.local/w:1"}}],
}


def test_a_hardened_pod_meets_restricted_and_a_default_one_does_not() -> None:
    assert violations(HARDENED, "restricted") == []
    plain = {"containers": [{"name": "app", "image": "x"}]}
    assert violations(plain, "baseline") == []
    assert violations(plain, "restricted") == [
        'allowPrivilegeEscalation != false (container "app" must set securityContext.allowPrivilegeEscalation=false)',
        'unrestricted capabilities (container "app" must set securityContext.capabilities.drop=["ALL"])',
        'runAsNonRoot != true (pod or container "app" must set securityContext.runAsNonRoot=true)',
        'seccompProfile (pod or container "app" must set securityContext.seccompProfile.type to "RuntimeDefault" '
        'or "Localhost")',
    ]


def test_each_baseline_and_restricted_rule_is_checked() -> None:
    def broken(change: Any) -> list[str]:
        spec = copy.deepcopy(HARDENED)
        change(spec)
        return violations(spec, "restricted")

    container = lambda s: s["containers"][0]["securityContext"]  # noqa: E731
    cases = {
        "host namespaces": lambda s: s.update(hostNetwork=True),
        "privileged": lambda s: container(s).update(privileged=True),
        "non-default capabilities": lambda s: container(s)["capabilities"].update(add=["SYS_ADMIN"]),
        "hostPath volumes": lambda s: s["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
        "hostPort": lambda s: s["containers"][0].update(ports=[{"containerPort": 80, "hostPort": 80}]),
        "procMount": lambda s: container(s).update(procMount="Unmasked"),
        "restricted volume types": lambda s: s["volumes"].append({"name": "n", "nfs": {"server": "x", "path": "/"}}),
        "runAsUser=0": lambda s: container(s).update(runAsUser=0),
        "forbidden sysctls": lambda s: s["securityContext"].update(sysctls=[{"name": "kernel.msgmax", "value": "1"}]),
    }
    for rule, change in cases.items():
        assert any(v.startswith(rule) for v in broken(change)), rule


def test_a_namespace_labelled_restricted_refuses_pods_that_break_it(kube_api: KubeApi, kube_namespace: str) -> None:
    label = {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted",
                                     "pod-security.kubernetes.io/warn": "restricted"}}}
    status, _, answer = kube_api.request("PATCH", f"/api/v1/namespaces/{kube_namespace}", label,
                                         content_type="application/merge-patch+json")
    assert status == 200, answer
    pods = f"/api/v1/namespaces/{kube_namespace}/pods"
    status, _, answer = kube_api.request("POST", pods, {"metadata": {"name": "loose"},
                                                        "spec": {"containers": [{"name": "app", "image": "x"}]}})
    assert status == 403 and answer["reason"] == "Forbidden"
    assert answer["message"].startswith('pods "loose" is forbidden: violates PodSecurity "restricted:latest": '
                                        "allowPrivilegeEscalation != false")
    status, headers, _ = kube_api.request("POST", pods, {"metadata": {"name": "hardened"}, "spec": HARDENED})
    assert status == 201 and "warning" not in headers
