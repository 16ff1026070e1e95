"""kopf wiring: login, start-up settings, the triggers of a reconcile, the finalizer, probes.

Handlers are thin: each one names a resource and a trigger and calls the Reconciler, which
reads the live object itself. `register()` takes a registry so tests can build operators
with their own settings; `e2gan_operator.main` registers into kopf's default registry.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from typing import Any

import aiohttp
import kopf

from e2gan_api import GROUP, VERSION
from e2gan_operator import logs
from e2gan_operator.catalogs import Catalogs
from e2gan_operator.kube import ApiError, KubeClient
from e2gan_operator.metrics import Metrics
from e2gan_operator.rayjob import (
    ADAPTER,
    BASE,
    LABEL_MANAGED_BY,
    LABEL_OWNER,
    LABEL_OWNER_KIND,
    MANAGED_BY,
    Trainer,
)
from e2gan_operator.reasons import Reason, event_type
from e2gan_operator.reconcile import Reconciler, RetryLater
from e2gan_operator.settings import OperatorSettings

log = logging.getLogger("e2gan_operator")

FINALIZER = "e2gan.dev/finalizer"
ANNOTATION_PREFIX = "e2gan.dev"
TRAINERS_BY_LABEL = {t.kind.lower(): t for t in (ADAPTER, BASE)}


@dataclass
class Runtime:
    """The operator's long-lived parts, shared by all handlers."""

    settings: OperatorSettings
    kube: KubeClient
    catalogs: Catalogs
    metrics: Metrics
    reconciler: Reconciler

    @classmethod
    def create(cls, settings: OperatorSettings) -> Runtime:
        kube, catalogs, metrics = KubeClient(), Catalogs(), Metrics()
        reconciler = Reconciler(kube, catalogs, settings, metrics, post_event)
        return cls(settings, kube, catalogs, metrics, reconciler)


def post_event(body: dict[str, Any], reason: Reason, message: str) -> None:
    kopf.event(body, type=event_type(reason), reason=reason.value, message=message[:1024])


def _phase_of(status: dict[str, Any]) -> str | None:
    return (status or {}).get("phase")


