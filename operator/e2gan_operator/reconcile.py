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
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from catalog import CatalogError
from e2gan_api import GROUP, VERSION
from e2gan_operator.catalogs import Catalogs
from e2gan_operator.conditions import Outcome, conditions, merge_patch, now_iso
from e2gan_operator.identity import inputs_digest, new_progress_key, training_digest
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
    QUEUE_LABEL,
    RETRAIN_ANNOTATION,
    Trainer,
    build_rayjob,
    job_state,
    rayjob_name,
    runtime_problem,
)
from e2gan_operator.reasons import Reason
from e2gan_operator.settings import OperatorSettings
from e2gan_operator.validate import InvalidResource, check_catalog, validate

log = logging.getLogger("e2gan_operator")

RESOURCES = {t.kind: Resource(GROUP, VERSION, t.plural) for t in (ADAPTER, BASE)}
MAX_VERSIONS = 100
PRIORITY_LABEL = "kueue.x-k8s.io/priority-class"
# How stale the index view of a series' owner may be before a RayJob is created (seconds).
SERIES_VIEW_SECONDS = 10.0
# The env var that tells the trainer (and the catalog it publishes with) who owns what it publishes.
OWNER_ENV = "E2GAN_CATALOG_OWNER"
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
        Reason.CONCEPT_TAKEN,
        Reason.QUEUED,
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


def owner_of(meta: dict[str, Any]) -> str:
    """The catalog owner string of a resource: k8s:<namespace>/<name>/<uid>."""
    return f"k8s:{meta.get('namespace')}/{meta.get('name')}/{meta.get('uid')}"


class RateLimit:
    """A token bucket: at most `per_minute` acquisitions a minute, in bursts of at most that many."""

    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = max(1.0, per_minute)
        self.rate = per_minute / 60.0
        self.tokens = self.capacity
        self._clock = clock
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        self.tokens = min(self.capacity, self.tokens + (now - self._last) * self.rate)
        self._last = now

    def acquire(self) -> bool:
        self._refill()
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def wait_seconds(self) -> float:
        self._refill()
        return max(0.05, (1.0 - self.tokens) / self.rate)


