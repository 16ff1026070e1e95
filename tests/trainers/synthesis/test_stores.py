"""Planning and stores without Ray: fixed chunks, idempotent commits, S3 sources like folders."""

from __future__ import annotations

import io
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from catalog.settings import S3Settings
from e2gan_api.spec import TeacherSpec
from trainers.data import PairStore, synthesize_batch
from trainers.sources import folder_images, open_source, source_hashes, synthetic_scenes
from trainers.sources.s3 import s3_images
from trainers.synthesis import LocalPairSink, open_pair_store, plan_chunks, plan_keys
from trainers.synthesis.plan import chunk_rows
from trainers.synthesis.workers import Job, PairWriter, TeacherWorker
from trainers.teachers import ProceduralTeacher, build_teacher


def _pairs(n: int = 4, concept: str = "old-photo") -> list:
    images = synthetic_scenes(n, 16, seed=3)
    return synthesize_batch(images, source_hashes(images), ProceduralTeacher(concept), "p", concept)


def test_chunks_are_cut_from_positions_not_from_what_is_missing() -> None:
    hashes = [f"h{i}" for i in range(7)]
    keys = plan_keys(hashes, "t", "p", "c")
    full = plan_chunks(keys, hashes, 3, set())
    assert [c.positions for c in full] == [(0, 1, 2), (3, 4, 5), (6,)]
    partial = plan_chunks(keys, hashes, 3, {keys[1], keys[3], keys[4], keys[5]})
    assert [c.positions for c in partial] == [(0, 2), (6,)]  # chunk 1 is gone, chunk 0 keeps its grouping
    assert partial[1].shard == full[2].shard  # same keys, same shard name
    assert partial[0].shard != full[0].shard
    assert plan_keys(hashes, "t", "p", "c", start_index=2)[0] != keys[0]  # the index is in the seed


def test_local_commit_after_a_partial_write_adds_nothing_twice(tmp_path: Path) -> None:
    pairs = _pairs()
    first = LocalPairSink(tmp_path)
    assert first.commit(pairs[:1], "s") == 1  # a writer died after its first pair
    retry = LocalPairSink(tmp_path)  # the restarted writer: a fresh process, a fresh index
    assert retry.recovered([p.key for p in pairs], "s") == {pairs[0].key}
    assert retry.commit(pairs, "s") == 3
    assert retry.commit(pairs, "s") == 0
    records = retry.manifest_records()
    assert sorted(r["key"] for r in records) == sorted(p.key for p in pairs)
    # The single-machine store reads what the Ray path wrote: one cache.
    src, tgt = PairStore(tmp_path).load([p.key for p in pairs])
    np.testing.assert_array_equal(tgt, np.stack([p.target for p in pairs]))


def test_local_orphan_target_is_made_again(tmp_path: Path) -> None:
    pairs = _pairs(2)
    sink = LocalPairSink(tmp_path)
    sink.store.target_path(pairs[0].key).write_bytes(b"half")  # target written, manifest line never
    assert sink.recovered([p.key for p in pairs], "s") == set()
    assert sink.commit(pairs, "s") == 2
    np.testing.assert_array_equal(sink.load([pairs[0].key])[1][0], pairs[0].target)


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def test_s3_commit_is_idempotent_and_loads(moto_s3) -> None:  # noqa: ANN001 - S3Server fixture
    bucket = moto_s3.new_bucket()
    settings = S3Settings.from_env(moto_s3.env())
    sink = open_pair_store(f"s3://{bucket}/pairs", settings)
    pairs = _pairs()
    # A writer that died after uploading targets but before its manifest shard: not committed.
    for p in pairs[:2]:
        sink.objects.write(f"targets/{p.key}.png", _png(p.target))
    assert sink.known([p.key for p in pairs]) == set()
    assert sink.commit(pairs, "shard-a") == 4
    assert sink.commit(pairs, "shard-a") == 0  # the retried chunk finds its shard
    assert sink.recovered([p.key for p in pairs], "shard-a") == {p.key for p in pairs}
    keys = [p.key for p in reversed(pairs)]
    src, tgt = sink.load(keys)
    np.testing.assert_array_equal(tgt, np.stack([p.target for p in reversed(pairs)]))
    np.testing.assert_array_equal(src, np.stack([p.source for p in reversed(pairs)]))
    records = sink.manifest_records()
    assert Counter(r["key"] for r in records) == Counter(keys)
    assert all(r["shard"] == "shard-a" for r in records)
    names = moto_s3.object_names(bucket)
    assert sum(n.startswith("pairs/sources/") for n in names) == 4
    assert [n for n in names if n.startswith("pairs/manifest/")] == ["pairs/manifest/shard-a.jsonl"]


