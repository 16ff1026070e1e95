"""Benchmark the operator against the emulated Kubernetes API (no trainer runs: RayJobs stay pending).

    python bench/operator.py [--quick] [--resources 1000] [--samples 40] [--entries 10000] [--window 120]

1. apply → RayJob created: ConceptAdapters applied one at a time; the time from the POST to the
   RayJob's ADDED event on a watch, p50 and p95 (target p50 ≤ 100 ms);
2. a burst: N resources applied at once; all must get exactly one RayJob (none missing, none
   doubled, the create handler run once each, no adoption conflicts) and a status;
3. the operator's peak resident memory (target ≤ 150 MB);
4. steady state (issue 12): the burst's resources (1 000 by default) all Ready, their catalog holding
   10 000 versions: API requests/s, catalog reads/s and RSS over a quiet window (targets ≤ 5 API
   req/s, ≤ 1 catalog req/s, ≤ 200 MB). Ready checks run every --check-seconds (60) so the window
   sees them; the catalog rate is also given at the operator's default interval (it scales with
   1/interval). A catalog read is one series' `versions()`: LISTs of adapters/ and of each base
   folder holding the concept, a LIST of the series and a GET of its index.json.

The emulated API server and the operator (`kopf run -m e2gan_operator.main`) each run in their
own process on 127.0.0.1. The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Run as a script, this folder comes first on sys.path; the stdlib `operator` must not be shadowed.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)
sys.path[:0] = [str(REPO), str(REPO / "operator")]

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import urllib.error  # noqa: E402
import urllib.request  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from typing import Any  # noqa: E402

import yaml  # noqa: E402

from e2gan_operator.settings import OperatorSettings  # noqa: E402
from tests.harness.fixtures import start_kube_api_process  # noqa: E402
from tests.harness.kuberay_standin import KUBERAY_CRD, rayjob_crd  # noqa: E402
from tests.operator.process import start_operator  # noqa: E402

NS = "bench"
TARGET_P50_MS = 100.0
TARGET_MEMORY_MB = 150.0
TARGET_STEADY_API = 5.0
TARGET_STEADY_CATALOG = 1.0
TARGET_STEADY_MB = 200.0


class Api:
    """Plain HTTP to the emulated API server (the bench's own client, independent of the operator's)."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token

    def request(self, method: str, path: str, body: Any = None, timeout: float = 60) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        kind = "application/merge-patch+json" if method == "PATCH" else "application/json"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Content-Type": kind, "Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()


