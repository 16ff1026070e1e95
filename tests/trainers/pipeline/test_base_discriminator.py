"""Where a concept fine-tune's discriminator starts: the one shipped beside the base, or a fresh one (said why)."""

import shutil

import pytest

from e2gan_api.spec import TrainingSpec
from trainers.models.weights import discriminator_beside, discriminator_path
from trainers.pipeline.distill import _base_discriminator
from trainers.pipeline.resources import builtin_base_path
from trainers.train.objective import Objective

OBJECTIVE = Objective.from_training(TrainingSpec(resolution=64), ndf=32)


def test_the_built_in_base_ships_the_discriminator_fine_tunes_start_from():
    assert discriminator_path(builtin_base_path()).is_file()
    init, note = _base_discriminator(builtin_base_path(), OBJECTIVE, 64)
    assert note is None and init["shape"] == {"ndf": 32, "n_layers": 1} and init["state"]


def test_a_base_without_one_starts_fresh_and_says_why(tmp_path):
    alone = shutil.copy(builtin_base_path(), tmp_path / "alone.safetensors")
    init, note = _base_discriminator(alone, OBJECTIVE, 64)
    assert init is None and "no discriminator beside it" in note and "starts a fresh one" in note
    init, note = _base_discriminator(builtin_base_path(), OBJECTIVE, 256)  # another resolution: another shape
    assert init is None and "does not fit" in note and "256 px" in note and "starts a fresh one" in note


def test_an_unreadable_one_starts_fresh_in_one_line(tmp_path):
    base = shutil.copy(builtin_base_path(), tmp_path / "base.safetensors")
    shipped = discriminator_path(builtin_base_path()).read_bytes()
    discriminator_path(base).write_bytes(shipped[: len(shipped) // 2])  # a truncated download
    init, note = _base_discriminator(base, OBJECTIVE, 64)
    assert init is None and "not a readable e2gan discriminator" in note and "\n" not in note


def test_the_shared_check_returns_none_fits_or_says_why(tmp_path):
    assert discriminator_beside(tmp_path / "none.safetensors", 32, 1) is None
    assert discriminator_beside(builtin_base_path(), 32, 1).n_layers == 1
    with pytest.raises(ValueError, match="does not fit"):
        discriminator_beside(builtin_base_path(), 64, 1)