@pytest.fixture
def s3_photos(moto_s3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:  # noqa: ANN001
    """The same 7 photos (one corrupt, one not an image) in a folder and under an S3 prefix."""
    bucket = moto_s3.new_bucket()
    for name in list(os.environ):
        if name.startswith(("E2GAN_S3_", "AWS_")):
            monkeypatch.delenv(name)
    for name, value in moto_s3.env().items():
        monkeypatch.setenv(name, value)
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    files = {f"img{i}.png": _png(img) for i, img in enumerate(synthetic_scenes(6, 40, seed=5))}
    files["sub/broken.jpg"] = b"\xff\xd8\xff\xe0 this is not a jpeg"
    files["notes.txt"] = b"not an image"
    client = moto_s3.client()
    for name, data in files.items():
        (folder / name).write_bytes(data)
        client.put_object(bucket, f"photos/{name}", io.BytesIO(data), len(data))
    return f"s3://{bucket}/photos", folder


def test_s3_source_matches_the_folder_and_skips_corrupt_images(s3_photos: tuple[str, Path]) -> None:
    uri, folder = s3_photos
    for n, seed in ((10, 0), (4, 1), (4, 2)):
        s3 = open_source(uri, n, 32, seed)
        local = open_source(str(folder), n, 32, seed)
        np.testing.assert_array_equal(s3.images, local.images)
        assert s3.skipped == local.skipped == 1 and s3.groups == local.groups
    # Whole photos decode the same way from either store.
    whole = s3_images(uri, 32)
    np.testing.assert_array_equal(whole[0], folder_images(folder, 32)[0])
    crops = open_source(uri, 10, 32)
    assert len(crops) == 10 and crops.skipped == 1 and crops.photos == 6


def test_s3_source_with_wrong_keys_is_a_one_line_error(
    s3_photos: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("E2GAN_S3_SECRET_KEY", "wrong-secret")
    with pytest.raises(ValueError, match="access refused"):
        open_source(s3_photos[0], 4, 32)


def _only_first(out: dict, n: int) -> dict:
    """A teacher result cut to its first n pairs (what a writer committed before it died)."""
    meta = json.loads(out["meta"][0])
    meta.update({k: meta[k][:n] for k in ("keys", "hashes", "indices", "seeds")})
    return {
        "meta": [json.dumps(meta)],
        "sources": [out["sources"][0][:n]],
        "targets": [out["targets"][0][:n]],
    }


def test_a_retried_chunk_edits_and_writes_only_what_was_not_committed(tmp_path: Path) -> None:
    spec = TeacherSpec(kind="procedural", batch_size=4)
    images = synthetic_scenes(4, 16, seed=8)
    hashes = source_hashes(images)
    keys = plan_keys(hashes, build_teacher(spec, "old-photo").id, "p", "old-photo")
    row = chunk_rows(plan_chunks(keys, hashes, 4, set()), images)[0]
    batch = {"meta": [row["meta"]], "images": [row["images"]]}
    jobs = [Job(spec, "old-photo", "p")]
    teacher = TeacherWorker(jobs, str(tmp_path), None, build_teacher, [{}], 1, False)
    writer = PairWriter(str(tmp_path), None, jobs)

    first = teacher(batch)
    assert json.loads(first["meta"][0])["made"] == 4
    writer(_only_first(first, 2))  # the writer died after committing two pairs
    retry = teacher(batch)
    meta = json.loads(retry["meta"][0])
    assert (meta["made"], meta["recovered"], meta["keys"]) == (2, 2, keys[2:])
    assert json.loads(writer(retry)["meta"][0])["written"] == 2
    done = teacher(batch)
    assert json.loads(done["meta"][0])["recovered"] == 4 and len(done["targets"][0]) == 0
    assert json.loads(writer(done)["meta"][0])["written"] == 0
    assert sorted(r["key"] for r in LocalPairSink(tmp_path).manifest_records()) == sorted(keys)
