from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from trainers.data import PairStore, pair_key, pair_seed, synthesize_batch
from trainers.sources import source_hashes, synthetic_scenes
from trainers.teachers import ProceduralTeacher

REPO = Path(__file__).resolve().parents[3]


class CountingTeacher:
    """A procedural teacher that counts the images it is asked to edit."""

    def __init__(self, name: str = "old-photo") -> None:
        self.inner = ProceduralTeacher(name)
        self.edited = 0

    @property
    def id(self) -> str:
        return self.inner.id

    def edit(self, images: np.ndarray, prompt: str, seed: int | Sequence[int]) -> np.ndarray:
        self.edited += len(images)
        return self.inner.edit(images, prompt, seed)


@pytest.fixture(scope="module")
def sources() -> tuple[np.ndarray, list[str]]:
    images = synthetic_scenes(6, 32, seed=0)
    return images, source_hashes(images)


def test_seed_is_stable_and_spread() -> None:
    # A fixed value: Python's salted hash() would change between processes.
    assert pair_seed("winter", "ab" * 32, 3) == pair_seed("winter", "ab" * 32, 3)
    seeds = {pair_seed("winter", "ab" * 32, i) for i in range(100)}
    assert len(seeds) == 100 and all(0 <= s < 2**31 for s in seeds)
    assert pair_seed("winter", "ab" * 32, 0) != pair_seed("night", "ab" * 32, 0)


def test_seed_same_in_another_process() -> None:
    code = "from trainers.data import pair_seed; print(pair_seed('winter', 'x', 7))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert int(out.stdout) == pair_seed("winter", "x", 7)


def test_key_depends_on_every_input() -> None:
    base = pair_key("t@1", "p", "h", 1)
    assert (
        len(
            {
                base,
                pair_key("t@2", "p", "h", 1),
                pair_key("t@1", "q", "h", 1),
                pair_key("t@1", "p", "g", 1),
                pair_key("t@1", "p", "h", 2),
            }
        )
        == 5
    )


def test_synthesize_batch(sources: tuple[np.ndarray, list[str]]) -> None:
    images, hashes = sources
    teacher = ProceduralTeacher("winter")
    pairs = synthesize_batch(images[:3], hashes[:3], teacher, "make it winter", "winter", start_index=10)
    assert [p.index for p in pairs] == [10, 11, 12]
    for p, img, h in zip(pairs, images, hashes, strict=False):
        assert p.seed == pair_seed("winter", h, p.index)
        assert p.key == pair_key(teacher.id, "make it winter", h, p.seed)
        np.testing.assert_array_equal(p.source, img)
        np.testing.assert_array_equal(p.target, teacher.edit(img[None], "make it winter", p.seed)[0])


def test_batching_does_not_change_pairs(sources: tuple[np.ndarray, list[str]]) -> None:
    images, hashes = sources
    teacher = ProceduralTeacher("winter")
    whole = synthesize_batch(images, hashes, teacher, "p", "winter")
    split = synthesize_batch(images[:2], hashes[:2], teacher, "p", "winter") + synthesize_batch(
        images[2:], hashes[2:], teacher, "p", "winter", start_index=2
    )
    assert [p.key for p in whole] == [p.key for p in split]
    for a, b in zip(whole, split, strict=True):
        np.testing.assert_array_equal(a.target, b.target)


def test_store_put_has_load(tmp_path: Path, sources: tuple[np.ndarray, list[str]]) -> None:
    images, hashes = sources
    store = PairStore(tmp_path / "pairs")
    pairs = synthesize_batch(images[:2], hashes[:2], ProceduralTeacher("cartoon"), "cartoon", "cartoon")
    assert not store.has(pairs[0].key)
    for p in pairs:
        store.put(p)
    assert store.has(pairs[0].key) and len(store) == 2
    src, tgt = store.load([pairs[1].key, pairs[0].key])
    np.testing.assert_array_equal(src, images[[1, 0]])
    np.testing.assert_array_equal(tgt, np.stack([pairs[1].target, pairs[0].target]))
    assert (tmp_path / "pairs" / "sources" / f"{hashes[0]}.png").is_file()
    assert (tmp_path / "pairs" / "targets" / f"{pairs[0].key}.png").is_file()
    record = json.loads((tmp_path / "pairs" / "manifest.jsonl").read_text().splitlines()[0])
    assert record["teacher_id"] == "procedural/cartoon@1" and record["source_size"] == [32, 32]
    assert {"key", "prompt", "seed", "source_hash", "target_size"} <= set(record)


