"""The Ray Data path end to end on a real local Ray: tiny diffusion teachers, 1 and 2 actors."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from catalog.settings import S3Settings
from e2gan_api.spec import TeacherSpec
from tests.trainers.synthesis.conftest import all_actors_up
from trainers.data import PairStore
from trainers.sources import open_source, synthetic_scenes
from trainers.synthesis import crash_once_factory, open_pair_store, synthesize_pairs
from trainers.teachers import Teacher, build_teacher

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_cluster")]

PROMPT = "make it winter"


def _spec(pipelines: dict[str, Path], kind: str = "instruct-pix2pix") -> TeacherSpec:
    return TeacherSpec(kind=kind, model=str(pipelines[kind]), steps=2, batch_size=2)


class CountingTeacher:
    """Counts the images a teacher is asked to edit (a cache hit edits none)."""

    def __init__(self, inner: Teacher) -> None:
        self.inner, self.edited = inner, 0

    @property
    def id(self) -> str:
        return self.inner.id

    def edit(self, images: np.ndarray, prompt: str, seed: int | Sequence[int]) -> np.ndarray:
        self.edited += len(images)
        return self.inner.edit(images, prompt, seed)


def _no_duplicates(store: str | Path, keys: list[str], settings: S3Settings | None = None) -> None:
    counts = Counter(r["key"] for r in open_pair_store(store, settings).manifest_records())
    assert counts == Counter(keys), "every pair is stored exactly once"


def test_pairs_are_identical_with_one_or_two_actors_and_cached_on_rerun(
    tiny_pipelines: dict[str, Path], tmp_path: Path
) -> None:
    spec = _spec(tiny_pipelines)
    sources = open_source("builtin://scenes", 8, 32, seed=0)
    run = {"teacher_spec": spec, "concept": "winter", "prompt": PROMPT, "sources": sources}
    one = synthesize_pairs(**run, store=tmp_path / "one", actors=1)
    with all_actors_up():
        two = synthesize_pairs(**run, store=tmp_path / "two", actors=2)

    assert one.keys == two.keys and len(set(one.keys)) == 8
    assert (one.made, one.cached, one.chunks, one.actors) == (8, 0, 4, 1)
    assert (two.made, two.cached, two.actors) == (8, 0, 2)
    assert len(two.workers) == 2 and all(w.pairs > 0 for w in two.workers.values()), "both actors worked"
    assert all(w.pairs_per_s > 0 and w.busy_s > 0 and w.init_s > 0 for w in two.workers.values())
    assert two.to_dict()["workers"].keys() == two.workers.keys()
    src1, tgt1 = one.load()
    src2, tgt2 = two.load()
    np.testing.assert_array_equal(src1, sources.images)
    np.testing.assert_array_equal(src2, sources.images)
    np.testing.assert_array_equal(tgt1, tgt2)  # bit-identical, whatever the partitioning
    assert not np.array_equal(src1, tgt1)
    _no_duplicates(tmp_path / "two", two.keys)

    again = synthesize_pairs(**run, store=tmp_path / "one")
    assert (again.made, again.cached, again.chunks) == (0, 8, 0)  # no actor started at all
    assert again.keys == one.keys

    # The single-machine path finds the Ray path's pairs: one cache, no teacher call.
    teacher = CountingTeacher(build_teacher(spec, "winter"))
    keys = PairStore(tmp_path / "two").synthesize(
        sources.images, sources.hashes, teacher, PROMPT, "winter", 2, False
    )
    assert keys == two.keys and teacher.edited == 0


def test_corrupt_source_is_skipped_and_a_killed_actor_recovered_without_duplicates(
    tiny_pipelines: dict[str, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, image in enumerate(synthetic_scenes(7, 48, seed=2)):
        Image.fromarray(image).save(folder / f"{i}.png")
    (folder / "planted.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)  # a PNG header, then nothing
    marker = tmp_path / "crashed"
    report = synthesize_pairs(
        str(folder),
        8,
        32,
        seed=0,
        teacher_spec=_spec(tiny_pipelines, "sdedit"),
        concept="winter",
        prompt=PROMPT,
        store=tmp_path / "pairs",
        actors=2,
        teacher_factory=crash_once_factory(marker, on_call=2),
    )
    # 8 crops asked of 7 readable photos: the broken file is skipped and counted, its share goes elsewhere.
    assert report.skipped == 1 and len(report.keys) == 8
    assert report.to_dict()["skipped"] == 1
    assert marker.exists(), "one actor died (os._exit) right after editing its second chunk"
    assert report.restarts == 1, "the same actor id answered from a second process"
    assert report.made + report.recovered == 8 and report.cached == 0
    _no_duplicates(tmp_path / "pairs", report.keys)
    src, tgt = report.load()
    assert tgt.shape == (8, 32, 32, 3) and not np.array_equal(src, tgt)


def test_s3_store_with_sources_from_s3(moto_s3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    bucket = moto_s3.new_bucket()
    env = moto_s3.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)  # the driver reads sources with E2GAN_S3_*
    client = moto_s3.client()
    for i, image in enumerate(synthetic_scenes(4, 40, seed=7)):
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="JPEG", quality=95)
        client.put_object(bucket, f"photos/{i}.jpg", io.BytesIO(buf.getvalue()), buf.tell())
    client.put_object(bucket, "photos/truncated.jpg", io.BytesIO(b"\xff\xd8\xff"), 3)
    settings = S3Settings.from_env(env)  # handed to the actors (their env predates this test)
    run = {
        "source_uri": f"s3://{bucket}/photos",
        "n": 5,
        "size": 32,
        "teacher_spec": TeacherSpec(kind="procedural", batch_size=2),
        "concept": "old-photo",
        "prompt": "make it an old photo",
        "store": f"s3://{bucket}/pairs",
        "settings": settings,
    }
    report = synthesize_pairs(**run, actors=1)
    # 5 crops of the 4 readable photos (the truncated one is skipped and counted).
    assert (report.made, report.skipped, len(report.keys)) == (5, 1, 5)
    _no_duplicates(run["store"], report.keys, settings)
    shards = [n for n in moto_s3.object_names(bucket) if n.startswith("pairs/manifest/")]
    assert len(shards) == 3  # one shard per chunk of 2
    again = synthesize_pairs(**run)
    assert (again.cached, again.made) == (5, 0)
    src, tgt = again.load()
    assert src.shape == tgt.shape == (5, 32, 32, 3)