class RayJobWatch:
    """Records when each RayJob is first seen (ADDED) on a watch stream, keyed by its owner's name."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.seen: dict[str, float] = {}
        self.added: dict[str, int] = {}
        self._cond = threading.Condition()
        threading.Thread(target=self._run, daemon=True, name="rayjob-watch").start()

    def _run(self) -> None:
        status, listing = self.api.request("GET", f"/apis/ray.io/v1/namespaces/{NS}/rayjobs")
        version = listing["metadata"]["resourceVersion"]
        req = urllib.request.Request(
            f"{self.api.url}/apis/ray.io/v1/namespaces/{NS}/rayjobs?watch=true&resourceVersion={version}"
            "&timeoutSeconds=3600", headers={"Authorization": f"Bearer {self.api.token}"})
        with urllib.request.urlopen(req, timeout=3600) as stream:
            for line in stream:
                now = time.perf_counter()
                event = json.loads(line)
                if event.get("type") != "ADDED":
                    continue
                owner = event["object"]["metadata"]["labels"]["e2gan.dev/owner"]
                with self._cond:
                    self.seen.setdefault(owner, now)
                    self.added[owner] = self.added.get(owner, 0) + 1
                    self._cond.notify_all()

    def wait(self, names: set[str], timeout: float) -> bool:
        end = time.monotonic() + timeout
        with self._cond:
            while not names <= self.seen.keys():
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True


def adapter(name: str, catalog: str) -> dict[str, Any]:
    # One concept per resource: a catalog series has one owner.
    return {"apiVersion": "e2gan.dev/v1alpha1", "kind": "ConceptAdapter", "metadata": {"name": name},
            "spec": {"concept": f"c-{name}", "prompt": f"sketch {name}", "catalog": {"uri": catalog}}}


def seed_catalog(catalog: str, owners: dict[str, str], entries: int) -> dict[str, dict[str, Any]]:
    """A catalog of `entries` published versions: one per resource (owned by it, as its job would
    publish it), the rest filler series of five versions each. Real publishes through the
    catalog's public API. Returns each resource's entry as its job's result."""
    from catalog import open_catalog
    from catalog.samples import SAMPLE_BASE_DIGEST, make_adapter

    cat = open_catalog(catalog)
    work = Path(tempfile.mkdtemp(prefix="e2gan-bench-adapters-"))
    results: dict[str, dict[str, Any]] = {}
    started = time.monotonic()
    for name, owner in sorted(owners.items()):
        folder = work / f"c-{name}"
        make_adapter(folder, concept=f"c-{name}", seed=0, weight_bytes=256, onnx_bytes=128)
        entry = cat.publish(folder, base_digest=SAMPLE_BASE_DIGEST, concept=f"c-{name}", owner=owner)
        results[name] = {"uri": entry.uri, "version": entry.version, "digest": entry.digest}
    for i in range(max(0, entries - len(owners))):
        concept = f"filler-{i // 5}"
        folder = work / f"{concept}-{i % 5}"
        make_adapter(folder, concept=concept, seed=i % 5, weight_bytes=256, onnx_bytes=128)
        cat.publish(folder, base_digest=SAMPLE_BASE_DIGEST, concept=concept, owner="bench:filler")
    print(f"catalog seeded: {entries} versions in {time.monotonic() - started:.1f} s", flush=True)
    cat.close()
    return results


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples and a 50-resource burst (≈30 s)")
    parser.add_argument("--samples", type=int, help="sequential applies for the latency figures (default 40, quick 15)")
    parser.add_argument("--resources", type=int, help="resources applied at once (default 1000, quick 50)")
    parser.add_argument("--entries", type=int, help="catalog index entries in steady state (default 10000, quick 500)")
    parser.add_argument("--window", type=float, help="seconds of the steady-state window (default 120, quick 15)")
    parser.add_argument("--check-seconds", type=float, default=60.0,
                        help="E2GAN_CATALOG_CHECK_SECONDS of the operator (default 60: five times the "
                        "production rate of Ready checks, so the window sees each resource check twice)")
    args = parser.parse_args(argv)
    samples = args.samples or (15 if args.quick else 40)
    burst = args.resources or (50 if args.quick else 1000)
    entries = args.entries or (500 if args.quick else 10_000)
    window = args.window or (15.0 if args.quick else 120.0)

    work = Path(tempfile.mkdtemp(prefix="e2gan-bench-"))
    kube = start_kube_api_process(work / "kubeconfig")
    op = None
    try:
        token = yaml.safe_load((work / "kubeconfig").read_text())["users"][0]["user"]["token"]
        api = Api(kube.url, token)
        crds = [yaml.safe_load(p.read_text()) for p in sorted((REPO / "crds").glob("*.yaml"))] + [rayjob_crd()]
        for crd in crds:
            status, body = api.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
            assert status == 201, body
        assert api.request("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})[0] == 201
        catalog = str(work / "catalog")
        watch = RayJobWatch(api)
        op = start_operator(work / "kubeconfig", [NS], work / "operator.log",
                            env={"E2GAN_LOG_FORMAT": "json", "E2GAN_S3_ENDPOINT": "127.0.0.1:9",
                                 "E2GAN_LOCAL_CATALOG_ROOTS": str(work),
                                 "E2GAN_CATALOG_CHECK_SECONDS": str(args.check_seconds)})
        print(f"emulator {kube.url}; operator pid {op.pid}; RayJob schema: "
              f"{'KubeRay CRD' if KUBERAY_CRD.is_file() else 'minimal stand-in'}", flush=True)

        # 1. Latency, one resource at a time (a warm-up first: imports, connections, discovery).
        latencies = []
        for i in range(samples + 1):
            name = f"lat-{i}"
            start = time.perf_counter()
            status, body = api.request("POST", f"/apis/e2gan.dev/v1alpha1/namespaces/{NS}/conceptadapters",
                                       adapter(name, catalog))
            assert status == 201, body
            if not watch.wait({name}, timeout=30):
                raise RuntimeError(f"no RayJob for {name} within 30 s; operator log:\n{op.log()[-3000:]}")
            if i:
                latencies.append((watch.seen[name] - start) * 1000)
        p50, p95 = statistics.median(latencies), percentile(latencies, 0.95)
        print(f"apply → RayJob: p50 {p50:.1f} ms, p95 {p95:.1f} ms over {len(latencies)} applies", flush=True)
        # The counters move when a reconcile ends (after its status write): let the last one finish.
        settle = time.monotonic() + 30
        while op.metric("e2gan_operator_reconciles_total", trigger="create") < samples + 1:
            if time.monotonic() > settle:
                raise RuntimeError("create handlers of the latency phase did not finish")
            time.sleep(0.05)
        created_before = op.metric("e2gan_operator_rayjobs_created_total")
        creates_before = op.metric("e2gan_operator_reconciles_total", trigger="create")
        updates_before = op.metric("e2gan_operator_reconciles_total", trigger="update")

        # 2. Burst: every resource at once.
        names = {f"burst-{i:04d}" for i in range(burst)}
        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(lambda n: api.request(
                "POST", f"/apis/e2gan.dev/v1alpha1/namespaces/{NS}/conceptadapters", adapter(n, catalog)), sorted(names)))
        assert all(status == 201 for status, _ in results), [b for s, b in results if s != 201][:3]
        applied = time.perf_counter() - start
        all_seen = watch.wait(names, timeout=300)
        burst_seconds = max(watch.seen[n] for n in names if n in watch.seen) - start
        # Let status writes and the RayJob-triggered reconciles settle, then count.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            _, listing = api.request("GET", f"/apis/e2gan.dev/v1alpha1/namespaces/{NS}/conceptadapters")
            pending = [o for o in listing["items"] if (o.get("status") or {}).get("rayJobName") is None]
            if not pending:
                break
            time.sleep(0.25)
        time.sleep(2.0)
        _, jobs = api.request("GET", f"/apis/ray.io/v1/namespaces/{NS}/rayjobs")
        per_owner: dict[str, int] = {}
        for job in jobs["items"]:
            owner = job["metadata"]["labels"]["e2gan.dev/owner"]
            per_owner[owner] = per_owner.get(owner, 0) + 1
        missing = sorted(n for n in names if per_owner.get(n, 0) == 0)
        doubled = sorted(n for n, c in per_owner.items() if c > 1)
        created = op.metric("e2gan_operator_rayjobs_created_total") - created_before
        create_runs = op.metric("e2gan_operator_reconciles_total", trigger="create") - creates_before
        update_runs = op.metric("e2gan_operator_reconciles_total", trigger="update") - updates_before
        adopted = op.metric("e2gan_operator_rayjobs_adopted_total")
        without_status = len(pending)
        exactly_once = (not missing and not doubled and created == burst and create_runs == burst
                        and update_runs == 0 and adopted == 0)
        print(f"burst of {burst}: applied in {applied:.2f} s, all RayJobs after {burst_seconds:.2f} s; "
              f"missing {len(missing)}, doubled {len(doubled)}, created {created:.0f}, create-handler runs "
              f"{create_runs:.0f}, update-handler runs {update_runs:.0f}, adopted {adopted:.0f}, "
              f"without status {without_status}", flush=True)

        # 3. Memory.
        peak, rss = op.rss_mb(), op.metric("process_resident_memory_bytes") / 2**20
        print(f"operator memory: peak {peak:.1f} MB, now {rss:.1f} MB", flush=True)
        # 4. Steady state: every burst resource published (its job "succeeded"), a big index, then quiet.
        _, listing = api.request("GET", f"/apis/e2gan.dev/v1alpha1/namespaces/{NS}/conceptadapters")
        objs = {o["metadata"]["name"]: o for o in listing["items"] if o["metadata"]["name"] in names}
        owners = {n: f"k8s:{NS}/{n}/{o['metadata']['uid']}" for n, o in objs.items()}
        results = seed_catalog(catalog, owners, entries)
        from catalog import open_catalog

        store = open_catalog(catalog)
        for n, o in objs.items():
            st = o.get("status") or {}
            store.write_progress(st["progressKey"], {"stage": "Done", "percent": 100, "result": results[n]})
        store.close()

        def finish(o: dict[str, Any]) -> None:
            job = (o.get("status") or {})["rayJobName"]
            status, body = api.request("PATCH", f"/apis/ray.io/v1/namespaces/{NS}/rayjobs/{job}/status",
                                       {"status": {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}})
            assert status == 200, body

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(finish, objs.values()))
        deadline = time.monotonic() + 600
        ready = 0
        while time.monotonic() < deadline:
            _, listing = api.request("GET", f"/apis/e2gan.dev/v1alpha1/namespaces/{NS}/conceptadapters")
            ready = sum(1 for o in listing["items"] if o["metadata"]["name"] in names
                        and (o.get("status") or {}).get("phase") == "Ready")
            if ready == len(objs):
                break
            time.sleep(1.0)
        time.sleep(5.0)  # the last status writes and their watch events
        api_before = op.metric("e2gan_operator_api_requests_total")
        catalog_before = op.metric("e2gan_operator_catalog_requests_total")
        started = time.monotonic()
        time.sleep(window)
        elapsed = time.monotonic() - started
        api_rate = (op.metric("e2gan_operator_api_requests_total") - api_before) / elapsed
        catalog_rate = (op.metric("e2gan_operator_catalog_requests_total") - catalog_before) / elapsed
        steady_rss = op.metric("process_resident_memory_bytes") / 2**20
        steady_peak = op.rss_mb()
        print(f"steady state: {ready}/{len(objs)} Ready, {entries} catalog versions; {api_rate:.2f} API req/s, "
              f"{catalog_rate:.2f} catalog reads/s over {elapsed:.0f} s; RSS {steady_rss:.1f} MB "
              f"(peak {steady_peak:.1f} MB)", flush=True)
        # Checks run every --check-seconds here (short, so the window sees each resource check); the
        # operator's default interval is longer, and the catalog rate scales with 1/interval.
        default_check = OperatorSettings().catalog_check_seconds
        catalog_rate_default = catalog_rate * args.check_seconds / default_check
        steady_ok = (ready == len(objs) and api_rate <= TARGET_STEADY_API
                     and catalog_rate_default <= TARGET_STEADY_CATALOG and steady_rss <= TARGET_STEADY_MB)

        reconciles = op.metric("e2gan_operator_reconciles_total")
        ok = (p50 <= TARGET_P50_MS and exactly_once and all_seen and without_status == 0 and peak <= TARGET_MEMORY_MB
              and steady_ok)
        result = {
            "bench": "operator",
            "quick": args.quick,
            "rayjob_schema": "kuberay" if KUBERAY_CRD.is_file() else "minimal",
            "apply_to_rayjob_ms": {"p50": round(p50, 2), "p95": round(p95, 2), "n": len(latencies),
                                   "target_p50": TARGET_P50_MS},
            "burst": {"resources": burst, "all_rayjobs_s": round(burst_seconds, 3), "apply_s": round(applied, 3),
                      "missing": len(missing), "doubled": len(doubled), "rayjobs_created": int(created),
                      "create_handler_runs": int(create_runs), "update_handler_runs": int(update_runs),
                      "adopted": int(adopted),
                      "without_status": without_status, "exactly_once": exactly_once},
            "reconciles_total": int(reconciles),
            "memory_mb": {"peak": round(peak, 1), "rss": round(rss, 1), "target": TARGET_MEMORY_MB},
            "steady": {"resources": len(objs), "ready": ready, "catalog_entries": entries, "window_s": round(elapsed, 1),
                       "catalog_check_s": args.check_seconds,
                       "api_requests_per_s": round(api_rate, 3), "catalog_requests_per_s": round(catalog_rate, 3),
                       "catalog_requests_per_s_at_default_check": round(catalog_rate_default, 3),
                       "default_catalog_check_s": default_check,
                       "rss_mb": round(steady_rss, 1), "peak_rss_mb": round(steady_peak, 1),
                       "targets": {"api_per_s": TARGET_STEADY_API, "catalog_per_s": TARGET_STEADY_CATALOG,
                                   "rss_mb": TARGET_STEADY_MB}, "pass": steady_ok},
            "pass": ok,
        }
    finally:
        if op is not None:
            op.stop()
        kube.stop()
    print(json.dumps(result))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
