"""Concurrent publishers never drop an index entry and never share a version number."""

from __future__ import annotations

import threading
from pathlib import Path

from catalog.samples import SAMPLE_BASE_DIGEST as BASE
from catalog.samples import make_adapter
from tests.catalog.conftest import Backend

PUBLISHERS = 8


def test_eight_publishers_at_once(backend: Backend, tmp_path: Path) -> None:
    digests = [make_adapter(tmp_path / f"a{i}", seed=i).content_digest() for i in range(PUBLISHERS)]
    # Two more publishers race with identical content: it must be listed once.
    make_adapter(tmp_path / "dup", seed=0)
    folders = [tmp_path / f"a{i}" for i in range(PUBLISHERS)] + [tmp_path / "dup"]
    start = threading.Barrier(len(folders))
    errors: list[BaseException] = []
    results = []

    def publish(folder: Path) -> None:
        cat = backend.open()  # each publisher has its own client and connections
        start.wait()
        try:
            results.append(cat.publish(folder, base_digest=BASE, concept="pencil-sketch"))
        except BaseException as exc:  # surfaced below with the thread's folder
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=(f,)) for f in folders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(results) == len(folders)

    cat = backend.open()
    entries = cat.index()
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
