"""The Reconciler against the emulated API server (real HTTP, our CRD schemas, KubeRay's RayJob CRD)
and a real local catalog; KubeRay's part is played by writing RayJob status by hand."""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import kopf
import pytest

from catalog import Catalog, open_catalog
from catalog.samples import SAMPLE_BASE_DIGEST, make_adapter
from e2gan_api.status import ConceptAdapterStatus
from e2gan_operator.catalogs import Catalogs
from e2gan_operator.kube import ApiError, KubeClient
from e2gan_operator.metrics import Metrics
from e2gan_operator.rayjob import ADAPTER, BASE, RETRAIN_ANNOTATION, decode_spec
from e2gan_operator.reasons import Reason
from e2gan_operator.reconcile import Reconciler, RetryLater, owner_of
from e2gan_operator.settings import OperatorSettings
from tests.harness.kuberay_standin import KUBERAY_CRD

if TYPE_CHECKING:
    from tests.harness.fixtures import KubeApi

pytest_plugins = ["tests.harness.fixtures"]

API = "/apis/e2gan.dev/v1alpha1/namespaces/{ns}/{plural}"
RAYJOBS = "/apis/ray.io/v1/namespaces/{ns}/rayjobs"
# The catalog records owners (issue 13); until that lands, ownership tests cannot run.
OWNERSHIP = hasattr(Catalog, "series_owner")
needs_ownership = pytest.mark.skipif(not OWNERSHIP, reason="needs the catalog's series ownership (issue 13)")


class World:
    """The emulated cluster, a local catalog and a Reconciler, for one test namespace."""

    def __init__(self, kube_api: KubeApi, ns: str, catalog_dir: Path) -> None:
        self.api, self.ns, self.catalog_dir = kube_api, ns, catalog_dir
        self.catalog = open_catalog(catalog_dir)
        self.events: list[tuple[str, Reason, str]] = []
        self.metrics = Metrics()

    def reconciler(self, **settings: Any) -> Reconciler:
        """A fresh operator (as after a restart): new client, new caches, same metrics."""
        kube = KubeClient()
        kube.login(kopf.ConnectionInfo(server=self.api.url, token=self.api.server.token))
        # Local catalogs are refused unless under a configured root: this test's folder.
        base = OperatorSettings(**settings).with_catalog_env({"E2GAN_LOCAL_CATALOG_ROOTS": str(self.catalog_dir.parent)})
        return Reconciler(kube, Catalogs(), base, self.metrics,
                          lambda body, reason, msg: self.events.append((body["metadata"]["name"], reason, msg)))

    def request(self, method: str, path: str, body: Any = None, patch: bool = False) -> Any:
        status, _, answer = self.api.request(
            method, path, body, content_type="application/merge-patch+json" if patch else "application/json"
        )
        assert status < 300, answer
        return answer

    def create(self, kind: str, name: str, spec: dict[str, Any], **meta: Any) -> dict[str, Any]:
        plural = kind.lower() + "s"
        body = {"apiVersion": "e2gan.dev/v1alpha1", "kind": kind, "metadata": {"name": name, **meta}, "spec": spec}
        return self.request("POST", API.format(ns=self.ns, plural=plural), body)

    def get(self, kind: str, name: str) -> dict[str, Any]:
        return self.request("GET", API.format(ns=self.ns, plural=kind.lower() + "s") + f"/{name}")

    def patch(self, kind: str, name: str, patch: dict[str, Any]) -> None:
        self.request("PATCH", API.format(ns=self.ns, plural=kind.lower() + "s") + f"/{name}", patch, patch=True)

    def rayjobs(self) -> list[dict[str, Any]]:
        return self.request("GET", RAYJOBS.format(ns=self.ns))["items"]

    def job_status(self, name: str, **status: Any) -> None:
        self.request("PATCH", RAYJOBS.format(ns=self.ns) + f"/{name}/status", {"status": status}, patch=True)

    def publish(self, concept: str, seed: int = 0, owner: str | None = None) -> dict[str, Any]:
        """Publish as the job of resource `owner` (a name here) would: its catalog owner string."""
        folder = self.catalog_dir.parent / f"adapter-{concept}-{seed}"
        make_adapter(folder, concept, seed=seed)
        who = owner_of(self.get("ConceptAdapter", owner)["metadata"]) if owner else None
        extra = {"owner": who} if OWNERSHIP and who else {}
        entry = self.catalog.publish(folder, base_digest=SAMPLE_BASE_DIGEST, concept=concept, **extra)
        return entry.model_dump(mode="json")

    def reasons(self, name: str) -> list[Reason]:
        return [r for n, r, _ in self.events if n == name]


