"""Where a concept fine-tune's discriminator starts: the one shipped beside the base, or a fresh one (said why)."""

import shutil

from e2gan_api.spec import TrainingSpec
from trainers.models.weights import discriminator_path
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
    assert init is None and "does not fit 256 px" in note
