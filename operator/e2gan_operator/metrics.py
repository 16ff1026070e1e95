"""Prometheus metrics of the operator: reconciles, their durations, phases, RayJobs, events.

Each `Metrics` has its own registry (with the process collector, for memory and CPU), so
several operators in one test process never collide on metric names.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    start_http_server,
)

PHASES = ("Pending", "Queued", "Suspended", "Running", "Ready", "Failed")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.reconciles = Counter(
            "e2gan_operator_reconciles_total",
            "Reconciles by resource kind, trigger (create, update, resume, rayjob, poll, check, dependency) "
            "and result.",
            ["kind", "trigger", "result"],
            registry=self.registry,
        )
        self.reconcile_seconds = Histogram(
            "e2gan_operator_reconcile_duration_seconds",
            "Wall time of one reconcile, including API and catalog calls.",
            ["kind"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.resources = Gauge(
            "e2gan_operator_resources", "Resources seen by this operator, by kind and phase.", ["kind", "phase"],
            registry=self.registry,
        )
        self.rayjobs_created = Counter(
            "e2gan_operator_rayjobs_created_total", "RayJobs created.", ["kind"], registry=self.registry
        )
        self.rayjobs_adopted = Counter(
            "e2gan_operator_rayjobs_adopted_total",
            "Creates answered 409 because the RayJob existed (a restart finding its own job).",
            ["kind"],
            registry=self.registry,
        )
        self.events = Counter(
            "e2gan_operator_events_total", "Kubernetes Events posted, by reason.", ["reason"], registry=self.registry
        )
        self.training_seconds = Histogram(
            "e2gan_operator_training_duration_seconds",
            "From RayJob creation to a published result.",
            ["kind"],
            buckets=(60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400),
            registry=self.registry,
        )
        self.api_requests = Counter(
            "e2gan_operator_api_requests_total",
            "Requests the operator's own client sent to the API server (kopf's watches not included), by verb.",
            ["verb"],
            registry=self.registry,
        )
        self.catalog_requests = Counter(
            "e2gan_operator_catalog_requests_total",
            "Catalog store calls (index reads, progress reads, deletions), by method.",
            ["method"],
            registry=self.registry,
        )
        self._phase: dict[tuple[str, str, str], str] = {}
        for phase in PHASES:
            for kind in ("ConceptAdapter", "ConceptBase"):
                self.resources.labels(kind, phase).set(0)
        self._server: Any = None

    @contextmanager
    def reconcile(self, kind: str, trigger: str) -> Iterator[dict[str, str]]:
        """Time one reconcile; the caller may set result['result'] (default ok, error on exception)."""
        result = {"result": "ok"}
        start = time.perf_counter()
        try:
            yield result
        except BaseException:
            result["result"] = "error"
            raise
        finally:
            self.reconcile_seconds.labels(kind).observe(time.perf_counter() - start)
            self.reconciles.labels(kind, trigger, result["result"]).inc()

    def set_phase(self, kind: str, namespace: str, name: str, phase: str | None) -> None:
        """Track one resource's phase (None when it is gone) in the resources gauge."""
        key = (kind, namespace, name)
        old = self._phase.pop(key, None)
        if old is not None:
            self.resources.labels(kind, old).dec()
        if phase is not None:
            self._phase[key] = phase
            self.resources.labels(kind, phase).inc()

    def serve(self, port: int, host: str) -> None:
        if port:
            self._server, _ = start_http_server(port, addr=host, registry=self.registry)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