def _ready_reason(status: dict[str, Any]) -> str | None:
    for cond in (status or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == "Ready":
            return cond.get("reason")
    return None


# Stalls that only a change of the resource (spec or retrain annotation) can end: no polling.
NEEDS_A_CHANGE = frozenset(
    r.value for r in (Reason.INVALID_SPEC, Reason.TRAINING_FAILED, Reason.RESULT_MISSING, Reason.VERSION_MISSING)
)


def needs_poll(status: dict[str, Any], **_: Any) -> bool:
    """Poll while work may progress without a watch event: a job's progress, a base appearing or training."""
    return _phase_of(status) != "Ready" and _ready_reason(status) not in NEEDS_A_CHANGE


def is_ready(status: dict[str, Any], **_: Any) -> bool:
    return _phase_of(status) == "Ready"


def configure(settings: kopf.OperatorSettings) -> None:
    """kopf settings: our finalizer and annotation prefix, explicit events only."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    settings.posting.enabled = True
    settings.posting.loggers = False
    settings.posting.reporting_component = "e2gan-operator"
    settings.posting.reporting_instance = os.environ.get("HOSTNAME") or socket.gethostname()
    settings.posting.event_name_prefix = "e2gan-"
    # Peering stays as the command line set it (kopf applies --peering/--standalone before this
    # runs): by default the "default" peering if its CRD exists, else standalone.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330


def register(registry: kopf.OperatorRegistry, rt: Runtime) -> None:
    s = rt.settings

    @kopf.on.login(registry=registry, id="login")
    async def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # In-cluster service account first, then a kubeconfig (KUBECONFIG or ~/.kube/config), read now.
        def read() -> kopf.ConnectionInfo | None:
            return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

        info = read()
        if info is not None:
            rt.kube.login(info)
            rt.kube.relogin = read
        return info

    @kopf.on.startup(registry=registry, id="settings")
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure(settings)
        logs.configure(s.log_format)
        rt.metrics.serve(s.metrics_port, s.metrics_host)
        log.info(
            "e2gan operator started: trainer image %s, metrics on %s:%s",
            s.trainer_image, s.metrics_host, s.metrics_port or "off",
        )

    @kopf.on.cleanup(registry=registry, id="cleanup")
    async def cleanup(**_: Any) -> None:
        await rt.kube.close()
        rt.catalogs.close()
        rt.metrics.stop()
        log.info("e2gan operator stopped")

    @kopf.on.probe(id="reconciles", registry=registry)
    def probe_reconciles(**_: Any) -> float:
        return sum(m.value for m in _samples(rt, "e2gan_operator_reconciles_total"))

    for trainer in (ADAPTER, BASE):
        _register_kind(registry, rt, trainer)

    @kopf.on.delete(GROUP, VERSION, ADAPTER.plural, registry=registry, id="deletion-policy")
    async def finalize_adapter(body: kopf.Body, retry: int, **_: Any) -> None:
        try:
            await rt.reconciler.finalize(ADAPTER, _plain(body), retry)
        except RetryLater as exc:
            raise kopf.TemporaryError(str(exc), delay=exc.delay) from exc

    @kopf.on.delete(GROUP, VERSION, BASE.plural, registry=registry, id="forget", optional=True)
    async def forget_base(name: str, namespace: str | None, **_: Any) -> None:
        # Bases keep their published weights (adapters may still use them): nothing to remove.
        rt.reconciler.forget(BASE, namespace or "", name)

    @kopf.on.event(
        "ray.io", "v1", "rayjobs", labels={LABEL_MANAGED_BY: MANAGED_BY}, registry=registry, id="rayjob-status"
    )
    async def rayjob_changed(labels: kopf.Labels, namespace: str, type: str | None, **_: Any) -> None:
        trainer = TRAINERS_BY_LABEL.get(labels.get(LABEL_OWNER_KIND, ""))
        owner = labels.get(LABEL_OWNER)
        if trainer is None or not owner or type is None:  # type None: the initial listing
            return
        await _run(rt, trainer, namespace, owner, "rayjob")


def _samples(rt: Runtime, name: str) -> list[Any]:
    return [sample for metric in rt.metrics.registry.collect() for sample in metric.samples if sample.name == name]


def _plain(body: kopf.Body) -> dict[str, Any]:
    return {k: body.get(k) for k in ("apiVersion", "kind", "metadata", "spec", "status")}


async def _run(rt: Runtime, trainer: Trainer, namespace: str | None, name: str, trigger: str) -> None:
    """One reconcile; failures become kopf retries (temporary) or stop until the next change (permanent)."""
    assert namespace is not None
    try:
        await rt.reconciler.reconcile(trainer, namespace, name, trigger)
    except RetryLater as exc:
        raise kopf.TemporaryError(str(exc), delay=exc.delay) from exc
    except ApiError as exc:
        if exc.status in (409, 429) or exc.status >= 500:
            raise kopf.TemporaryError(f"API server: {exc}", delay=5) from exc
        log.error("%s %s/%s: the API server refused a request: %s", trainer.kind, namespace, name, exc)
        raise kopf.PermanentError(f"API server refused: {exc}") from exc
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise kopf.TemporaryError(f"API server unreachable: {exc}", delay=5) from exc


def _register_kind(registry: kopf.OperatorRegistry, rt: Runtime, trainer: Trainer) -> None:
    s = rt.settings
    plural = trainer.plural

    @kopf.on.create(GROUP, VERSION, plural, registry=registry, id=f"{trainer.command}-create")
    async def created(name: str, namespace: str | None, **_: Any) -> None:
        await _run(rt, trainer, namespace, name, "create")

    @kopf.on.update(GROUP, VERSION, plural, registry=registry, id=f"{trainer.command}-update")
    async def updated(name: str, namespace: str | None, **_: Any) -> None:
        await _run(rt, trainer, namespace, name, "update")

    @kopf.on.resume(GROUP, VERSION, plural, registry=registry, id=f"{trainer.command}-resume")
    async def resumed(name: str, namespace: str | None, **_: Any) -> None:
        await _run(rt, trainer, namespace, name, "resume")

    @kopf.timer(
        GROUP, VERSION, plural, registry=registry, id=f"{trainer.command}-poll",
        interval=s.poll_seconds, initial_delay=s.poll_seconds, when=needs_poll,
    )
    async def poll(name: str, namespace: str | None, **_: Any) -> None:
        await _run(rt, trainer, namespace, name, "poll")

    @kopf.timer(
        GROUP, VERSION, plural, registry=registry, id=f"{trainer.command}-check",
        interval=s.catalog_check_seconds, initial_delay=s.catalog_check_seconds, when=is_ready,
    )
    async def check(name: str, namespace: str | None, **_: Any) -> None:
        await _run(rt, trainer, namespace, name, "check")
