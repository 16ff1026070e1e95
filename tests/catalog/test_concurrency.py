"""Concurrent publishers never drop a version and never share a number, with gc running beside them."""

from __future__ import annotations

import threading
from pathlib import Path

from catalog.samples import SAMPLE_BASE_DIGEST as BASE
from catalog.samples import make_adapter
from tests.catalog.conftest import Backend

PUBLISHERS = 8


def test_eight_publishers_at_once_beside_gc(backend: Backend, tmp_path: Path) -> None:
    digests = [make_adapter(tmp_path / f"a{i}", seed=i).content_digest() for i in range(PUBLISHERS)]
    # Two more publishers race with identical content: it must be listed once.
    make_adapter(tmp_path / "dup", seed=0)
    folders = [tmp_path / f"a{i}" for i in range(PUBLISHERS)] + [tmp_path / "dup"]
    make_adapter(tmp_path / "warm", concept="warm")
    backend.open().publish(tmp_path / "warm", base_digest=BASE, concept="warm")  # catalog.json exists
    start, done = threading.Barrier(len(folders) + 1), threading.Event()
    errors: list[BaseException] = []
    results, collected = [], []

    def publish(folder: Path) -> None:
        cat = backend.open()  # each publisher has its own client and connections
        start.wait()
        try:
            results.append(cat.publish(folder, base_digest=BASE, concept="pencil-sketch"))
        except BaseException as exc:  # surfaced below with the thread's folder
            errors.append(exc)

    def collect() -> None:
        cat = backend.open()
        start.wait()
        try:
            while True:  # at least one sweep, even when the publishers finish first (fast local disks)
                collected.append(cat.gc())
                if done.wait(0.2):  # paced: the single-threaded servers also serve the publishers
                    break
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=(f,)) for f in folders]
    sweeper = threading.Thread(target=collect)
    for t in [*threads, sweeper]:
        t.start()
    for t in threads:
        t.join(timeout=120)
    done.set()
    sweeper.join(timeout=60)
    assert not errors, errors
    assert len(results) == len(folders)
    assert collected and all(r.orphans == [] for r in collected)  # gc never took a live upload

    cat = backend.open()
    entries = cat.versions("pencil-sketch")
    assert sorted(e.digest for e in entries) == sorted(digests)
    # Unique numbers; the losing duplicate may leave one unused number behind.
    assert len({e.version for e in entries}) == PUBLISHERS
    assert max(e.number for e in entries) <= len(folders)
    # Every number is committed, or (the losing duplicate's) a bare claim: nothing half-written.
    folders: dict[str, set[str]] = {}
    for key in backend.objects():
        parts = key.split("/")
        if len(parts) == 5 and parts[3].startswith("v"):
            folders.setdefault(parts[3], set()).add(parts[4])
    assert all("version.json" in names or names == {"claim.json"} for names in folders.values()), folders
    assert cat.verify().ok
