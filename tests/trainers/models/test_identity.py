"""A base knows its resolution and text encoder; mismatches are refused in one line."""

from __future__ import annotations

import pytest
import torch

from trainers.models import E2GANGenerator, GeneratorConfig
from trainers.models.identity import base_identity, check_base, encoder_sha256
from trainers.models.weights import read_metadata, save_generator


class FolderEncoder:
    def __init__(self, folder, name="sentence:tiny", dim=16):
        self.folder, self.name, self.dim = folder, name, dim

    def encode(self, prompts):
        return torch.zeros(len(prompts), self.dim)


@pytest.fixture
def encoder(tmp_path):
    folder = tmp_path / "enc"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights v1")
    return FolderEncoder(folder)


def test_identity_round_trips_through_the_weights_file(tmp_path, encoder):
    meta = base_identity(encoder, 64, 8, ["winter", "night"], {"l1Weight": 100.0})
    path = save_generator(E2GANGenerator(GeneratorConfig(width=8, text_dim=16)), tmp_path / "b.safetensors", extra=meta)
    stored = read_metadata(path)
    assert stored["text_encoder"] == "sentence:tiny" and stored["resolution"] == "64" and stored["width"] == "8"
    assert stored["text_encoder_sha256"] == encoder_sha256(encoder)
    check_base(stored, path, 64, encoder)  # the same run: accepted


def test_a_base_for_another_resolution_is_refused(tmp_path, encoder):
    meta = base_identity(encoder, 64, 8, ["winter"])
    with pytest.raises(ValueError, match=r"trained at 64 px but training.resolution is 256 — set training.resolution: 64"):
        check_base(meta, "b.safetensors", 256, encoder)


def test_a_base_for_another_encoder_is_refused(tmp_path, encoder):
    meta = base_identity(encoder, 64, 8, ["winter"])
    other = FolderEncoder(encoder.folder, name="clip:vit-l")
    with pytest.raises(ValueError, match="text encoder 'sentence:tiny' but 'clip:vit-l' is installed"):
        check_base(meta, "b.safetensors", 64, other)
    (encoder.folder / "model.safetensors").write_bytes(b"weights v2")  # same name, other weights
    with pytest.raises(ValueError, match="other sentence:tiny weights"):
        check_base(meta, "b.safetensors", 64, encoder)


def test_a_base_from_before_identity_is_checked_on_what_it_records(encoder):
    check_base({"resolution": "64"}, "old.safetensors", 64, encoder)
    with pytest.raises(ValueError, match="trained at 64 px"):
        check_base({"resolution": "64"}, "old.safetensors", 32, encoder)


def test_a_base_for_another_embedding_size_is_refused(tmp_path, encoder):
    # An old base without encoder metadata still records its text_dim in the config.
    path = save_generator(E2GANGenerator(GeneratorConfig(width=8, text_dim=384)), tmp_path / "old.safetensors",
                          extra={"resolution": "64"})
    with pytest.raises(ValueError, match="takes 384-dim text embeddings but the installed encoder gives 16"):
        check_base(read_metadata(path), path, 64, encoder)
