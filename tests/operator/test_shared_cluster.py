"""The operator on a cluster shared by teams (issue 12): Kueue, stable identity, pinned bases,
per-RayJob progress, ownership of catalog series, and specs that no longer validate.

Same ground as test_reconcile.py: the emulated API server with our CRDs and KubeRay's, a real
local catalog, RayJob status written by hand (or by the Kueue stand-in)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from e2gan_api.spec import ConceptAdapterSpec
from e2gan_operator import identity
from e2gan_operator.rayjob import ADAPTER, BASE, RETRAIN_ANNOTATION, decode_spec
from e2gan_operator.reasons import Reason
from e2gan_operator.reconcile import owner_of
from e2gan_operator.settings import ClusterDefaults, KueueDefaults
from tests.harness.kueue_standin import KueueStandIn
from tests.operator.test_reconcile import API, World, adapter_spec, cond, needs_ownership, run

if TYPE_CHECKING:
    from tests.harness.fixtures import KubeApi

pytest_plugins = ["tests.harness.fixtures"]


@pytest.fixture
def world(e2gan_crds: KubeApi, kube_namespace: str, tmp_path: Path) -> World:
    return World(e2gan_crds, kube_namespace, tmp_path / "catalog")


async def succeed(world: World, op: Any, name: str, concept: str = "pencil-sketch", seed: int = 0) -> dict[str, Any]:
    """Let the current RayJob of `name` publish and succeed; return the resource."""
    st = world.get("ConceptAdapter", name)["status"]
    world.catalog.write_progress(st["progressKey"], {"stage": "Done", "result": world.publish(concept, seed, owner=name)})
    world.job_status(st["rayJobName"], jobDeploymentStatus="Complete", jobStatus="SUCCEEDED")
    await op.reconcile(ADAPTER, world.ns, name, "rayjob")
    return world.get("ConceptAdapter", name)


# -- Kueue ---------------------------------------------------------------------------------


def test_queued_rayjobs_are_created_suspended_and_never_unsuspended_by_the_operator(world: World) -> None:
    labels = {"kueue.x-k8s.io/queue-name": "team-q", "kueue.x-k8s.io/priority-class": "low"}
    world.create("ConceptAdapter", "sketch", adapter_spec(world), labels=labels)
    kueue = KueueStandIn(world.api, world.ns)

    async def scenario() -> None:
        op = world.reconciler()
        await op.reconcile(ADAPTER, world.ns, "sketch", "create")
        (job,) = world.rayjobs()
        assert job["spec"]["suspend"] is True
        assert job["metadata"]["labels"]["kueue.x-k8s.io/priority-class"] == "low"
        obj = world.get("ConceptAdapter", "sketch")
        # The trainer publishes as this resource: the catalog records it as the series' owner.
        cluster = job["spec"]["rayClusterSpec"]
        for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
            env = {e["name"]: e.get("value") for e in group["template"]["spec"]["containers"][0]["env"]}
            assert env["E2GAN_CATALOG_OWNER"] == owner_of(obj["metadata"])
        assert obj["status"]["phase"] == "Queued" and cond(obj, "Reconciling")["reason"] == "Queued"
        assert "team-q" in cond(obj)["message"]

        # Kueue admits it (unsuspends): reconciles must not suspend it again, nor fight it.
        assert kueue.admit() == [job["metadata"]["name"]]
        for trigger in ("rayjob", "poll", "update"):
            await op.reconcile(ADAPTER, world.ns, "sketch", trigger)
        (job,) = world.rayjobs()
        assert job["spec"]["suspend"] is False and world.get("ConceptAdapter", "sketch")["status"]["phase"] == "Pending"

        # Kueue preempts it (suspends): the operator shows Queued and never writes suspend: false.
        kueue.preempt(job["metadata"]["name"])
        world.job_status(job["metadata"]["name"], jobDeploymentStatus="Suspended", jobStatus="STOPPED")
        for trigger in ("rayjob", "update"):
            await op.reconcile(ADAPTER, world.ns, "sketch", trigger)
        (job,) = world.rayjobs()
        assert job["spec"]["suspend"] is True and world.get("ConceptAdapter", "sketch")["status"]["phase"] == "Queued"
        assert kueue.unsuspended_by_others() == []

        # The user's suspend: true is honoured (the operator may suspend; only Kueue unsuspends).
        kueue.admit()
        world.patch("ConceptAdapter", "sketch", {"spec": {"suspend": True}})
        await op.reconcile(ADAPTER, world.ns, "sketch", "update")
        (job,) = world.rayjobs()
        assert job["spec"]["suspend"] is True and world.get("ConceptAdapter", "sketch")["status"]["phase"] == "Suspended"
        world.patch("ConceptAdapter", "sketch", {"spec": {"suspend": False}})
        await op.reconcile(ADAPTER, world.ns, "sketch", "update")
        (job,) = world.rayjobs()
        assert job["spec"]["suspend"] is True and world.get("ConceptAdapter", "sketch")["status"]["phase"] == "Queued"
        assert kueue.unsuspended_by_others() == []
        await op.kube.close()

    try:
        run(scenario)
    finally:
        kueue.close()


def test_the_namespace_default_queue_applies_and_a_suspended_spec_queues_nothing(world: World) -> None:
    world.create("ConceptAdapter", "sketch", adapter_spec(world, suspend=True))
    cluster = ClusterDefaults(kueue=KueueDefaults(default_queues={world.ns: "ns-default"}))

    async def scenario() -> None:
        op = world.reconciler(cluster=cluster)
        await op.reconcile(ADAPTER, world.ns, "sketch", "create")
        assert world.rayjobs() == []  # Kueue would admit a suspended RayJob: none while spec.suspend
        assert world.get("ConceptAdapter", "sketch")["status"]["phase"] == "Suspended"
        world.patch("ConceptAdapter", "sketch", {"spec": {"suspend": False}})
        await op.reconcile(ADAPTER, world.ns, "sketch", "update")
        (job,) = world.rayjobs()
        assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "ns-default" and job["spec"]["suspend"] is True
        await op.kube.close()

    run(scenario)


# -- identity --------------------------------------------------------------------------------


def test_the_digest_ignores_defaults_a_release_adds() -> None:
    class NextRelease(ConceptAdapterSpec):
        """A later release: one more field, with a default."""

        warmup_steps: int = 10

    spec = {"concept": "pencil-sketch", "prompt": "sketch it", "search": {"trials": 2, "parallelTrials": 2}}
    meta = {"namespace": "ns", "name": "sketch", "uid": "u-1"}
    now = ConceptAdapterSpec.model_validate(spec).model_dump(mode="json", by_alias=True, exclude_defaults=True)
    later = NextRelease.model_validate(spec).model_dump(mode="json", by_alias=True, exclude_defaults=True)
    assert identity.inputs_digest(ADAPTER, meta, now, "") == identity.inputs_digest(ADAPTER, meta, later, "")
    # Spelling a default out is the same spec; a changed value, another UID or the retrain token is not.
    spelled = ConceptAdapterSpec.model_validate({**spec, "training": {"steps": 300}})
    assert identity.inputs_digest(ADAPTER, meta, spelled.model_dump(mode="json", by_alias=True, exclude_defaults=True), "") \
        == identity.inputs_digest(ADAPTER, meta, now, "")
    assert identity.inputs_digest(ADAPTER, {**meta, "uid": "u-2"}, now, "") != identity.inputs_digest(ADAPTER, meta, now, "")
    assert identity.inputs_digest(ADAPTER, meta, now, "1") != identity.inputs_digest(ADAPTER, meta, now, "")


def test_a_new_training_semantics_version_retrains(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.create("ConceptAdapter", "sketch", adapter_spec(world))

    async def scenario() -> None:
        op = world.reconciler()
        await op.reconcile(ADAPTER, world.ns, "sketch", "create")
        assert (await succeed(world, op, "sketch"))["status"]["phase"] == "Ready"
        await op.reconcile(ADAPTER, world.ns, "sketch", "resume")  # an operator upgrade without new semantics
        assert len(world.rayjobs()) == 1
        monkeypatch.setattr(identity, "TRAINING_SEMANTICS", identity.TRAINING_SEMANTICS + 1)
        await op.reconcile(ADAPTER, world.ns, "sketch", "resume")
        assert len(world.rayjobs()) == 1 and world.get("ConceptAdapter", "sketch")["status"]["phase"] == "Pending"
        await op.kube.close()

    run(scenario)


def test_a_retrain_reads_only_its_own_rayjobs_result(world: World) -> None:
    world.create("ConceptAdapter", "sketch", adapter_spec(world))

    async def scenario() -> None:
        op = world.reconciler()
        await op.reconcile(ADAPTER, world.ns, "sketch", "create")
        first = (await succeed(world, op, "sketch"))["status"]
        world.patch("ConceptAdapter", "sketch", {"metadata": {"annotations": {RETRAIN_ANNOTATION: "again"}}})
        await op.reconcile(ADAPTER, world.ns, "sketch", "update")
        st = world.get("ConceptAdapter", "sketch")["status"]
        assert st["progressKey"] != first["progressKey"] and st["rayJobName"] != first["rayJobName"]
        # The new job "succeeds" without writing a result: the old run's result is not taken for it.
        world.job_status(st["rayJobName"], jobDeploymentStatus="Complete", jobStatus="SUCCEEDED")
        await op.reconcile(ADAPTER, world.ns, "sketch", "rayjob")
        obj = world.get("ConceptAdapter", "sketch")
        assert obj["status"]["phase"] == "Failed" and cond(obj, "Stalled")["reason"] == "ResultMissing"
        await op.kube.close()

    run(scenario)


def test_a_recreated_resource_is_a_new_run(world: World) -> None:
    world.create("ConceptAdapter", "sketch", adapter_spec(world))

    async def scenario() -> None:
        op = world.reconciler()
        await op.reconcile(ADAPTER, world.ns, "sketch", "create")
        old = world.get("ConceptAdapter", "sketch")
        world.request("DELETE", API.format(ns=world.ns, plural="conceptadapters") + "/sketch")
        world.create("ConceptAdapter", "sketch", adapter_spec(world))
        await op.reconcile(ADAPTER, world.ns, "sketch", "create")
        st = world.get("ConceptAdapter", "sketch")["status"]
        assert st["rayJobName"] != old["status"]["rayJobName"] and st["progressKey"] != old["status"]["progressKey"]
        await op.kube.close()

    run(scenario)


def test_a_rayjob_of_another_resource_is_not_adopted(world: World) -> None:
    world.create("ConceptAdapter", "sketch", adapter_spec(world))

    async def scenario() -> None:
        op = world.reconciler()
        await op.reconcile(ADAPTER, world.ns, "sketch", "create")
        (job,) = world.rayjobs()
        refs = [{**job["metadata"]["ownerReferences"][0], "uid": "someone-else"}]
        world.request("PATCH", f"/apis/ray.io/v1/namespaces/{world.ns}/rayjobs/{job['metadata']['name']}",
                      {"metadata": {"ownerReferences": refs}}, patch=True)
        await op.reconcile(ADAPTER, world.ns, "sketch", "update")
        obj = world.get("ConceptAdapter", "sketch")
        assert cond(obj, "Stalled")["reason"] == "RayJobNotOwned" and "someone-else" in cond(obj)["message"]
        await op.kube.close()

    run(scenario)


# -- bases -----------------------------------------------------------------------------------


async def publish_base(world: World, op: Any, version: str, digest: str) -> None:
    st = world.get("ConceptBase", "studio")["status"]
    weights = f"{world.catalog_dir}/bases/studio/{version}/base.safetensors"
    world.catalog.write_progress(st["progressKey"], {"stage": "Done", "result": {"uri": weights, "version": version,
                                                                                 "digest": digest}})
    world.job_status(st["rayJobName"], jobDeploymentStatus="Complete", jobStatus="SUCCEEDED")
    await op.reconcile(BASE, world.ns, "studio", "rayjob")


def adapter_jobs(world: World, name: str) -> list[dict[str, Any]]:
    return [j for j in world.rayjobs() if j["metadata"]["labels"]["e2gan.dev/owner"] == name]


def test_pinned_bases_follow_only_when_asked_rate_limited_and_survive_deletion(world: World) -> None:
    base_spec = {"concepts": [{"concept": "winter", "prompt": "make it winter"}], "catalog": {"uri": str(world.catalog_dir)}}
    world.create("ConceptBase", "studio", base_spec)
    for name, follow in (("pinned", "pinned"), ("follow-a", "latest"), ("follow-b", "latest")):
        world.create("ConceptAdapter", name, adapter_spec(world, concept=name, base={"name": "studio", "follow": follow}))

    async def scenario() -> None:
        op = world.reconciler(base_follow_per_minute=1.0)
        await op.reconcile(BASE, world.ns, "studio", "create")
        await publish_base(world, op, "v1", "a" * 64)
        for name in ("pinned", "follow-a", "follow-b"):
            await op.reconcile(ADAPTER, world.ns, name, "update")
            assert (await succeed(world, op, name, concept=name))["status"]["phase"] == "Ready"
            assert world.get("ConceptAdapter", name)["status"]["base"]["version"] == "v1"
        jobs_before = {n: len(adapter_jobs(world, n)) for n in ("pinned", "follow-a", "follow-b")}

        # The base republishes: the pinned adapter stays; one follower retrains now, the other waits.
        world.patch("ConceptBase", "studio", {"spec": {"training": {"steps": 301}}})
        await op.reconcile(BASE, world.ns, "studio", "update")
        await publish_base(world, op, "v2", "b" * 64)
        for name in ("pinned", "follow-a", "follow-b"):
            await op.reconcile(ADAPTER, world.ns, name, "dependency")
        phases = {n: world.get("ConceptAdapter", n)["status"]["phase"] for n in ("pinned", "follow-a", "follow-b")}
        assert phases["pinned"] == "Ready" and len(adapter_jobs(world, "pinned")) == jobs_before["pinned"]
        assert sorted(phases[n] for n in ("follow-a", "follow-b")) == ["Pending", "Ready"]
        moved = next(n for n in ("follow-a", "follow-b") if phases[n] == "Pending")
        (job,) = adapter_jobs(world, moved)
        assert decode_spec(job["spec"]["entrypoint"])["base"]["weights"].endswith("/v2/base.safetensors")
        assert world.get("ConceptAdapter", moved)["status"]["base"]["version"] == "v2"

        # Deleting the base leaves Ready adapters Ready (nothing polls them, nothing retrains).
        world.request("DELETE", API.format(ns=world.ns, plural="conceptbases") + "/studio")
        for trigger in ("dependency", "update", "check"):
            await op.reconcile(ADAPTER, world.ns, "pinned", trigger)
        obj = world.get("ConceptAdapter", "pinned")
        assert obj["status"]["phase"] == "Ready" and cond(obj)["status"] == "True"
        assert len(adapter_jobs(world, "pinned")) == jobs_before["pinned"]
        await op.kube.close()

    run(scenario)


# -- ownership -------------------------------------------------------------------------------


@needs_ownership
def test_a_concept_owned_by_another_resource_stalls_concept_taken(world: World) -> None:
    world.create("ConceptAdapter", "first", adapter_spec(world))
    world.create("ConceptAdapter", "second", adapter_spec(world))

    async def scenario() -> None:
        op = world.reconciler()
        await op.reconcile(ADAPTER, world.ns, "first", "create")
        assert (await succeed(world, op, "first"))["status"]["phase"] == "Ready"
        await op.reconcile(ADAPTER, world.ns, "second", "create")
        obj = world.get("ConceptAdapter", "second")
        owner = owner_of(world.get("ConceptAdapter", "first")["metadata"])
        assert cond(obj, "Stalled")["reason"] == "ConceptTaken" and owner in cond(obj, "Stalled")["message"]
        assert [j["metadata"]["labels"]["e2gan.dev/owner"] for j in world.rayjobs()] == ["first"]
        await op.kube.close()

    run(scenario)


@needs_ownership
def test_deletion_removes_only_what_the_catalog_says_is_ours(world: World) -> None:
    world.create("ConceptAdapter", "mine", adapter_spec(world, deletionPolicy="Delete"))
    world.create("ConceptAdapter", "theirs", adapter_spec(world, concept="winter"))

    async def scenario() -> None:
        op = world.reconciler()
        for name, concept in (("mine", "pencil-sketch"), ("theirs", "winter")):
            await op.reconcile(ADAPTER, world.ns, name, "create")
            assert (await succeed(world, op, name, concept=concept))["status"]["phase"] == "Ready"
        mine = world.get("ConceptAdapter", "mine")
        # A forged status names the other resource's version: status is not trusted at deletion.
        forged = {**mine, "status": {**mine["status"], "versions": [{"concept": "winter", "version": "v1"}]}}
        await op.finalize(ADAPTER, forged, attempt=0)
        assert [e.concept for e in world.catalog.index()] == ["winter"]
        await op.kube.close()

    run(scenario)


# -- stored specs that no longer validate ----------------------------------------------------


def test_a_stored_spec_that_no_longer_validates(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    world.create("ConceptAdapter", "old", adapter_spec(world, deletionPolicy="Delete"))

    async def scenario() -> None:
        op = world.reconciler()
        stored = world.get("ConceptAdapter", "old")
        # As stored before a CRD upgrade: fields of the wrong type, an unknown one.
        broken = {**stored, "spec": {"concept": 7, "catalog": "s3://x", "deletionPolicy": ["Delete"], "gone": 1}}
        real_get = op.kube.get

        async def get(path: str) -> Any:
            return broken if path.endswith("/conceptadapters/old") else await real_get(path)

        monkeypatch.setattr(op.kube, "get", get)
        await op.reconcile(ADAPTER, world.ns, "old", "update")
        obj = world.get("ConceptAdapter", "old")
        assert obj["status"]["phase"] == "Failed" and cond(obj, "Stalled")["reason"] == "InvalidSpec"
        await op.finalize(ADAPTER, broken, attempt=0)  # deletion completes: no exception
        await op.finalize(ADAPTER, {"metadata": broken["metadata"], "spec": None, "status": "x"}, attempt=0)
        await op.kube.close()

    run(scenario)
    assert Reason.INVALID_SPEC in world.reasons("old")


# -- the RayJob watch ------------------------------------------------------------------------


def test_the_rayjob_watch_is_filtered_by_label_on_the_server(world: World) -> None:
    import asyncio

    import kopf

    from e2gan_operator.kube import KubeClient
    from e2gan_operator.watches import RayJobWatches

    seen: list[tuple[str, str]] = []

    class Recorder:
        """Stands in for the Reconciler: records which owners a RayJob change would reconcile."""

        async def reconcile(self, trainer: Any, namespace: str, name: str, trigger: str) -> None:
            seen.append((name, trigger))
            if len(seen) == 1:  # the API server times out once: retried, nothing polls a queued job
                raise TimeoutError("API server busy")

        def spawn(self, work: Any, what: str) -> None:
            asyncio.get_running_loop().create_task(work)

    jobs = f"/apis/ray.io/v1/namespaces/{world.ns}/rayjobs"

    def rayjob(name: str, labels: dict[str, str]) -> dict[str, Any]:
        return {"apiVersion": "ray.io/v1", "kind": "RayJob", "metadata": {"name": name, "labels": labels},
                "spec": {"entrypoint": "true"}}

    ours = {"app.kubernetes.io/managed-by": "e2gan-operator", "e2gan.dev/owner-kind": "conceptadapter",
            "e2gan.dev/owner": "sketch"}

    async def scenario() -> None:
        kube = KubeClient()
        kube.login(kopf.ConnectionInfo(server=world.api.url, token=world.api.server.token))
        verbs: list[str] = []
        kube.on_request = verbs.append
        watches = RayJobWatches(kube, Recorder(), timeout_s=5)  # type: ignore[arg-type]
        watches.ensure(world.ns)
        await until_async(lambda: "WATCH" in verbs)
        # Not managed by us (though it names an owner): only a server-side selector keeps it out.
        world.request("POST", jobs, rayjob("theirs", {"e2gan.dev/owner-kind": "conceptadapter", "e2gan.dev/owner": "intruder"}))
        world.request("POST", jobs, rayjob("ours", ours))
        await until_async(lambda: len(seen) >= 2)  # the failed one and its retry
        world.job_status("theirs", jobDeploymentStatus="Running")
        world.job_status("ours", jobDeploymentStatus="Running")
        await until_async(lambda: len(seen) >= 3)
        assert seen == [("sketch", "rayjob")] * 3
        await watches.stop()
        await kube.close()

    run(scenario)


async def until_async(check: Any, timeout: float = 10.0) -> Any:
    import asyncio

    end = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > end:
            raise AssertionError(f"timed out waiting for {check}")
        await asyncio.sleep(0.02)
    return check()
