"""A Kueue stand-in for the emulated API server: admission that suspends queued RayJobs, and admit/preempt.

Kueue's mutating webhook sets `spec.suspend: true` on every job created with the label
`kueue.x-k8s.io/queue-name`; its controller later admits the job (quota permitting) by setting
`spec.suspend: false`, and may preempt it by suspending it again. Only Kueue unsuspends a queued
job: anyone else doing so bypasses the quota, which this stand-in records.

    kueue = KueueStandIn(kube_api, namespace)   # installs the admission step
    ...                                         # RayJobs created with the label arrive suspended
    kueue.admit()                               # unsuspend the queued ones (names returned)
    kueue.preempt(name)                         # suspend one again
    kueue.unsuspended_by_others()               # RayJobs someone else unsuspended: should be []
    kueue.close()                               # removes the admission step
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from tests.harness.kube_api import admission

if TYPE_CHECKING:
    from tests.harness.fixtures import KubeApi

QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
RAYJOBS = ("ray.io", "rayjobs")


class KueueStandIn:
    def __init__(self, api: KubeApi, namespace: str) -> None:
        self.api, self.namespace = api, namespace
        self._lock = threading.Lock()
        self._ours: set[str] = set()  # names Kueue itself is changing right now
        self._violations: list[str] = []
        self._previous = admission.HOOKS.get(RAYJOBS)
        admission.HOOKS[RAYJOBS] = self._admit

    def close(self) -> None:
        if admission.HOOKS.get(RAYJOBS) == self._admit:
            if self._previous is None:
                admission.HOOKS.pop(RAYJOBS, None)
            else:
                admission.HOOKS[RAYJOBS] = self._previous

    def _admit(self, cluster: Any, rt: Any, obj: dict[str, Any], old: dict[str, Any] | None) -> list[Any]:
        errors = self._previous(cluster, rt, obj, old) if self._previous is not None else []
        meta = obj.get("metadata") or {}
        if meta.get("namespace") != self.namespace or not (meta.get("labels") or {}).get(QUEUE_LABEL):
            return errors
        spec = obj.setdefault("spec", {})
        if old is None:
            spec["suspend"] = True  # the webhook: a queued job starts suspended
        elif (old.get("spec") or {}).get("suspend") and not spec.get("suspend"):
            with self._lock:
                if meta.get("name") not in self._ours:
                    self._violations.append(str(meta.get("name")))
        return errors

    def _set_suspend(self, name: str, suspend: bool) -> None:
        path = f"/apis/ray.io/v1/namespaces/{self.namespace}/rayjobs/{name}"
        with self._lock:
            self._ours.add(name)
        try:
            status, _, body = self.api.request(
                "PATCH", path, {"spec": {"suspend": suspend}}, content_type="application/merge-patch+json"
            )
            assert status == 200, body
        finally:
            with self._lock:
                self._ours.discard(name)

    def queued(self) -> list[str]:
        """Names of the namespace's queued RayJobs that are suspended (waiting for admission)."""
        _, _, body = self.api.request("GET", f"/apis/ray.io/v1/namespaces/{self.namespace}/rayjobs")
        return [
            j["metadata"]["name"]
            for j in body.get("items") or []
            if (j["metadata"].get("labels") or {}).get(QUEUE_LABEL) and (j.get("spec") or {}).get("suspend")
        ]

    def admit(self) -> list[str]:
        """Admit every waiting RayJob (unlimited quota); the names admitted."""
        names = self.queued()
        for name in names:
            self._set_suspend(name, False)
        return names

    def preempt(self, name: str) -> None:
        self._set_suspend(name, True)

    def unsuspended_by_others(self) -> list[str]:
        with self._lock:
            return list(self._violations)
