from __future__ import annotations

import re
import time

import numpy as np
import pytest

from trainers.sources import synthetic_scenes
from trainers.teachers import PROCEDURAL_TEACHERS, ProceduralTeacher, TeacherUnavailable, register_procedural

SEEDED = ["old-photo", "winter", "night"]  # effects with grain or snow drawn from the seed


def test_at_least_eight_concepts() -> None:
    assert len(PROCEDURAL_TEACHERS) >= 8
    for name, effect in PROCEDURAL_TEACHERS.items():
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name), "names must be valid concept names"
        assert effect.description


@pytest.mark.parametrize("name", sorted(PROCEDURAL_TEACHERS))
def test_id_names_effect_and_version(name: str) -> None:
    assert ProceduralTeacher(name).id == f"procedural/{name}@{PROCEDURAL_TEACHERS[name].version}"


@pytest.mark.parametrize("name", SEEDED)
def test_seed_changes_noise(name: str) -> None:
    x = synthetic_scenes(1, 32, seed=0)
    t = ProceduralTeacher(name)
    assert not np.array_equal(t.edit(x, "p", seed=1), t.edit(x, "p", seed=2))


@pytest.mark.parametrize("name", sorted(set(PROCEDURAL_TEACHERS) - set(SEEDED)))
def test_noiseless_effects_ignore_seed_and_prompt(name: str) -> None:
    x = synthetic_scenes(1, 32, seed=0)
    t = ProceduralTeacher(name)
    np.testing.assert_array_equal(t.edit(x, "a", seed=1), t.edit(x, "b", seed=2))


def test_negative_is_exact() -> None:
    x = synthetic_scenes(2, 16, seed=0)
    np.testing.assert_array_equal(ProceduralTeacher("negative").edit(x, "p", seed=0), 255 - x)


def test_pencil_sketch_is_grey() -> None:
    out = ProceduralTeacher("pencil-sketch").edit(synthetic_scenes(2, 32, seed=0), "p", seed=0).astype(int)
    # Grey times a warm paper tint: channels stay ordered R >= G >= B.
    assert (out[..., 0] >= out[..., 1]).all() and (out[..., 1] >= out[..., 2]).all()


def test_empty_batch() -> None:
    out = ProceduralTeacher("cartoon").edit(np.zeros((0, 32, 32, 3), np.uint8), "p", seed=[])
    assert out.shape == (0, 32, 32, 3)


def test_non_square_images() -> None:
    x = np.random.default_rng(0).integers(0, 256, (2, 24, 40, 3), dtype=np.uint8)
    for name in PROCEDURAL_TEACHERS:
        assert ProceduralTeacher(name).edit(x, "p", seed=0).shape == x.shape


def test_fast_on_cpu() -> None:
    x = synthetic_scenes(16, 64, seed=0)
    start = time.perf_counter()
    for name in PROCEDURAL_TEACHERS:
        ProceduralTeacher(name).edit(x, "p", seed=0)
    assert time.perf_counter() - start < 5.0


def test_unknown_name_lists_known() -> None:
    with pytest.raises(TeacherUnavailable, match="pencil-sketch"):
        ProceduralTeacher("sunglasses")


def test_duplicate_registration_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        register_procedural("negative")(lambda x, rngs: x)
