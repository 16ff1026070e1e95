"""kopf wiring: login, start-up settings, the triggers of a reconcile, the finalizer, probes.

Handlers are thin: each one names a resource and a trigger and calls the Reconciler, which
reads the live object itself. `register()` takes a registry so tests can build operators
with their own settings; `e2gan_operator.main` registers into kopf's default registry.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import kopf

from e2gan_api import GROUP, VERSION
from e2gan_operator import logs
from e2gan_operator.catalogs import Catalogs
from e2gan_operator.kube import ApiError, KubeClient
from e2gan_operator.metrics import Metrics
from e2gan_operator.rayjob import ADAPTER, BASE, Trainer
from e2gan_operator.reasons import Reason, event_type
from e2gan_operator.reconcile import Reconciler, RetryLater
from e2gan_operator.settings import OperatorSettings
from e2gan_operator.watches import RayJobWatches

log = logging.getLogger("e2gan_operator")

FINALIZER = "e2gan.dev/finalizer"
# kopf's own bookkeeping, apart from the e2gan.dev/ annotations users set (e2gan.dev/retrain).
ANNOTATION_PREFIX = "kopf.e2gan.dev"
DIFFBASE_KEY = "last-handled-configuration"


@dataclass
class Runtime:
    """The operator's long-lived parts, shared by all handlers."""

    settings: OperatorSettings
    kube: KubeClient
    catalogs: Catalogs
    metrics: Metrics
    reconciler: Reconciler
    watches: RayJobWatches = field(init=False)

    def __post_init__(self) -> None:
        self.watches = RayJobWatches(self.kube, self.reconciler)

    @classmethod
    def create(cls, settings: OperatorSettings) -> Runtime:
        metrics = Metrics()
        kube, catalogs = KubeClient(), Catalogs(lambda method: metrics.catalog_requests.labels(method).inc())
        kube.on_request = lambda verb: metrics.api_requests.labels(verb).inc()
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


def needs_poll(status: dict[str, Any], **_: Any) -> bool:
    """Poll only while a job runs (its progress object changes without a watch event); everything
    else is driven by events: the resource's, its RayJob's (status) and its base's."""
    return _phase_of(status) == "Running"


def is_ready(status: dict[str, Any], **_: Any) -> bool:
    return _phase_of(status) == "Ready"


def _reset_notice(body: Any, key: str, exc: Exception) -> None:
    meta = body.get("metadata") or {}
    log.warning("%s/%s: annotation %s unreadable (%s); reset", meta.get("namespace"), meta.get("name"), key, exc)
    try:
        kopf.event(body, type="Warning", reason=Reason.ANNOTATION_RESET.value,
                   message=f"the operator's annotation {key} was unreadable ({str(exc)[:200]}); it is reset")
    except Exception:  # no event queue (outside kopf's tasks): the log line is enough
        pass


class TolerantDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """kopf's annotation diff-base, but an unreadable one is reset (treated as absent) instead of
    failing every event of the resource forever."""

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        try:
            essence = super().fetch(body=body)
            if essence is not None and not isinstance(essence, dict):
                raise ValueError("not a JSON object")
            return essence
        except (ValueError, TypeError) as exc:
            _reset_notice(body, f"{self.prefix}/{self.key}", exc)
            return None


class TolerantProgressStorage(kopf.AnnotationsProgressStorage):
    """kopf's per-handler progress annotations; an unreadable record is reset (the handler runs again)."""

    def fetch(self, *, key: Any, body: kopf.Body) -> Any:
        try:
            record = super().fetch(key=key, body=body)
            if record is not None and not isinstance(record, dict):
                raise ValueError("not a JSON object")
            return record
        except (ValueError, TypeError, json.JSONDecodeError) as exc:
            _reset_notice(body, f"{self.prefix}/{key}", exc)
            return None


def configure(settings: kopf.OperatorSettings) -> None:
    """kopf settings: our finalizer, kopf's annotations under their own prefix, explicit events only."""
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = TolerantProgressStorage(prefix=ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = TolerantDiffBaseStorage(prefix=ANNOTATION_PREFIX, key=DIFFBASE_KEY)
    settings.posting.enabled = True
    settings.posting.loggers = False
    settings.posting.reporting_component = "e2gan-operator"
    settings.posting.reporting_instance = os.environ.get("HOSTNAME") or socket.gethostname()
    settings.posting.event_name_prefix = "e2gan-"
    # Peering stays as the command line set it (kopf applies --peering/--standalone before this
    # runs): by default the "default" peering if its CRD exists, else standalone.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    # After its own patch, kopf waits for the watch to show that version before handling the
    # object again. Its 5 s default is too short when a thousand resources arrive at once: events
    # lag, kopf gives up waiting and re-runs the create handler on a stale body (measured: 1 346
    # runs for 1 000 resources). The reconcile is idempotent; waiting is cheaper than redoing it.
    settings.persistence.consistency_timeout = 30.0


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
        await rt.watches.stop()
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


def _samples(rt: Runtime, name: str) -> list[Any]:
    return [sample for metric in rt.metrics.registry.collect() for sample in metric.samples if sample.name == name]


def _plain(body: kopf.Body) -> dict[str, Any]:
    return {k: body.get(k) for k in ("apiVersion", "kind", "metadata", "spec", "status")}


async def _run(
    rt: Runtime, trainer: Trainer, namespace: str | None, name: str, trigger: str, seen: dict[str, Any] | None = None
) -> None:
    """One reconcile; failures become kopf retries (temporary) or stop until the next change (permanent)."""
    assert namespace is not None
    rt.watches.ensure(namespace)  # RayJob status events of this namespace drive its reconciles
    try:
        await rt.reconciler.reconcile(trainer, namespace, name, trigger, seen)
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

    @kopf.daemon(
        GROUP, VERSION, plural, registry=registry, id=f"{trainer.command}-poll", when=needs_poll,
        cancellation_timeout=5.0,
    )
    async def poll(name: str, namespace: str | None, stopped: kopf.DaemonStopped, **_: Any) -> None:
        await periodically(stopped, s.poll_seconds, s.poll_jitter, lambda: _run(rt, trainer, namespace, name, "poll"))

    @kopf.daemon(
        GROUP, VERSION, plural, registry=registry, id=f"{trainer.command}-check", when=is_ready,
        cancellation_timeout=5.0,
    )
    async def check(name: str, namespace: str | None, body: kopf.Body, stopped: kopf.DaemonStopped, **_: Any) -> None:
        # kopf keeps `body` current from its watch: the check reads no resource from the API server.
        await periodically(
            stopped, s.catalog_check_seconds, s.poll_jitter,
            lambda: _run(rt, trainer, namespace, name, "check", _plain(body)),
        )


async def periodically(
    stopped: kopf.DaemonStopped, interval: float, jitter: float, work: Callable[[], Awaitable[None]]
) -> None:
    """Run `work` every `interval` seconds, each wait scaled by a random factor in [1-jitter, 1+jitter];
    the first wait is a random part of the interval, so resources resumed together spread out."""
    delay = interval * random.uniform(jitter, 1.0)
    while not stopped:
        await stopped.wait(delay)
        if stopped:
            return
        try:
            await work()
        except (kopf.TemporaryError, kopf.PermanentError) as exc:
            log.info("periodic reconcile deferred: %s", exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("periodic reconcile failed")
        delay = interval * random.uniform(1.0 - jitter, 1.0 + jitter)
