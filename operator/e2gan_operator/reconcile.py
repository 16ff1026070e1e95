"""Reconcile one ConceptAdapter or ConceptBase: level-triggered, idempotent, one at a time per resource.

Every trigger (a spec change, the operator resuming, a RayJob status change, the progress
poll, the catalog check) runs the same function: read the resource, decide from what is
observed (the RayJob named by the spec digest, the job's progress object, the catalog),
act (create, patch or delete RayJobs), then write the status only where it differs. A
restart computes the same RayJob name, so it adopts the job it made instead of making a
second one; an unchanged spec is never trained twice.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from catalog import CatalogError
from e2gan_api import GROUP, VERSION
from e2gan_operator.catalogs import Catalogs
from e2gan_operator.conditions import Outcome, conditions, merge_patch
from e2gan_operator.kube import RAYJOBS, ApiError, Conflict, KubeClient, Resource
from e2gan_operator.metrics import Metrics
from e2gan_operator.observe import (
    fidelity_column,
    numeric_metrics,
    progress_status,
    ranks_column,
    result_of,
    stage_of,
    trials_column,
)
from e2gan_operator.rayjob import (
    ADAPTER,
    ANNOTATION_PROGRESS_KEY,
    BASE,
    LABEL_OWNER,
    LABEL_OWNER_KIND,
    RETRAIN_ANNOTATION,
    Trainer,
    build_rayjob,
    job_state,
    progress_key,
    rayjob_name,
    spec_digest,
)
from e2gan_operator.reasons import Reason
from e2gan_operator.settings import OperatorSettings
from e2gan_operator.validate import InvalidResource, validate

log = logging.getLogger("e2gan_operator")

RESOURCES = {t.kind: Resource(GROUP, VERSION, t.plural) for t in (ADAPTER, BASE)}
MAX_VERSIONS = 100
# API answers to a RayJob create that no retry will change, and what they usually mean.
REFUSALS = {
    400: "the RayJob is malformed",
    403: "the operator's service account may not create RayJobs (RBAC)",
    404: "no ray.io/v1 RayJob resource: is KubeRay installed?",
    422: "the RayJob was refused by validation (KubeRay's CRD or a webhook)",
}
# Outcomes announced as Events when a resource enters them; actions (create, adopt, supersede,
# suspend) announce themselves, and stage changes get StageChanged.
ANNOUNCED = frozenset(
    {
        Reason.INVALID_SPEC,
        Reason.BASE_NOT_FOUND,
        Reason.WAITING_FOR_BASE,
        Reason.BASE_FAILED,
        Reason.TRAINING_FAILED,
        Reason.RESULT_MISSING,
        Reason.VERSION_MISSING,
        Reason.CATALOG_UNAVAILABLE,
        Reason.PUBLISHED,
    }
)

EventSink = Callable[[dict[str, Any], Reason, str], None]


class StallError(Exception):
    """Reconciling cannot go on until something changes; the status says why."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


class RetryLater(Exception):
    """Try again after `delay` seconds (the handler turns this into kopf's TemporaryError)."""

    def __init__(self, message: str, delay: float) -> None:
        super().__init__(message)
        self.delay = delay


def failpoint(name: str) -> None:
    """Die here when E2GAN_FAILPOINT names this point: tests kill the operator mid-reconcile."""
    if os.environ.get("E2GAN_FAILPOINT") == name:
        log.error("failpoint %s: exiting", name)
        os._exit(3)


def _reason_of(status: dict[str, Any]) -> str | None:
    for cond in status.get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == "Ready":
            return cond.get("reason")
    return None


def _age_seconds(timestamp: str | None) -> float | None:
    if not timestamp:
        return None
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0.0, (datetime.now(UTC) - then).total_seconds())


