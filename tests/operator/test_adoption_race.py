"""A RayJob created by someone else between the reconciler's GET and its create is adopted, never
duplicated: the create's 409 path of `Reconciler._create` (a GET-first test never reaches it)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from e2gan_operator.kube import RAYJOBS, KubeClient
from e2gan_operator.rayjob import ADAPTER
from e2gan_operator.reasons import Reason
from e2gan_operator.reconcile import Reconciler, RetryLater
from tests.operator.test_reconcile import World, adapter_spec, run

if TYPE_CHECKING:
    from tests.harness.fixtures import KubeApi


@pytest.fixture
def world(e2gan_crds: KubeApi, kube_namespace: str, tmp_path: Path) -> World:
    return World(e2gan_crds, kube_namespace, tmp_path / "catalog")


def is_rayjob(path: str) -> bool:
    return path.startswith(f"/apis/{RAYJOBS.group}/{RAYJOBS.version}/namespaces/")


def wrap(kube: KubeClient, method: str, before: Callable[[str, tuple[Any, ...]], Awaitable[None]] | None = None,
         after: Callable[[str, Any], Awaitable[None]] | None = None) -> None:
    """Run `before`/`after` around one KubeClient method's RayJob calls (this client only)."""
    real = getattr(kube, method)

    async def wrapped(path: str, *args: Any, **kwargs: Any) -> Any:
        if before is not None and is_rayjob(path):
            await before(path, args)
        answer = await real(path, *args, **kwargs)
        if after is not None and is_rayjob(path):
            await after(path, answer)
        return answer

    setattr(kube, method, wrapped)


def counts(world: World) -> tuple[float, float]:
    m = world.metrics
    return m.rayjobs_created.labels(ADAPTER.kind)._value.get(), m.rayjobs_adopted.labels(ADAPTER.kind)._value.get()


def test_two_reconcilers_racing_on_one_resource_make_one_rayjob(world: World) -> None:
    """Two operators (say, an old pod and its replacement) both see no RayJob, then both create it."""
    world.create("ConceptAdapter", "sketch", adapter_spec(world))

    async def scenario() -> None:
        ops: list[Reconciler] = [world.reconciler(), world.reconciler()]
        both_looked = asyncio.Barrier(len(ops))
        seen: list[Any] = []

        def looked_once() -> Callable[[str, Any], Awaitable[None]]:
            async def looked(path: str, answer: Any) -> None:
                if len(mine) == 0:  # this reconciler's first look at the job: wait for the other's
                    mine.append(answer)
                    seen.append(answer)
                    await asyncio.wait_for(both_looked.wait(), timeout=20)

            mine: list[Any] = []
            return looked

        for op in ops:
            wrap(op.kube, "get", after=looked_once())
        await asyncio.gather(*(op.reconcile(ADAPTER, world.ns, "sketch", "update") for op in ops))
        assert seen == [None, None], "both reconcilers must have found no RayJob before creating it"
        for op in ops:
            await op.kube.close()

    run(scenario)
    (job,) = world.rayjobs()
    assert world.get("ConceptAdapter", "sketch")["status"]["rayJobName"] == job["metadata"]["name"]
    assert sorted(world.reasons("sketch")) == sorted([Reason.RAYJOB_CREATED, Reason.RAYJOB_ADOPTED])
    assert counts(world) == (1, 1)


def test_a_rayjob_created_between_get_and_create_is_adopted(world: World) -> None:
    world.create("ConceptAdapter", "sketch", adapter_spec(world))

    async def scenario() -> None:
        op = world.reconciler()

        async def someone_else_creates_it(path: str, args: tuple[Any, ...]) -> None:
            (manifest,) = args
            world.request("POST", path, manifest)  # the same job, by another client, just before ours

        wrap(op.kube, "create", before=someone_else_creates_it)
        await op.reconcile(ADAPTER, world.ns, "sketch", "create")
        await op.kube.close()

    run(scenario)
    (job,) = world.rayjobs()
    st = world.get("ConceptAdapter", "sketch")["status"]
    assert st["rayJobName"] == job["metadata"]["name"] and st["phase"] == "Pending"
    (adopted,) = [m for n, r, m in world.events if n == "sketch" and r is Reason.RAYJOB_ADOPTED]
    assert job["metadata"]["name"] in adopted
    assert world.reasons("sketch") == [Reason.RAYJOB_ADOPTED]
    assert counts(world) == (0, 1)


def test_a_rayjob_deleted_while_being_adopted_is_retried_not_assumed(world: World) -> None:
    """409, then the job is gone before the reconciler reads it: retry later, claim nothing."""
    world.create("ConceptAdapter", "sketch", adapter_spec(world))

    async def scenario() -> None:
        op = world.reconciler()
        conflicted: list[str] = []

        async def someone_else_creates_it(path: str, args: tuple[Any, ...]) -> None:
            (manifest,) = args
            world.request("POST", path, manifest)
            conflicted.append(f"{path}/{manifest['metadata']['name']}")

        async def and_deletes_it(path: str, args: tuple[Any, ...]) -> None:
            if path in conflicted:  # the GET after the 409
                world.request("DELETE", path)

        wrap(op.kube, "create", before=someone_else_creates_it)
        wrap(op.kube, "get", before=and_deletes_it)
        with pytest.raises(RetryLater, match="was deleted while being adopted"):
            await op.reconcile(ADAPTER, world.ns, "sketch", "create")
        assert conflicted and world.rayjobs() == []
        assert Reason.RAYJOB_ADOPTED not in world.reasons("sketch")

        # The retry, undisturbed, creates the job.
        await world.reconciler().reconcile(ADAPTER, world.ns, "sketch", "retry")
        await op.kube.close()

    run(scenario)
    (job,) = world.rayjobs()
    assert world.get("ConceptAdapter", "sketch")["status"]["rayJobName"] == job["metadata"]["name"]
    assert world.reasons("sketch") == [Reason.RAYJOB_CREATED]
    assert counts(world) == (1, 0)