def _same_catalog(a: str, b: str) -> bool:
    """Whether two spellings name one catalog (file:// or not, a trailing '/' or not)."""

    def plain(uri: str) -> str:
        return (uri[len("file://"):] if uri.startswith("file://") else uri).rstrip("/")

    return plain(a) == plain(b)


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
        self.follow_limit = RateLimit(settings.base_follow_per_minute)

    # -- entry points ---------------------------------------------------------------

    async def reconcile(
        self, trainer: Trainer, namespace: str, name: str, trigger: str, seen: dict[str, Any] | None = None
    ) -> None:
        """Bring one resource's RayJob and status in line with its spec (serialised per resource).

        `seen` is the resource as the watch last delivered it (the periodic catalog check of a Ready
        resource passes it: a thousand of them need no GET each); otherwise it is read fresh."""
        key = (trainer.kind, namespace, name)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            with self.metrics.reconcile(trainer.kind, trigger) as result:
                body = seen if seen is not None else await self.kube.get(RESOURCES[trainer.kind].path(namespace, name))
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

    def reconcile_later(self, trainer: Trainer, namespace: str, name: str, trigger: str, delay: float = 0.0) -> None:
        """Schedule a reconcile without waiting for it (dependents of a base that became Ready)."""

        async def run() -> None:
            if delay:
                await asyncio.sleep(delay)
            await self.reconcile(trainer, namespace, name, trigger)

        self.spawn(run(), f"{trainer.kind} {namespace}/{name} ({trigger})")

    def spawn(self, work: Coroutine[Any, Any, None], what: str) -> None:
        """Run a reconcile in the background, logging (not raising) its failure."""

        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("reconcile of %s failed", what)

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
        if trainer is BASE and (new.get("published") != old.get("published") or new.get("phase") != old.get("phase")):
            await self._wake_dependents(namespace, name)  # dependents are not polled: they hear it from here

    async def _decide(
        self, trainer: Trainer, body: dict[str, Any], old: dict[str, Any], new: dict[str, Any], trigger: str
    ) -> Outcome:
        policy = self.settings.cluster.catalog_policy
        sticky = old.get("catalogUri") if isinstance(old.get("catalogUri"), str) else ""
        try:
            valid = validate(trainer, body, policy, sticky_catalog=sticky)
        except InvalidResource as exc:
            new["phase"] = "Failed"
            return Outcome("stalled", Reason.INVALID_SPEC, str(exc))
        wire = valid.model.model_dump(mode="json", by_alias=True)
        wire["catalog"]["uri"] = valid.catalog
        # What the user set: the digest leaves defaults out, so new defaults in a release retrain nothing.
        user = valid.model.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        new["catalogUri"] = valid.catalog
        try:
            return await self._decide_valid(trainer, body, wire, user, old, new, trigger)
        except StallError as exc:
            new["phase"] = "Failed"
            return Outcome("stalled", exc.reason, exc.message)

    async def _decide_valid(
        self,
        trainer: Trainer,
        body: dict[str, Any],
        wire: dict[str, Any],
        user: dict[str, Any],
        old: dict[str, Any],
        new: dict[str, Any],
        trigger: str,
    ) -> Outcome:
        meta = body["metadata"]
        retrain = str((meta.get("annotations") or {}).get(RETRAIN_ANNOTATION, ""))
        inputs = inputs_digest(trainer, meta, user, retrain)
        pin: dict[str, Any] | None = None
        if trainer is BASE:
            new["concepts"] = len(wire["concepts"])
        else:
            waiting, pin = await self._resolve_base(body, wire, old, new, inputs)
            if waiting is not None:
                return waiting
        digest = training_digest(inputs, pin)
        if old.get("specDigest") == digest and old.get("phase") == "Ready" and old.get("published"):
            return await self._steady(trainer, wire, new, trigger)
        # The profile lives in the operator's config, not the CRD: checked here, before any RayJob.
        problem = runtime_problem(self.settings, wire)
        if problem is not None:
            raise StallError(Reason.INVALID_SPEC, problem)
        return await self._train(trainer, body, wire, digest, old, new)

    async def _resolve_base(
        self, body: dict[str, Any], wire: dict[str, Any], old: dict[str, Any], new: dict[str, Any], inputs: str
    ) -> tuple[Outcome | None, dict[str, Any] | None]:
        """Pin the base version this spec trains from (status.base) and point base.weights at it, or say why not.

        The pin holds until the spec or the retrain annotation changes (`inputs`), so a deleted or
        republished ConceptBase leaves a Ready adapter as it is; with `base.follow: latest` a new
        version is taken up, at most `base_follow_per_minute` adapters a minute."""
        ref = wire["base"]
        if ref.get("weights") or ref["name"] == "builtin":
            new.pop("base", None)
            return None, None
        meta = body["metadata"]
        namespace = meta["namespace"]
        held = old.get("base") if isinstance(old.get("base"), dict) else None
        if held and (held.get("name") != ref["name"] or held.get("inputs") != inputs or not held.get("uri")):
            held = None
        if held and ref.get("follow") != "latest":
            ref["weights"] = held["uri"]
            return None, held
        base = await self.kube.get(RESOURCES[BASE.kind].path(namespace, ref["name"]))
        status = (base or {}).get("status") or {}
        published = status.get("published") if isinstance(status.get("published"), dict) else {}
        if published.get("uri"):
            latest = {
                "name": ref["name"], "version": str(published.get("version") or ""), "uri": str(published["uri"]),
                "digest": str(published.get("digest") or ""), "inputs": inputs, "pinnedAt": now_iso(),
            }
            if held and (held["uri"], held.get("digest")) != (latest["uri"], latest["digest"]):
                if not self.follow_limit.acquire():
                    # Others retrain first; this one keeps its pinned base until its turn.
                    self.reconcile_later(ADAPTER, namespace, meta["name"], "dependency", self.follow_limit.wait_seconds())
                    latest = held
            elif held:
                latest = held
            new["base"] = latest
            ref["weights"] = latest["uri"]
            return None, latest
        if held:  # following a base that is gone or retraining: keep what it trained from
            ref["weights"] = held["uri"]
            return None, held
        if base is None:
            new["phase"] = "Failed"
            return Outcome(
                "stalled",
                Reason.BASE_NOT_FOUND,
                f"base.name: ConceptBase {ref['name']!r} does not exist in namespace {namespace}; create it, "
                "or use base.name: builtin",
            ), None
        if status.get("phase") == "Failed":
            new["phase"] = "Failed"
            why = next((c.get("message") for c in status.get("conditions") or [] if c.get("type") == "Ready"), "")
            return Outcome("stalled", Reason.BASE_FAILED, f"ConceptBase {ref['name']!r} failed: {why}"), None
        new["phase"] = "Pending"
        return Outcome(
            "reconciling",
            Reason.WAITING_FOR_BASE,
            f"waiting for ConceptBase {ref['name']!r} to publish its weights (it is {status.get('phase') or 'new'})",
        ), None

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
                # One read of this series per half check interval, whoever asks.
                entries = await self.catalogs.shared_versions(
                    wire["catalog"]["uri"], wire["concept"], self.settings.catalog_check_seconds / 2,
                    base_digest=published.get("baseDigest") or None,
                )
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

    def queue_of(self, body: dict[str, Any]) -> str | None:
        """The Kueue LocalQueue of a resource: its own label, else the namespace's configured default."""
        meta = body["metadata"]
        return (meta.get("labels") or {}).get(QUEUE_LABEL) or self.settings.cluster.kueue.queue(meta["namespace"])

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
        queue = self.queue_of(body)
        want_suspend = bool(wire.get("suspend", False))
        rayjob = await self.kube.get(path)
        if rayjob is None:
            if not fresh and old.get("rayJobName") == job_name and old.get("phase") == "Failed":
                # This spec already failed and its RayJob is gone: an unchanged spec never retrains.
                new["phase"] = "Failed"
                previous = next((r for r in Reason if r.value == _reason_of(old)), Reason.TRAINING_FAILED)
                message = next((c.get("message", "") for c in old.get("conditions") or [] if c.get("type") == "Ready"), "")
                return Outcome("stalled", previous, message)
            if trainer is ADAPTER:
                await self._check_series(body, wire)
            if queue and want_suspend:
                # Kueue would admit (unsuspend) a suspended RayJob: while suspended there is none.
                if fresh:
                    await self._supersede(trainer, body, keep=job_name)
                new.update(rayJobName="", rayJobUid="", specDigest=digest, progressKey="", phase="Suspended")
                return Outcome(
                    "suspended", Reason.SUSPENDED, f"spec.suspend is true: no RayJob is queued in {queue} until it is false"
                )
            rayjob = await self._create(trainer, body, wire, digest, job_name, queue)
        else:
            self._check_owned(body, rayjob)
            if fresh:
                # Made by an earlier run of the operator that died before writing the status.
                self.metrics.rayjobs_adopted.labels(trainer.kind).inc()
                self._event(body, Reason.RAYJOB_ADOPTED, f"RayJob {job_name} exists already; adopted")
        job_meta = rayjob.get("metadata") or {}
        key = str((job_meta.get("annotations") or {}).get(ANNOTATION_PROGRESS_KEY) or "")
        uid = str(job_meta.get("uid") or "")
        replaced = bool(old.get("rayJobUid")) and old.get("rayJobUid") != uid
        new.update(rayJobName=job_name, rayJobUid=uid, specDigest=digest, progressKey=key)
        if fresh or replaced:
            # A new run: nothing of an earlier run's progress describes it.
            new.update(stage="Pending", progress=progress_status(None))
            if trainer is ADAPTER:
                new.update(trials="", ranks="")
        if fresh:
            await self._supersede(trainer, body, keep=job_name)

        state = job_state(rayjob)
        job_suspend = bool((rayjob.get("spec") or {}).get("suspend", False))
        finished = state.state in ("succeeded", "failed")
        if queue:
            # Kueue owns suspend: the operator may suspend (the user asked), never unsuspend.
            if want_suspend and not job_suspend and not finished:
                rayjob = await self._set_suspend(body, path, job_name, True)
        elif job_suspend != want_suspend and not finished:
            rayjob = await self._set_suspend(body, path, job_name, want_suspend)
        job_suspend = bool((rayjob.get("spec") or {}).get("suspend", False))
        state = job_state(rayjob)

        if want_suspend:
            new["phase"] = "Suspended"
            return Outcome("suspended", Reason.SUSPENDED, f"RayJob {job_name} is suspended (spec.suspend)")
        if queue and (job_suspend or state.state == "suspended") and not finished:
            new["phase"] = "Queued"
            return Outcome(
                "reconciling", Reason.QUEUED, f"RayJob {job_name} is waiting for Kueue to admit it (LocalQueue {queue})"
            )
        if state.state == "suspended":
            new["phase"] = "Suspended"
            return Outcome("suspended", Reason.SUSPENDED, f"RayJob {job_name} is suspended")
        if state.state == "pending":
            new["phase"] = "Pending"
            return Outcome(
                "reconciling",
                Reason.JOB_PENDING,
                f"RayJob {job_name} is waiting for its Ray cluster ({state.reason or 'New'})",
            )
        # Only a running or finished job has progress worth reading.
        uri = wire["catalog"]["uri"]
        progress: dict[str, Any] | None = None
        store_error = ""
        try:
            progress = await self.catalogs.read_progress(uri, key) if key else None
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
            return await self._published(trainer, body, rayjob, wire, key, progress, store_error, old, new)
        if trainer is ADAPTER:
            await self._check_series(body, wire)  # lost the race for the series: say so, not "failed"
        new.update(phase="Failed", stage="Failed")
        detail = (progress or {}).get("message") if (progress or {}).get("stage") == "Failed" else ""
        detail = detail or state.message or "see the RayJob's logs (kubectl logs job/" + job_name + ")"
        return Outcome(
            "stalled",
            Reason.TRAINING_FAILED,
            f"RayJob {job_name} failed ({state.reason or 'Failed'}): {detail}; change the spec, or set annotation "
            f"{RETRAIN_ANNOTATION}, to train again",
        )

    async def _set_suspend(self, body: dict[str, Any], path: str, job_name: str, suspend: bool) -> dict[str, Any]:
        rayjob = await self.kube.merge_patch(path, {"spec": {"suspend": suspend}})
        self._event(
            body,
            Reason.SUSPENDED if suspend else Reason.RESUMED,
            f"RayJob {job_name} {'suspended' if suspend else 'resumed'} (spec.suspend is {str(suspend).lower()})",
        )
        return rayjob

    def _check_owned(self, body: dict[str, Any], rayjob: dict[str, Any]) -> None:
        """A RayJob of our name is adopted only when its controller is this very resource (same UID)."""
        uid = body["metadata"].get("uid")
        refs = [r for r in (rayjob.get("metadata") or {}).get("ownerReferences") or [] if r.get("controller")]
        if not any(r.get("uid") == uid for r in refs):
            owner = ", ".join(f"{r.get('kind')}/{r.get('name')} ({r.get('uid')})" for r in refs) or "nobody"
            raise StallError(
                Reason.RAYJOB_NOT_OWNED,
                f"RayJob {rayjob['metadata']['name']} exists but is controlled by {owner}, not by this resource; "
                "delete it or rename this resource",
            )

    async def _check_series(self, body: dict[str, Any], wire: dict[str, Any]) -> None:
        """Stall ConceptTaken when another owner publishes this concept in this catalog."""
        me = owner_of(body["metadata"])
        uri, concept = wire["catalog"]["uri"], wire["concept"]
        try:
            # A view a few seconds old is enough: the catalog itself refuses a publish by another owner.
            entries = await self.catalogs.shared_versions(uri, concept, SERIES_VIEW_SECONDS)
        except CatalogError as exc:
            log.warning("ownership of %s in %s unknown: %s", concept, uri, exc)
            return
        others = sorted({str(e.owner) for e in entries if getattr(e, "owner", None) and e.owner != me})
        if others:
            raise StallError(
                Reason.CONCEPT_TAKEN,
                f"concept {concept} in catalog {uri} is owned by {others[0]}; use another concept or catalog, "
                "or delete that owner's resource",
            )

    async def _find_version(self, uri: str, concept: str, version: str, digest: str) -> Any:
        """The index entry of a version just published: from the shared index read when it lists it, else
        from a fresh shared read, else from a read of its own (a thousand jobs ending at once share reads)."""

        def match(entries: list[Any]) -> Any:
            return next((e for e in entries if e.version == version and (not digest or e.digest == digest)), None)

        max_age = self.settings.catalog_check_seconds / 2
        entry = match(await self.catalogs.shared_versions(uri, concept, max_age))
        if entry is None:
            entry = match(await self.catalogs.shared_versions(uri, concept, 0.0))
        if entry is None:
            entry = match(await self.catalogs.versions(uri, concept))
        return entry

    def _decorate(self, manifest: dict[str, Any], body: dict[str, Any], queue: str | None) -> None:
        """Kueue labels, queued RayJobs created suspended, and the catalog owner in the pods' environment."""
        labels = manifest["metadata"].setdefault("labels", {})
        own = body["metadata"].get("labels") or {}
        if queue:
            labels[QUEUE_LABEL] = queue
            manifest["spec"]["suspend"] = True  # Kueue admits it by unsuspending
        else:
            labels.pop(QUEUE_LABEL, None)
        if own.get(PRIORITY_LABEL):
            labels[PRIORITY_LABEL] = own[PRIORITY_LABEL]
        cluster = manifest["spec"].get("rayClusterSpec") or {}
        groups = [cluster.get("headGroupSpec") or {}, *(cluster.get("workerGroupSpecs") or [])]
        for group in groups:
            for container in ((group.get("template") or {}).get("spec") or {}).get("containers") or []:
                env = [e for e in container.get("env") or [] if e.get("name") != OWNER_ENV]
                container["env"] = [*env, {"name": OWNER_ENV, "value": owner_of(body["metadata"])}]

    async def _create(
        self,
        trainer: Trainer,
        body: dict[str, Any],
        wire: dict[str, Any],
        digest: str,
        job_name: str,
        queue: str | None,
    ) -> dict[str, Any]:
        meta = body["metadata"]
        key = new_progress_key(meta["namespace"], meta["name"])
        manifest = build_rayjob(trainer=trainer, owner=body, spec_wire=wire, digest=digest, key=key, settings=self.settings)
        self._decorate(manifest, body, queue)
        try:
            created = await self.kube.create(RAYJOBS.path(meta["namespace"]), manifest)
        except Conflict:
            # Made by an earlier run that died before writing the status, or by a concurrent reconcile.
            existing = await self.kube.get(RAYJOBS.path(meta["namespace"], job_name))
            if existing is None:
                raise RetryLater(f"RayJob {job_name} was deleted while being adopted", 1.0) from None
            self._check_owned(body, existing)
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
        body: dict[str, Any],
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
                entry = await self._find_version(uri, wire["concept"], result.version, result.digest)
            except CatalogError as exc:
                new["phase"] = "Running"
                return Outcome("reconciling", Reason.CATALOG_UNAVAILABLE, f"cannot read the catalog index: {exc}")
            if entry is None:
                new["phase"] = "Failed"
                return Outcome(
                    "stalled",
                    Reason.VERSION_MISSING,
                    f"RayJob {job_name} reports {wire['concept']} {result.version}, but the catalog index at {uri} "
                    "does not list it",
                )
            entry_owner = getattr(entry, "owner", None)
            if entry_owner and entry_owner != owner_of(body["metadata"]):
                new["phase"] = "Failed"
                return Outcome(
                    "stalled",
                    Reason.CONCEPT_TAKEN,
                    f"{wire['concept']} {result.version} in catalog {uri} is owned by {entry_owner}, not by this "
                    "resource; use another concept or catalog",
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
        """A base published new weights, appeared or failed: its ConceptAdapters need not wait for a poll."""
        for adapter in await self.kube.list(RESOURCES[ADAPTER.kind].path(namespace)):
            spec = adapter.get("spec") if isinstance(adapter.get("spec"), dict) else {}
            base = spec.get("base") if isinstance(spec.get("base"), dict) else {}
            if base.get("name") == base_name and not base.get("weights"):
                self.reconcile_later(ADAPTER, namespace, adapter["metadata"]["name"], "dependency")

    # -- deletion -------------------------------------------------------------------

    def _deletion_catalogs(self, body: dict[str, Any], spec: dict[str, Any]) -> list[str]:
        """Catalogs to look for this resource's versions in: the spec's (immutable) or the configured default,
        and the one recorded in status; each must pass the namespace's policy. Only versions the catalog
        records as owned by this resource are removed from any of them."""
        namespace = str((body.get("metadata") or {}).get("namespace") or "")
        catalog = spec.get("catalog") if isinstance(spec.get("catalog"), dict) else {}
        status = body.get("status") if isinstance(body.get("status"), dict) else {}
        policy = self.settings.cluster.catalog_policy
        candidates = [catalog.get("uri") or policy.default, status.get("catalogUri")]
        out: list[str] = []
        for uri in candidates:
            if not isinstance(uri, str) or not uri:
                continue
            try:
                normal = check_catalog(uri, namespace, policy)
            except InvalidResource:
                continue
            if normal not in out:
                out.append(normal)
        return out

    async def finalize(self, trainer: Trainer, body: dict[str, Any], attempt: int) -> None:
        """Honour deletionPolicy before the finalizer goes: Retain keeps versions, Delete removes those the
        catalog records as this resource's. Any stored spec is tolerated: deletion always completes."""
        meta = body.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
        policy = spec.get("deletionPolicy") if spec.get("deletionPolicy") in ("Retain", "Delete") else "Retain"
        concept = spec.get("concept") if isinstance(spec.get("concept"), str) else ""
        catalogs = self._deletion_catalogs(body, spec)
        where = ", ".join(catalogs) or "no usable catalog"
        status = body.get("status") if isinstance(body.get("status"), dict) else {}
        if policy != "Delete":
            if status.get("published"):
                self._event(body, Reason.VERSIONS_RETAINED, f"deletionPolicy {policy}: versions of {concept} kept in {where}")
            self.forget(trainer, namespace, name)
            return
        # A job still running could publish after the versions are gone: stop it first.
        for job in await self._owned_jobs(trainer, namespace, name):
            await self.kube.delete(RAYJOBS.path(namespace, job["metadata"]["name"]))
        me = owner_of(meta)
        removed: list[str] = []
        try:
            for uri in catalogs if concept else []:
                for entry in await self.catalogs.versions(uri, concept):
                    if getattr(entry, "owner", None) != me:
                        continue  # another resource's (or a person's) version: never ours to delete
                    recorded = getattr(entry, "catalog_uri", None)
                    if recorded and not _same_catalog(recorded, uri):
                        log.warning("%s %s lists catalog %s, not %s: left alone", concept, entry.version, recorded, uri)
                        continue
                    await self.catalogs.delete(uri, concept, entry.version, entry.base_model_digest, owner=me)
                    removed.append(f"{concept} {entry.version}")
        except CatalogError as exc:
            if attempt < self.settings.delete_retries:
                self._event(body, Reason.DELETE_FAILED, f"removing versions of {concept} from {where} failed, will retry: {exc}")
                raise RetryLater(str(exc), delay=min(60.0, 2.0**attempt)) from exc
            self._event(
                body,
                Reason.DELETE_FAILED,
                f"gave up removing versions of {concept} from {where} after {attempt + 1} attempts: {exc}",
            )
            self.forget(trainer, namespace, name)
            return
        if removed:
            self._event(body, Reason.VERSIONS_DELETED, f"deletionPolicy Delete: removed {', '.join(removed)} from {where}")
        self.forget(trainer, namespace, name)
