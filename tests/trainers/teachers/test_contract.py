"""The Teacher contract, checked for every teacher by one parametrized table (peft-style)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from e2gan_api.spec import TeacherSpec
from trainers.sources import synthetic_scenes
from trainers.teachers import PROCEDURAL_TEACHERS, Teacher, build_teacher

CASES = [
    pytest.param(("procedural", name), id=f"procedural-{name}") for name in sorted(PROCEDURAL_TEACHERS)
] + [
    pytest.param(("instruct-pix2pix", None), id="instruct-pix2pix-tiny"),
    pytest.param(("sdedit", None), id="sdedit-tiny"),
]


@pytest.fixture(params=CASES)
def teacher(request: pytest.FixtureRequest) -> Teacher:
    kind, name = request.param
    if kind == "procedural":
        return build_teacher(TeacherSpec(kind="procedural", name=name), concept="unused")
    tiny_pipelines: dict[str, Path] = request.getfixturevalue("tiny_pipelines")  # built only when needed
    spec = TeacherSpec(kind=kind, model=str(tiny_pipelines[kind]), steps=2, batch_size=2)
    return build_teacher(spec, concept="unused")


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return synthetic_scenes(3, 32, seed=7)


def test_is_a_teacher(teacher: Teacher) -> None:
    assert isinstance(teacher, Teacher)
    assert teacher.id == teacher.id and "/" in teacher.id


def test_keeps_shape_and_dtype(teacher: Teacher, images: np.ndarray) -> None:
    out = teacher.edit(images, "make it so", seed=1)
    assert out.shape == images.shape and out.dtype == np.uint8


def test_changes_the_image(teacher: Teacher, images: np.ndarray) -> None:
    out = teacher.edit(images, "make it so", seed=1)
    assert np.abs(out.astype(int) - images.astype(int)).mean() > 2.0


def test_deterministic(teacher: Teacher, images: np.ndarray) -> None:
    a = teacher.edit(images, "make it so", seed=[1, 2, 3])
    b = teacher.edit(images, "make it so", seed=[1, 2, 3])
    np.testing.assert_array_equal(a, b)


def test_independent_of_batching(teacher: Teacher, images: np.ndarray) -> None:
    together = teacher.edit(images, "make it so", seed=[5, 6, 7])
    alone = np.concatenate([teacher.edit(images[i : i + 1], "make it so", seed=[5 + i]) for i in range(3)])
    # Batched matmuls may round differently from single ones; one grey level at most.
    assert np.abs(together.astype(int) - alone.astype(int)).max() <= 1


def test_seed_count_must_match(teacher: Teacher, images: np.ndarray) -> None:
    with pytest.raises(ValueError, match="seeds"):
        teacher.edit(images, "make it so", seed=[1, 2])


def test_refuses_non_uint8(teacher: Teacher, images: np.ndarray) -> None:
    with pytest.raises(ValueError, match="uint8"):
        teacher.edit(images.astype(np.float32), "make it so", seed=0)


def test_survives_pickling(teacher: Teacher, images: np.ndarray) -> None:
    # Ray ships teachers to workers by pickle; the copy must edit the same way.
    copy = pickle.loads(pickle.dumps(teacher))
    assert copy.id == teacher.id
    np.testing.assert_array_equal(
        copy.edit(images, "make it so", seed=3), teacher.edit(images, "make it so", seed=3)
    )
