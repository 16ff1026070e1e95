"""Base synthesis (many concepts) through the Ray Data pipeline, the CLIP filter on Ray, GPU actors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from e2gan_api.spec import TeacherSpec
from trainers.sources import open_source, synthetic_scenes
from trainers.synthesis import (
    ConceptSource,
    actor_gpus,
    available_actors,
    synthesize_concepts,
    synthesize_pairs,
)
from trainers.teachers.clip_filter import ClipFilter
from trainers.teachers.tiny import build_tiny_clip


def test_one_actor_per_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 16.0, "GPU": 4.0})
    assert actor_gpus(2) == 1.0 and actor_gpus(0.5) == 0.5 and actor_gpus(0) == 0.0
    # 2 workers with gpusPerWorker 2: four actors, one whole GPU each.
    assert available_actors(gpus_per_actor=2, cpus_per_actor=1) == 4
    assert available_actors(gpus_per_actor=0, cpus_per_actor=2) == 8


@pytest.mark.slow
@pytest.mark.usefixtures("ray_cluster")
def test_base_synthesis_runs_through_ray_data(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, image in enumerate(synthetic_scenes(5, 40, seed=4)):
        Image.fromarray(image).save(folder / f"{i}.png")
    items = [
        ConceptSource(TeacherSpec(kind="procedural", batch_size=2), "negative", "invert it", "builtin://scenes", 5, 32, 1),
        ConceptSource(TeacherSpec(kind="procedural", batch_size=3), "old-photo", "make it old", str(folder), 4, 32, 2),
    ]
    reports = synthesize_concepts(items, tmp_path / "pairs", actors=1)
    assert [len(r.keys) for r in reports] == [5, 4]
    assert [(r.made, r.cached, r.chunks) for r in reports] == [(5, 0, 3), (4, 0, 2)]
    # The same pairs as one concept through synthesize_pairs (sources opened on the driver).
    for item, report in zip(items[1:], reports[1:], strict=True):
        single = synthesize_pairs(
            item.source, item.n, item.size, item.seed, teacher_spec=item.teacher, concept=item.concept,
            prompt=item.prompt, store=tmp_path / "single", actors=1,
        )
        assert single.keys == report.keys
        src, tgt = report.load()
        np.testing.assert_array_equal(src, open_source(item.source, item.n, item.size, item.seed).images)
        np.testing.assert_array_equal(tgt, single.load()[1])
    again = synthesize_concepts(items, tmp_path / "pairs", actors=1)
    assert [(r.made, r.cached, r.actors) for r in again] == [(0, 5, 0), (0, 4, 0)]  # no actor started
    assert [r.keys for r in again] == [r.keys for r in reports]


@pytest.mark.slow
@pytest.mark.usefixtures("ray_cluster")
def test_clip_filter_drops_pairs_on_the_ray_path(tmp_path: Path) -> None:
    clip = build_tiny_clip(tmp_path / "clip")
    run = {"source_uri": "builtin://scenes", "n": 6, "size": 32, "concept": "thermal", "prompt": "a heat map", "actors": 1}
    everything = synthesize_pairs(
        **run, teacher_spec=TeacherSpec(kind="procedural", batch_size=3), store=tmp_path / "all"
    )
    src, tgt = everything.load()
    scores = ClipFilter(str(clip), threshold=0.0).scores(src, tgt, run["prompt"])
    threshold = float(np.median(scores))
    spec = TeacherSpec(kind="procedural", batch_size=3, clip_model=str(clip), clip_threshold=threshold)
    kept = synthesize_pairs(**run, teacher_spec=spec, store=tmp_path / "kept")
    expected = [k for k, s in zip(everything.keys, scores, strict=True) if s >= threshold]
    assert kept.keys == expected and 0 < kept.filtered == 6 - len(expected)
    assert kept.to_dict()["filtered"] == kept.filtered and kept.made == 6
    np.testing.assert_array_equal(kept.load()[1], tgt[[everything.keys.index(k) for k in expected]])