def test_synthesize_reuses_stored_pairs(tmp_path: Path, sources: tuple[np.ndarray, list[str]]) -> None:
    images, hashes = sources
    teacher = CountingTeacher()
    keys = PairStore(tmp_path).synthesize(
        images, hashes, teacher, "old", "old-photo", batch_size=4, progress=False
    )
    assert teacher.edited == 6 and len(set(keys)) == 6
    again = CountingTeacher()
    # A new store object (a rerun) finds everything on disk.
    assert (
        PairStore(tmp_path).synthesize(
            images, hashes, again, "old", "old-photo", batch_size=4, progress=False
        )
        == keys
    )
    assert again.edited == 0
    more = synthetic_scenes(8, 32, seed=0)
    grown = PairStore(tmp_path).synthesize(
        more, source_hashes(more), again, "old", "old-photo", progress=False
    )
    assert grown[:6] == keys and again.edited == 2


def test_prompt_change_makes_new_pairs(tmp_path: Path, sources: tuple[np.ndarray, list[str]]) -> None:
    images, hashes = sources
    store = PairStore(tmp_path)
    a = store.synthesize(images[:2], hashes[:2], ProceduralTeacher("night"), "night", "night", progress=False)
    b = store.synthesize(
        images[:2], hashes[:2], ProceduralTeacher("night"), "at night", "night", progress=False
    )
    assert not set(a) & set(b) and len(store) == 4
    assert len(list((tmp_path / "sources").iterdir())) == 2  # sources are shared, stored once


def test_half_written_pair_is_redone(tmp_path: Path, sources: tuple[np.ndarray, list[str]]) -> None:
    images, hashes = sources
    store = PairStore(tmp_path)
    keys = store.synthesize(images[:2], hashes[:2], ProceduralTeacher("negative"), "p", "c", progress=False)
    # A writer killed mid-line: the manifest ends with half a record of the second pair.
    lines = (tmp_path / "manifest.jsonl").read_text().splitlines()
    (tmp_path / "manifest.jsonl").write_text(lines[0] + "\n" + lines[1][:30])
    teacher = CountingTeacher("negative")
    assert PairStore(tmp_path).synthesize(images[:2], hashes[:2], teacher, "p", "c", progress=False) == keys
    assert teacher.edited == 1
    src, tgt = PairStore(tmp_path).load(keys)
    np.testing.assert_array_equal(tgt, 255 - images[:2])


def test_load_unknown_key(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="not in the store"):
        PairStore(tmp_path).load(["0" * 64])


def test_killed_run_leaves_no_half_file(tmp_path: Path) -> None:
    """SIGKILL a writer in the middle of a run; what it left loads, and a rerun completes it."""
    script = textwrap.dedent(
        f"""
        import sys, time
        from trainers.data import PairStore
        from trainers.sources import synthetic_scenes, source_hashes
        from trainers.teachers import ProceduralTeacher

        class Slow(ProceduralTeacher):
            def edit(self, images, prompt, seed):
                out = super().edit(images, prompt, seed)
                print("edited", flush=True)
                time.sleep(0.05)
                return out

        images = synthetic_scenes(40, 64, seed=0)
        PairStore({str(tmp_path)!r}).synthesize(images, source_hashes(images), Slow("cartoon"), "p", "c",
                                               batch_size=1, progress=False)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for _ in range(5):
        proc.stdout.readline()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = PairStore(tmp_path)
    assert 3 <= len(store) < 40
    assert not [p for p in tmp_path.rglob("*.png") if p.stat().st_size == 0]
    keys = [r["key"] for r in store.records()]
    store.load(keys)  # every recorded pair decodes
    images = synthetic_scenes(40, 64, seed=0)
    teacher = CountingTeacher("cartoon")
    all_keys = store.synthesize(images, source_hashes(images), teacher, "p", "c", progress=False)
    assert teacher.edited == 40 - len(keys) and len(PairStore(tmp_path)) == 40
    assert set(keys) <= set(all_keys)