class Reconciler:
    def __init__(
        self,
        kube: KubeClient,
        catalogs: Catalogs,
        settings: OperatorSettings,
        metrics: Metrics,
        post_event: EventSink,
    ) -> None:
        self.kube, self.catalogs, self.settings, self.metrics = kube, catalogs, settings, metrics
        self._post_event = post_event
        self._locks: dict[tuple[str, str, str], asyncio.Lock] = {}
        self._background: set[asyncio.Task[None]] = set()

    # -- entry points ---------------------------------------------------------------

    async def reconcile(self, trainer: Trainer, namespace: str, name: str, trigger: str) -> None:
        """Bring one resource's RayJob and status in line with its spec (serialised per resource)."""
        key = (trainer.kind, namespace, name)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            with self.metrics.reconcile(trainer.kind, trigger) as result:
                body = await self.kube.get(RESOURCES[trainer.kind].path(namespace, name))
                if body is None:
                    result["result"] = "gone"
                    self.forget(trainer, namespace, name)
                    return
                if body["metadata"].get("deletionTimestamp"):
                    result["result"] = "deleting"
                    return
                await self._reconcile(trainer, body, trigger)

    def forget(self, trainer: Trainer, namespace: str, name: str) -> None:
        self._locks.pop((trainer.kind, namespace, name), None)
        self.metrics.set_phase(trainer.kind, namespace, name, None)

    def reconcile_later(self, trainer: Trainer, namespace: str, name: str, trigger: str) -> None:
        """Schedule a reconcile without waiting for it (dependents of a base that became Ready)."""

        async def run() -> None:
            try:
                await self.reconcile(trainer, namespace, name, trigger)
            except Exception:
                log.exception("reconcile of %s %s/%s (%s) failed", trainer.kind, namespace, name, trigger)

        task = asyncio.get_running_loop().create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- one reconcile --------------------------------------------------------------

    def _event(self, body: dict[str, Any], reason: Reason, message: str) -> None:
        self.metrics.events.labels(reason.value).inc()
        self._post_event(body, reason, message)

    async def _reconcile(self, trainer: Trainer, body: dict[str, Any], trigger: str) -> None:
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        generation = int(meta.get("generation") or 1)
        old: dict[str, Any] = body.get("status") or {}
        new = copy.deepcopy(old)
        new["observedGeneration"] = generation
        outcome = await self._decide(trainer, body, old, new, trigger)
        new["conditions"] = conditions(outcome, generation, old.get("conditions"))
        if outcome.reason in ANNOUNCED and outcome.reason.value != _reason_of(old):
            self._event(body, outcome.reason, outcome.message)
        stage = new.get("stage")
        if stage != old.get("stage") and stage not in (None, "Pending", "Done", "Failed"):
            detail = (new.get("progress") or {}).get("message") or ""
            self._event(body, Reason.STAGE_CHANGED, f"stage {stage}{': ' + detail if detail else ''}")
        patch = merge_patch(old, new)
        if patch:
            try:
                await self.kube.merge_patch(RESOURCES[trainer.kind].path(namespace, name, "status"), {"status": patch})
            except ApiError as exc:
                if exc.status != 404:
                    raise
                self.forget(trainer, namespace, name)  # deleted meanwhile: nothing left to describe
                return
        self.metrics.set_phase(trainer.kind, namespace, name, new.get("phase"))
        if trainer is BASE and new.get("published") != old.get("published"):
            await self._wake_dependents(namespace, name)

    async def _decide(
        self, trainer: Trainer, body: dict[str, Any], old: dict[str, Any], new: dict[str, Any], trigger: str
    ) -> Outcome:
        try:
            model = validate(trainer, body)
        except InvalidResource as exc:
            new["phase"] = "Failed"
            return Outcome("stalled", Reason.INVALID_SPEC, str(exc))
        try:
            return await self._decide_valid(trainer, body, model.model_dump(mode="json", by_alias=True), old, new, trigger)
        except StallError as exc:
            new["phase"] = "Failed"
            return Outcome("stalled", exc.reason, exc.message)

    async def _decide_valid(
        self,
        trainer: Trainer,
        body: dict[str, Any],
        wire: dict[str, Any],
        old: dict[str, Any],
        new: dict[str, Any],
        trigger: str,
    ) -> Outcome:
        if trainer is BASE:
            new["concepts"] = len(wire["concepts"])
        else:
            waiting = await self._resolve_base(body, wire, new)
            if waiting is not None:
                return waiting
        meta = body["metadata"]
        retrain = str((meta.get("annotations") or {}).get(RETRAIN_ANNOTATION, ""))
        digest = spec_digest(trainer, meta["namespace"], meta["name"], wire, retrain)
        if old.get("specDigest") == digest and old.get("phase") == "Ready" and old.get("published"):
            return await self._steady(trainer, wire, new, trigger)
        return await self._train(trainer, body, wire, digest, old, new)

    async def _resolve_base(self, body: dict[str, Any], wire: dict[str, Any], new: dict[str, Any]) -> Outcome | None:
        """Point base.weights at the referenced ConceptBase's published weights, or say why not."""
        ref = wire["base"]
        if ref.get("weights") or ref["name"] == "builtin":
            return None
        namespace = body["metadata"]["namespace"]
        base = await self.kube.get(RESOURCES[BASE.kind].path(namespace, ref["name"]))
        if base is None:
            new["phase"] = "Failed"
            return Outcome(
                "stalled",
                Reason.BASE_NOT_FOUND,
                f"base.name: ConceptBase {ref['name']!r} does not exist in namespace {namespace}; create it, "
                "or use base.name: builtin",
            )
        status = base.get("status") or {}
        published = status.get("published") or {}
        if published.get("uri"):
            # Its published weights, even while it trains a newer version: a Ready adapter stays Ready.
            ref["weights"] = published["uri"]
            return None
        if status.get("phase") == "Failed":
            new["phase"] = "Failed"
            why = next((c.get("message") for c in status.get("conditions") or [] if c.get("type") == "Ready"), "")
            return Outcome("stalled", Reason.BASE_FAILED, f"ConceptBase {ref['name']!r} failed: {why}")
        new["phase"] = "Pending"
        return Outcome(
            "reconciling",
            Reason.WAITING_FOR_BASE,
            f"waiting for ConceptBase {ref['name']!r} to publish its weights (it is {status.get('phase') or 'new'})",
        )

    def _ready_message(self, trainer: Trainer, wire: dict[str, Any], status: dict[str, Any]) -> str:
        published = status.get("published") or {}
        what = wire["concept"] if trainer is ADAPTER else "base"
        fidelity = status.get("fidelity")
        return f"published {what} {published.get('version')}" + (f" ({fidelity})" if fidelity else "")

    async def _steady(self, trainer: Trainer, wire: dict[str, Any], new: dict[str, Any], trigger: str) -> Outcome:
        """Trained and published: nothing to run; on the periodic check, make sure it is still listed."""
        new["phase"] = "Ready"
        if trigger == "check" and trainer is ADAPTER:
            published = new["published"]
            try:
                entries = await self.catalogs.versions(wire["catalog"]["uri"], wire["concept"])
            except CatalogError as exc:
                log.warning("catalog check of %s skipped: %s", wire["concept"], exc)
            else:
                if not any(e.version == published.get("version") for e in entries):
                    new["phase"] = "Failed"
                    return Outcome(
                        "stalled",
                        Reason.VERSION_MISSING,
                        f"published version {published.get('version')} of {wire['concept']} is no longer in the "
                        f"catalog {wire['catalog']['uri']}; set annotation {RETRAIN_ANNOTATION} to train it again",
                    )
        return Outcome("ready", Reason.PUBLISHED, self._ready_message(trainer, wire, new))

    async def _train(
        self,
        trainer: Trainer,
        body: dict[str, Any],
        wire: dict[str, Any],
        digest: str,
        old: dict[str, Any],
        new: dict[str, Any],
    ) -> Outcome:
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        job_name = rayjob_name(name, digest)
        path = RAYJOBS.path(namespace, job_name)
        fresh = old.get("specDigest") != digest
        rayjob = await self.kube.get(path)
        if rayjob is None:
            if not fresh and old.get("rayJobName") == job_name and old.get("phase") == "Failed":
                # This spec already failed and its RayJob is gone: an unchanged spec never retrains.
                new["phase"] = "Failed"
                previous = next((r for r in Reason if r.value == _reason_of(old)), Reason.TRAINING_FAILED)
                message = next((c.get("message", "") for c in old.get("conditions") or [] if c.get("type") == "Ready"), "")
                return Outcome("stalled", previous, message)
            rayjob = await self._create(trainer, body, wire, digest, job_name)
        elif fresh:
            # Made by an earlier run of the operator that died before writing the status.
            self.metrics.rayjobs_adopted.labels(trainer.kind).inc()
            self._event(body, Reason.RAYJOB_ADOPTED, f"RayJob {job_name} exists already; adopted")
        key = ((rayjob.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_PROGRESS_KEY) or progress_key(
            namespace, name, int(meta.get("generation") or 1)
        )
        new.update(rayJobName=job_name, specDigest=digest, progressKey=key)
        if fresh:
            new.update(stage="Pending", progress=progress_status(None))
            if trainer is ADAPTER:
                new.update(trials="", ranks="")
            await self._supersede(trainer, body, keep=job_name)

        want_suspend = bool(wire.get("suspend", False))
        if bool((rayjob.get("spec") or {}).get("suspend", False)) != want_suspend:
            rayjob = await self.kube.merge_patch(path, {"spec": {"suspend": want_suspend}})
            self._event(
                body,
                Reason.SUSPENDED if want_suspend else Reason.RESUMED,
                f"RayJob {job_name} {'suspended' if want_suspend else 'resumed'} (spec.suspend is {str(want_suspend).lower()})",
            )
        state = job_state(rayjob)
        uri = wire["catalog"]["uri"]
        progress: dict[str, Any] | None = None
        store_error = ""
        try:
            progress = await self.catalogs.read_progress(uri, key)
        except CatalogError as exc:
            store_error = str(exc)
            log.warning("progress of %s/%s unreadable: %s", namespace, name, exc)
        if progress is not None:
            new["progress"] = progress_status(progress)
            new["stage"] = stage_of(progress, new.get("stage") or "Pending")
            if trainer is ADAPTER:
                new["trials"] = trials_column(new["progress"])
                if new["progress"]["bestRanks"]:
                    new["ranks"] = ranks_column(new["progress"]["bestRanks"])

        if want_suspend or state.state == "suspended":
            new["phase"] = "Suspended"
            return Outcome("suspended", Reason.SUSPENDED, f"RayJob {job_name} is suspended (spec.suspend)")
        if state.state == "pending":
            new["phase"] = "Pending"
            return Outcome(
                "reconciling",
                Reason.JOB_PENDING,
                f"RayJob {job_name} is waiting for its Ray cluster ({state.reason or 'New'})",
            )
        if state.state == "running":
            new["phase"] = "Running"
            percent = (new.get("progress") or {}).get("percent", 0)
            detail = (new.get("progress") or {}).get("message") or ""
            return Outcome(
                "reconciling",
                Reason.RUNNING,
                f"{new.get('stage', 'Pending')} {percent:g}%" + (f": {detail}" if detail else ""),
            )
        if state.state == "succeeded":
            return await self._published(trainer, rayjob, wire, key, progress, store_error, old, new)
        new.update(phase="Failed", stage="Failed")
        detail = (progress or {}).get("message") if (progress or {}).get("stage") == "Failed" else ""
        detail = detail or state.message or "see the RayJob's logs (kubectl logs job/" + job_name + ")"
        return Outcome(
            "stalled",
            Reason.TRAINING_FAILED,
            f"RayJob {job_name} failed ({state.reason or 'Failed'}): {detail}; change the spec, or set annotation "
            f"{RETRAIN_ANNOTATION}, to train again",
        )

    async def _create(
        self, trainer: Trainer, body: dict[str, Any], wire: dict[str, Any], digest: str, job_name: str
    ) -> dict[str, Any]:
        meta = body["metadata"]
        key = progress_key(meta["namespace"], meta["name"], int(meta.get("generation") or 1))
        manifest = build_rayjob(trainer=trainer, owner=body, spec_wire=wire, digest=digest, key=key, settings=self.settings)
        try:
            created = await self.kube.create(RAYJOBS.path(meta["namespace"]), manifest)
        except Conflict:
            # Made by an earlier run that died before writing the status, or by a concurrent reconcile.
            existing = await self.kube.get(RAYJOBS.path(meta["namespace"], job_name))
            if existing is None:
                raise RetryLater(f"RayJob {job_name} was deleted while being adopted", 1.0) from None
            self.metrics.rayjobs_adopted.labels(trainer.kind).inc()
            self._event(body, Reason.RAYJOB_ADOPTED, f"RayJob {job_name} exists already; adopted")
            return existing
        except ApiError as exc:
            if exc.status not in REFUSALS:
                raise
            raise StallError(Reason.API_ERROR, f"RayJob {job_name} was refused: {REFUSALS[exc.status]} ({exc})") from exc
        self.metrics.rayjobs_created.labels(trainer.kind).inc()
        self._event(body, Reason.RAYJOB_CREATED, f"RayJob {job_name} created to train generation {meta.get('generation')}")
        failpoint("after-rayjob-create")
        return created

    async def _owned_jobs(self, trainer: Trainer, namespace: str, name: str) -> list[dict[str, Any]]:
        selector = f"{LABEL_OWNER_KIND}={trainer.kind.lower()},{LABEL_OWNER}={name}"
        return await self.kube.list(RAYJOBS.path(namespace), selector)

    async def _supersede(self, trainer: Trainer, body: dict[str, Any], keep: str) -> None:
        """Delete RayJobs of earlier specs of this resource: a changed spec stops the old training."""
        meta = body["metadata"]
        for job in await self._owned_jobs(trainer, meta["namespace"], meta["name"]):
            job_name = job["metadata"]["name"]
            if job_name != keep and not job["metadata"].get("deletionTimestamp"):
                if await self.kube.delete(RAYJOBS.path(meta["namespace"], job_name)):
                    self._event(body, Reason.RAYJOB_SUPERSEDED, f"RayJob {job_name} deleted: the spec changed")

    async def _published(
        self,
        trainer: Trainer,
        rayjob: dict[str, Any],
        wire: dict[str, Any],
        key: str,
        progress: dict[str, Any] | None,
        store_error: str,
        old: dict[str, Any],
        new: dict[str, Any],
    ) -> Outcome:
        """The job succeeded: check what it published against the catalog and record it."""
        job_name = rayjob["metadata"]["name"]
        uri = wire["catalog"]["uri"]
        result = result_of(progress)
        if result is None:
            if store_error:
                new["phase"] = "Running"
                return Outcome("reconciling", Reason.CATALOG_UNAVAILABLE, f"cannot read the job's result: {store_error}")
            new["phase"] = "Failed"
            return Outcome(
                "stalled",
                Reason.RESULT_MISSING,
                f"RayJob {job_name} succeeded but its progress object {key} in {uri} names no published result; "
                "see the job's logs",
            )
        base_digest, metrics, ranks = result.base_digest, result.metrics, result.ranks
        if trainer is ADAPTER:
            try:
                entries = await self.catalogs.versions(uri, wire["concept"])
            except CatalogError as exc:
                new["phase"] = "Running"
                return Outcome("reconciling", Reason.CATALOG_UNAVAILABLE, f"cannot read the catalog index: {exc}")
            entry = next(
                (e for e in entries if e.version == result.version and (not result.digest or e.digest == result.digest)),
                None,
            )
            if entry is None:
                new["phase"] = "Failed"
                return Outcome(
                    "stalled",
                    Reason.VERSION_MISSING,
                    f"RayJob {job_name} reports {wire['concept']} {result.version}, but the catalog index at {uri} "
                    "does not list it",
                )
            base_digest = base_digest or entry.base_model_digest
            metrics = metrics or numeric_metrics(entry.metrics)
            ranks = ranks or dict(entry.ranks)
            new["ranks"] = ranks_column(ranks)
        new["published"] = {"uri": result.uri, "version": result.version, "digest": result.digest, "baseDigest": base_digest}
        new["metrics"] = metrics
        new["fidelity"] = fidelity_column(metrics)
        ref = {"concept": wire.get("concept", ""), "version": result.version, "baseDigest": base_digest}
        versions = [v for v in new.get("versions") or [] if v != ref] + [ref]
        new["versions"] = versions[-MAX_VERSIONS:]
        new.update(phase="Ready", stage="Done")
        if old.get("phase") != "Ready" or old.get("specDigest") != new.get("specDigest"):
            age = _age_seconds((rayjob.get("metadata") or {}).get("creationTimestamp"))
            if age is not None:
                self.metrics.training_seconds.labels(trainer.kind).observe(age)
        return Outcome("ready", Reason.PUBLISHED, self._ready_message(trainer, wire, new))

    async def _wake_dependents(self, namespace: str, base_name: str) -> None:
        """A base published new weights: its ConceptAdapters need not wait for their next poll."""
        for adapter in await self.kube.list(RESOURCES[ADAPTER.kind].path(namespace)):
            spec = adapter.get("spec") or {}
            base = spec.get("base") if isinstance(spec.get("base"), dict) else {}
            if base.get("name") == base_name and not base.get("weights"):
                self.reconcile_later(ADAPTER, namespace, adapter["metadata"]["name"], "dependency")

    # -- deletion -------------------------------------------------------------------

    async def finalize(self, trainer: Trainer, body: dict[str, Any], attempt: int) -> None:
        """Honour deletionPolicy before the finalizer goes: Retain keeps versions, Delete removes them."""
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
        status = body.get("status") or {}
        policy = spec.get("deletionPolicy", "Retain")
        concept = spec.get("concept", "")
        uri = (spec.get("catalog") or {}).get("uri", "")
        versions = [v for v in status.get("versions") or [] if isinstance(v, dict) and v.get("version")]
        listing = ", ".join(f"{v.get('concept') or concept} {v['version']}" for v in versions)
        if policy != "Delete":
            if versions:
                self._event(body, Reason.VERSIONS_RETAINED, f"deletionPolicy {policy}: kept {listing} in {uri}")
            self.forget(trainer, namespace, name)
            return
        # A job still running could publish after the versions are gone: stop it first.
        for job in await self._owned_jobs(trainer, namespace, name):
            await self.kube.delete(RAYJOBS.path(namespace, job["metadata"]["name"]))
        if not versions:
            self.forget(trainer, namespace, name)
            return
        try:
            for v in versions:
                await self.catalogs.delete(uri, v.get("concept") or concept, v["version"], v.get("baseDigest"))
        except CatalogError as exc:
            if attempt < self.settings.delete_retries:
                self._event(body, Reason.DELETE_FAILED, f"removing {listing} from {uri} failed, will retry: {exc}")
                raise RetryLater(str(exc), delay=min(60.0, 2.0**attempt)) from exc
            self._event(
                body,
                Reason.DELETE_FAILED,
                f"gave up removing {listing} from {uri} after {attempt + 1} attempts: {exc}",
            )
            self.forget(trainer, namespace, name)
            return
        self._event(body, Reason.VERSIONS_DELETED, f"deletionPolicy Delete: removed {listing} from {uri}")
        self.forget(trainer, namespace, name)
