"""The operator's RayJob watch: one per namespace it serves, filtered by label on the API server.

kopf would watch every RayJob of the cluster and filter them in the operator; at a thousand
jobs of other teams that is most of the traffic. Here each namespace where a ConceptAdapter or
ConceptBase lives gets a list+watch with `labelSelector=app.kubernetes.io/managed-by=e2gan-operator`,
and each change of one of our RayJobs schedules one reconcile of its owner (coalesced: a burst
of status updates while a reconcile is queued adds nothing).
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import aiohttp

from e2gan_operator.kube import RAYJOBS, ApiError, KubeClient
from e2gan_operator.rayjob import LABEL_MANAGED_BY, LABEL_OWNER, LABEL_OWNER_KIND, MANAGED_BY, TRAINERS
from e2gan_operator.reconcile import Reconciler, RetryLater

log = logging.getLogger("e2gan_operator")

SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY}"
RETRIES = 6
TRAINERS_BY_LABEL = {t.kind.lower(): t for t in TRAINERS.values()}


class RayJobWatches:
    """Starts a namespace's watch the first time a resource there is seen; stops them all at shutdown."""

    def __init__(self, kube: KubeClient, reconciler: Reconciler, timeout_s: int = 300) -> None:
        self.kube, self.reconciler, self.timeout_s = kube, reconciler, timeout_s
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._pending: set[tuple[str, str, str]] = set()
        self._seen: dict[tuple[str, str], str] = {}  # (namespace, RayJob name) -> resourceVersion

    def ensure(self, namespace: str) -> None:
        if namespace not in self._tasks or self._tasks[namespace].done():
            self._tasks[namespace] = asyncio.get_running_loop().create_task(self._run(namespace))

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    def _changed(self, namespace: str, obj: dict[str, Any], kind: str) -> None:
        meta = obj.get("metadata") or {}
        name, version = str(meta.get("name") or ""), str(meta.get("resourceVersion") or "")
        if kind == "DELETED":
            self._seen.pop((namespace, name), None)
        elif self._seen.get((namespace, name)) == version:
            return  # seen already (a re-list after a reconnect)
        else:
            self._seen[(namespace, name)] = version
        labels = meta.get("labels") or {}
        trainer = TRAINERS_BY_LABEL.get(labels.get(LABEL_OWNER_KIND, ""))
        owner = labels.get(LABEL_OWNER)
        if trainer is None or not owner:
            return
        key = (trainer.kind, namespace, owner)
        if key in self._pending:
            return
        self._pending.add(key)

        async def run() -> None:
            self._pending.discard(key)  # changes from now on need another reconcile
            # Nothing polls a job that is not running: a failed reconcile is retried here, with back-off.
            for attempt in range(RETRIES):
                try:
                    await self.reconciler.reconcile(trainer, namespace, owner, "rayjob")
                    return
                except (ApiError, aiohttp.ClientError, TimeoutError, OSError, RetryLater) as exc:
                    final = isinstance(exc, ApiError) and exc.status not in (409, 429) and exc.status < 500
                    if final or attempt == RETRIES - 1:
                        raise
                    delay = getattr(exc, "delay", None) or min(60.0, 2.0**attempt) * (0.5 + random.random())
                    log.info("reconcile of %s %s/%s after a RayJob change failed (%s); again in %.1f s",
                             trainer.kind, namespace, owner, exc, delay)
                    await asyncio.sleep(delay)

        self.reconciler.spawn(run(), f"{trainer.kind} {namespace}/{owner} (rayjob)")

    async def _run(self, namespace: str) -> None:
        path = RAYJOBS.path(namespace)
        version = ""
        first = True
        while True:
            try:
                if not version:
                    items, version = await self.kube.list_with_version(path, SELECTOR)
                    for item in items:
                        if first:  # the resources reconcile on resume anyway
                            meta = item.get("metadata") or {}
                            self._seen[(namespace, str(meta.get("name")))] = str(meta.get("resourceVersion"))
                        else:
                            self._changed(namespace, item, "MODIFIED")
                    first = False
                async for event in self.kube.watch(path, SELECTOR, version, self.timeout_s):
                    obj = event.get("object") or {}
                    version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                    if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                        self._changed(namespace, obj, str(event["type"]))
            except asyncio.CancelledError:
                raise
            except ApiError as exc:
                if exc.status == 410:  # too old: list again
                    version = ""
                    continue
                log.warning("RayJob watch in %s: %s; retrying", namespace, exc)
                version = ""
                await asyncio.sleep(1 + random.random() * 4)
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                log.info("RayJob watch in %s interrupted: %s; resuming", namespace, exc)
                await asyncio.sleep(0.5 + random.random())