def cond(obj: dict[str, Any], kind: str = "Ready") -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == kind)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout=60))


async def until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll `check` (off the loop's back: background reconciles run meanwhile) until it is truthy."""
    end = asyncio.get_running_loop().time() + timeout
    while True:
        value = check()
        if value:
            return value
        if asyncio.get_running_loop().time() > end:
            raise AssertionError(f"timed out waiting for {check}")
        await asyncio.sleep(0.02)


@pytest.fixture
def world(e2gan_crds: KubeApi, kube_namespace: str, tmp_path: Path) -> World:
    return World(e2gan_crds, kube_namespace, tmp_path / "catalog")


def adapter_spec(world: World, **extra: Any) -> dict[str, Any]:
    return {"concept": "pencil-sketch", "prompt": "sketch it", "catalog": {"uri": str(world.catalog_dir)}, **extra}


def test_one_rayjob_per_spec_even_across_restarts(world: World) -> None:
    world.create("ConceptAdapter", "sketch", adapter_spec(world), labels={"kueue.x-k8s.io/queue-name": "q1"})

    async def scenario() -> None:
        first = world.reconciler()
        await first.reconcile(ADAPTER, world.ns, "sketch", "update")
        (job,) = world.rayjobs()
        obj = world.get("ConceptAdapter", "sketch")
        st = obj["status"]
        assert st["phase"] == "Queued" and st["rayJobName"] == job["metadata"]["name"]
        assert st["rayJobUid"] == job["metadata"]["uid"]
        assert st["progressKey"] == job["metadata"]["annotations"]["e2gan.dev/progress-key"]
        assert st["observedGeneration"] == obj["metadata"]["generation"] and st["progressKey"].startswith(f"{world.ns}/sketch/")
        assert cond(obj, "Reconciling")["status"] == "True" and cond(obj)["reason"] == "Queued"
        assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "q1" and job["spec"]["suspend"] is True
        assert job["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
        assert decode_spec(job["spec"]["entrypoint"])["concept"] == "pencil-sketch"

        # Again: nothing new, and the status is not even rewritten.
        version = obj["metadata"]["resourceVersion"]
        await first.reconcile(ADAPTER, world.ns, "sketch", "poll")
        assert world.get("ConceptAdapter", "sketch")["metadata"]["resourceVersion"] == version
        # The operator died after creating the RayJob, before writing the status: a new one adopts it.
        world.request("PATCH", API.format(ns=world.ns, plural="conceptadapters") + "/sketch/status",
                      {"status": None}, patch=True)
        await world.reconciler().reconcile(ADAPTER, world.ns, "sketch", "update")
        assert len(world.rayjobs()) == 1
        assert world.get("ConceptAdapter", "sketch")["status"]["rayJobName"] == job["metadata"]["name"]
        await first.kube.close()

    run(scenario)
    assert world.metrics.rayjobs_created.labels("ConceptAdapter")._value.get() == 1
    assert world.metrics.rayjobs_adopted.labels("ConceptAdapter")._value.get() == 1
    assert world.reasons("sketch") == [Reason.RAYJOB_CREATED, Reason.QUEUED, Reason.RAYJOB_ADOPTED, Reason.QUEUED]


def test_progress_then_publication_then_a_new_spec(world: World) -> None:
    world.create("ConceptAdapter", "sketch", adapter_spec(world))

    async def scenario() -> None:
        op = world.reconciler()
        await op.reconcile(ADAPTER, world.ns, "sketch", "update")
        st = world.get("ConceptAdapter", "sketch")["status"]
        job, key = st["rayJobName"], st["progressKey"]

        world.job_status(job, jobDeploymentStatus="Running", jobStatus="RUNNING")
        world.catalog.write_progress(key, {"stage": "Searching", "percent": 40, "trialsDone": 1, "trialsTotal": 2,
                                           "bestRanks": {"up1": 8, "up2": 4}, "message": "2 rank patterns"})
        await op.reconcile(ADAPTER, world.ns, "sketch", "rayjob")
        obj = world.get("ConceptAdapter", "sketch")
        st = obj["status"]
        assert (st["phase"], st["stage"], st["trials"], st["ranks"]) == ("Running", "Searching", "1/2", "8/4")
        assert st["progress"]["percent"] == 40 and cond(obj)["message"] == "Searching 40%: 2 rank patterns"

        entry = world.publish("pencil-sketch", owner="sketch")
        world.catalog.write_progress(key, {"stage": "Done", "percent": 100, "trialsDone": 2, "trialsTotal": 2,
                                           "bestRanks": {"up1": 4}, "result": entry})
        world.job_status(job, jobDeploymentStatus="Complete", jobStatus="SUCCEEDED")
        await op.reconcile(ADAPTER, world.ns, "sketch", "rayjob")
        obj = world.get("ConceptAdapter", "sketch")
        st = obj["status"]
        assert st["phase"] == "Ready" and st["stage"] == "Done" and cond(obj)["status"] == "True"
        assert st["published"] == {"uri": entry["uri"], "version": "v1", "digest": entry["digest"],
                                   "baseDigest": SAMPLE_BASE_DIGEST}
        assert st["fidelity"] == "20.00 dB" and st["ranks"] == "4" and st["metrics"] == {"psnr": 20.0}
        assert st["versions"] == [{"concept": "pencil-sketch", "version": "v1", "baseDigest": SAMPLE_BASE_DIGEST}]
        assert cond(obj)["message"] == "published pencil-sketch v1 (20.00 dB)"
        # What the operator writes is what e2gan_api.status describes (extra fields would be pruned).
        assert ConceptAdapterStatus.model_validate(st).model_dump(by_alias=True, exclude_unset=True) == st

        # Re-applying the same spec, or changing what does not train, never retrains.
        world.patch("ConceptAdapter", "sketch", {"spec": {"deletionPolicy": "Delete", "prompt": "sketch it"}})
        await op.reconcile(ADAPTER, world.ns, "sketch", "update")
        obj = world.get("ConceptAdapter", "sketch")
        assert len(world.rayjobs()) == 1 and obj["status"]["phase"] == "Ready"
        assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"] == 2

        # A changed spec trains a new version; the old job goes, the published version stays listed.
        world.patch("ConceptAdapter", "sketch", {"spec": {"prompt": "a finer sketch"}})
        await op.reconcile(ADAPTER, world.ns, "sketch", "update")
        (new_job,) = world.rayjobs()
        st = world.get("ConceptAdapter", "sketch")["status"]
        assert new_job["metadata"]["name"] != job and st["rayJobName"] == new_job["metadata"]["name"]
        assert st["phase"] == "Pending" and st["published"]["version"] == "v1" and st["progressKey"] != key
        await op.kube.close()

    run(scenario)
    assert world.reasons("sketch") == [Reason.RAYJOB_CREATED, Reason.STAGE_CHANGED, Reason.PUBLISHED,
                                       Reason.RAYJOB_CREATED, Reason.RAYJOB_SUPERSEDED]


def test_ready_means_listed_in_the_catalog(world: World) -> None:
    world.create("ConceptAdapter", "sketch", adapter_spec(world))

    async def scenario() -> None:
        # Checks share one index read per half check interval: with no interval, every check reads.
        op = world.reconciler(catalog_check_seconds=0.0)
        await op.reconcile(ADAPTER, world.ns, "sketch", "update")
        st = world.get("ConceptAdapter", "sketch")["status"]
        world.catalog.write_progress(st["progressKey"], {"stage": "Done", "result": world.publish("pencil-sketch", owner="sketch")})
        world.job_status(st["rayJobName"], jobDeploymentStatus="Complete", jobStatus="SUCCEEDED")
        await op.reconcile(ADAPTER, world.ns, "sketch", "rayjob")
        await op.reconcile(ADAPTER, world.ns, "sketch", "check")
        assert world.get("ConceptAdapter", "sketch")["status"]["phase"] == "Ready"
        world.catalog.delete("pencil-sketch")  # someone removed it behind the operator's back
        # The periodic check works from the body the watch delivered (no GET of its own).
        await op.reconcile(ADAPTER, world.ns, "sketch", "check", world.get("ConceptAdapter", "sketch"))
        obj = world.get("ConceptAdapter", "sketch")
        assert obj["status"]["phase"] == "Failed" and cond(obj, "Stalled")["reason"] == "VersionMissing"
        assert RETRAIN_ANNOTATION in cond(obj, "Stalled")["message"]
        # The retrain annotation trains it again.
        world.patch("ConceptAdapter", "sketch", {"metadata": {"annotations": {RETRAIN_ANNOTATION: "1"}}})
        await op.reconcile(ADAPTER, world.ns, "sketch", "update")
        assert len(world.rayjobs()) == 1 and world.get("ConceptAdapter", "sketch")["status"]["phase"] == "Pending"
        await op.kube.close()

    run(scenario)


def test_failure_stalls_with_the_jobs_reason_and_never_retrains_by_itself(world: World) -> None:
    world.create("ConceptAdapter", "sketch", adapter_spec(world, teacher={"name": "no-such-teacher"}))

    async def scenario() -> None:
        op = world.reconciler()
        await op.reconcile(ADAPTER, world.ns, "sketch", "update")
        st = world.get("ConceptAdapter", "sketch")["status"]
        world.catalog.write_progress(st["progressKey"], {"stage": "Failed",
                                                         "message": "teacher: unknown procedural teacher 'no-such-teacher'"})
        world.job_status(st["rayJobName"], jobDeploymentStatus="Failed", jobStatus="FAILED", reason="AppFailed",
                         message="Job entrypoint command failed with exit code 2")
        await op.reconcile(ADAPTER, world.ns, "sketch", "rayjob")
        obj = world.get("ConceptAdapter", "sketch")
        stalled = cond(obj, "Stalled")
        assert obj["status"]["phase"] == "Failed" and stalled["status"] == "True" and stalled["reason"] == "TrainingFailed"
        assert "unknown procedural teacher 'no-such-teacher'" in stalled["message"] and "(AppFailed)" in stalled["message"]
        # The RayJob is cleaned up (TTL, a person): an unchanged spec is not trained again.
        world.request("DELETE", RAYJOBS.format(ns=world.ns) + f"/{st['rayJobName']}")
        for _ in range(3):
            await op.reconcile(ADAPTER, world.ns, "sketch", "poll")
        assert world.rayjobs() == [] and world.get("ConceptAdapter", "sketch")["status"]["phase"] == "Failed"
        await op.kube.close()

    run(scenario)
    assert world.reasons("sketch").count(Reason.TRAINING_FAILED) == 1


def test_suspend_is_passed_through(world: World) -> None:
    world.create("ConceptAdapter", "sketch", adapter_spec(world, suspend=True))

    async def scenario() -> None:
        op = world.reconciler()
        await op.reconcile(ADAPTER, world.ns, "sketch", "update")
        (job,) = world.rayjobs()
        assert job["spec"]["suspend"] is True
        assert world.get("ConceptAdapter", "sketch")["status"]["phase"] == "Suspended"
        world.patch("ConceptAdapter", "sketch", {"spec": {"suspend": False}})
        await op.reconcile(ADAPTER, world.ns, "sketch", "update")
        (job,) = world.rayjobs()
        assert job["spec"]["suspend"] is False
        assert world.get("ConceptAdapter", "sketch")["status"]["phase"] == "Pending"
        await op.kube.close()

    run(scenario)
    assert Reason.RESUMED in world.reasons("sketch")


def test_specs_the_operator_cannot_train_stall_without_a_rayjob(world: World) -> None:
    world.create("ConceptAdapter", "relative", {"concept": "x", "prompt": "p", "catalog": {"uri": "./catalog"}})

    async def scenario() -> None:
        op = world.reconciler()
        for _ in range(2):
            await op.reconcile(ADAPTER, world.ns, "relative", "update")
        obj = world.get("ConceptAdapter", "relative")
        assert obj["status"]["phase"] == "Failed" and cond(obj, "Stalled")["reason"] == "InvalidSpec"
        assert "catalog.uri" in cond(obj, "Stalled")["message"] and world.rayjobs() == []
        await op.kube.close()

    run(scenario)
    assert world.reasons("relative") == [Reason.INVALID_SPEC]


def test_an_unknown_runtime_profile_stalls_naming_the_field_without_a_rayjob(world: World) -> None:
    spec = {"concept": "x", "prompt": "p", "catalog": {"uri": str(world.catalog_dir)}, "runtime": {"profile": "nope"}}
    world.create("ConceptAdapter", "unprofiled", spec)

    async def scenario() -> None:
        op = world.reconciler()  # no profiles are configured
        for _ in range(2):
            await op.reconcile(ADAPTER, world.ns, "unprofiled", "update")
        obj = world.get("ConceptAdapter", "unprofiled")
        assert obj["status"]["phase"] == "Failed" and cond(obj, "Stalled")["reason"] == "InvalidSpec"
        assert cond(obj, "Stalled")["message"] == "spec.runtime.profile: unknown profile 'nope' (known: none are configured)"
        assert world.rayjobs() == []
        await op.kube.close()

    run(scenario)
    assert world.reasons("unprofiled") == [Reason.INVALID_SPEC]


def test_adapter_waits_for_its_base_and_trains_from_its_weights(world: World) -> None:
    world.create("ConceptAdapter", "blueprint", adapter_spec(world, base={"name": "studio"}))

    async def scenario() -> None:
        op = world.reconciler()
        await op.reconcile(ADAPTER, world.ns, "blueprint", "update")
        obj = world.get("ConceptAdapter", "blueprint")
        assert cond(obj, "Stalled")["reason"] == "BaseNotFound" and "ConceptBase 'studio'" in cond(obj)["message"]

        base_spec = {"concepts": [{"concept": "winter", "prompt": "make it winter"}], "catalog": {"uri": str(world.catalog_dir)}}
        world.create("ConceptBase", "studio", base_spec)
        await op.reconcile(BASE, world.ns, "studio", "update")
        await op.reconcile(ADAPTER, world.ns, "blueprint", "poll")
        assert cond(world.get("ConceptAdapter", "blueprint"))["reason"] == "WaitingForBase"
        (base_job,) = world.rayjobs()
        assert shlex.split(base_job["spec"]["entrypoint"])[:2] == ["e2gan", "base"]

        st = world.get("ConceptBase", "studio")["status"]
        weights = f"{world.catalog_dir}/bases/studio/v1/base.safetensors"
        world.catalog.write_progress(st["progressKey"], {"stage": "Done", "result": {
            "uri": weights, "version": "v1", "digest": "c" * 64, "metrics": {"psnr": 18.25}}})
        world.job_status(base_job["metadata"]["name"], jobDeploymentStatus="Complete", jobStatus="SUCCEEDED")
        await op.reconcile(BASE, world.ns, "studio", "rayjob")  # wakes the adapter
        await until(lambda: any(j["metadata"]["labels"]["e2gan.dev/owner"] == "blueprint" for j in world.rayjobs()))
        base = world.get("ConceptBase", "studio")
        assert base["status"]["phase"] == "Ready" and base["status"]["concepts"] == 1
        assert base["status"]["fidelity"] == "18.25 dB"
        jobs = [j for j in world.rayjobs() if j["metadata"]["labels"]["e2gan.dev/owner"] == "blueprint"]
        assert len(jobs) == 1 and decode_spec(jobs[0]["spec"]["entrypoint"])["base"]["weights"] == weights
        await op.kube.close()

    run(scenario)


@needs_ownership
def test_deletion_policy(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # The failing store below is a closed port on loopback: nothing leaves the machine.
    monkeypatch.setenv("E2GAN_S3_ENDPOINT", "127.0.0.1:9")
    monkeypatch.setenv("E2GAN_S3_SECURE", "false")
    monkeypatch.setenv("E2GAN_S3_RETRIES", "0")
    world.create("ConceptAdapter", "keep", adapter_spec(world))
    world.create("ConceptAdapter", "drop", adapter_spec(world, concept="winter", deletionPolicy="Delete"))

    async def publish(op: Reconciler, name: str, concept: str) -> dict[str, Any]:
        await op.reconcile(ADAPTER, world.ns, name, "update")
        st = world.get("ConceptAdapter", name)["status"]
        world.catalog.write_progress(st["progressKey"], {"stage": "Done", "result": world.publish(concept, owner=name)})
        world.job_status(st["rayJobName"], jobDeploymentStatus="Complete", jobStatus="SUCCEEDED")
        await op.reconcile(ADAPTER, world.ns, name, "rayjob")
        return world.get("ConceptAdapter", name)

    async def scenario() -> None:
        op = world.reconciler()
        keep, drop = await publish(op, "keep", "pencil-sketch"), await publish(op, "drop", "winter")
        assert keep["status"]["phase"] == drop["status"]["phase"] == "Ready"
        await op.finalize(ADAPTER, keep, attempt=0)
        await op.finalize(ADAPTER, drop, attempt=0)
        assert [e.concept for e in world.catalog.index()] == ["pencil-sketch"]
        assert world.rayjobs() == [j for j in world.rayjobs() if j["metadata"]["labels"]["e2gan.dev/owner"] == "keep"]

        # A store that fails: retried with back-off, then released with a warning (never pinned forever).
        broken = {**drop, "spec": {**drop["spec"], "catalog": {"uri": "s3://nowhere-bucket/x"}}}
        with pytest.raises(RetryLater):
            await op.finalize(ADAPTER, broken, attempt=0)
        await op.finalize(ADAPTER, broken, attempt=op.settings.delete_retries)
        await op.kube.close()

    run(scenario)
    assert Reason.VERSIONS_RETAINED in world.reasons("keep") and Reason.VERSIONS_DELETED in world.reasons("drop")
    assert world.reasons("drop")[-2:] == [Reason.DELETE_FAILED, Reason.DELETE_FAILED]


@pytest.mark.skipif(not KUBERAY_CRD.is_file(), reason=f"needs KubeRay's real RayJob CRD at {KUBERAY_CRD}")
def test_a_refused_rayjob_stalls_with_the_api_servers_reason(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    import e2gan_operator.reconcile as reconcile_module

    real = reconcile_module.build_rayjob

    def broken(**kwargs: Any) -> dict[str, Any]:
        job = real(**kwargs)
        job["spec"]["backoffLimit"] = "twice"  # KubeRay's schema wants an integer: 422
        return job

    monkeypatch.setattr(reconcile_module, "build_rayjob", broken)
    world.create("ConceptAdapter", "sketch", adapter_spec(world))

    async def scenario() -> None:
        op = world.reconciler()
        await op.reconcile(ADAPTER, world.ns, "sketch", "create")
        obj = world.get("ConceptAdapter", "sketch")
        stalled = cond(obj, "Stalled")
        assert obj["status"]["phase"] == "Failed" and stalled["reason"] == "ApiError"
        assert "refused by validation" in stalled["message"] and "backoffLimit" in stalled["message"]
        await op.kube.close()

    run(scenario)


def test_client_logs_in_again_after_a_401(world: World) -> None:
    expired = kopf.ConnectionInfo(server=world.api.url, token="expired-token")
    fresh = kopf.ConnectionInfo(server=world.api.url, token=world.api.server.token)
    path = API.format(ns=world.ns, plural="conceptadapters") + "/nothing"

    async def scenario() -> None:
        kube = KubeClient()
        kube.login(expired)
        with pytest.raises(ApiError) as refused:  # the server does refuse the expired token
            await kube.get(path)
        assert refused.value.status == 401
        relogins: list[kopf.ConnectionInfo] = []
        kube.relogin = lambda: relogins.append(fresh) or fresh
        assert await kube.get(path) is None  # 404 with the new token: the 401 was retried once
        assert relogins == [fresh]
        assert await kube.get(path) is None and relogins == [fresh]  # the new token is kept
        await kube.close()

        # Credentials that did not change cannot help: the 401 goes to the caller, not round again.
        stuck = KubeClient()
        stuck.login(expired)
        stuck.relogin = lambda: relogins.append(expired) or expired
        with pytest.raises(ApiError) as again:
            await stuck.get(path)
        assert again.value.status == 401 and relogins == [fresh, expired]
        await stuck.close()

    run(scenario)
