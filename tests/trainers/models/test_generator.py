import pytest
import torch

from trainers.models import (
    CRUCIAL_LAYERS,
    ConceptGenerator,
    E2GANGenerator,
    GeneratorConfig,
    PatchDiscriminator,
    ResnetGenerator,
    modules_in,
)
from trainers.models.crucial import RESIDUAL_LAYERS
from trainers.models.weights import load_generator, read_metadata, save_generator

TINY = GeneratorConfig(width=8, text_dim=16, context_tokens=2, heads=2)


def test_generator_shapes_and_range():
    g = E2GANGenerator(TINY)
    x, t = torch.rand(2, 3, 32, 32) * 2 - 1, torch.randn(2, 16)
    y = g(x, t)
    assert y.shape == x.shape
    assert y.abs().max() <= 1.0
    assert g.bottleneck_features(x, t).shape == (2, 4 * TINY.width)


def test_generator_follows_the_paper_layout():
    g = E2GANGenerator(TINY)
    assert len(g.res_before) + len(g.res_after) == 3
    assert len(g.down) == TINY.downsamplings
    # peft cannot adapt ConvTranspose2d: up-sampling must be Upsample + Conv2d
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in g.modules())


def test_text_changes_the_output():
    g = E2GANGenerator(TINY).eval()
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert not torch.allclose(g(x, torch.randn(1, 16)), g(x, torch.randn(1, 16)))


def test_every_crucial_group_matches_layers_and_no_residual_layer():
    g = E2GANGenerator(TINY)
    found = modules_in(g, CRUCIAL_LAYERS)
    assert all(found[group] for group in CRUCIAL_LAYERS), found
    crucial = {name for names in found.values() for name in names}
    residual = set(modules_in(g, RESIDUAL_LAYERS)["res"])
    assert residual and not crucial & residual


def test_concept_generator_bakes_the_text():
    g = E2GANGenerator(TINY).eval()
    t = torch.randn(16)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.allclose(ConceptGenerator(g, t)(x), g(x, t.expand(2, -1)))


def test_discriminator_and_pix2pix_shapes():
    x = torch.rand(1, 3, 64, 64)
    assert PatchDiscriminator(ndf=8)(x, x).shape[1] == 1
    p = ResnetGenerator(ngf=8, n_blocks=2)
    assert p(x).shape == x.shape


def test_pix2pix_resnet9_has_the_published_size():
    params = sum(p.numel() for p in ResnetGenerator().parameters())
    assert 11.0e6 < params < 11.8e6  # the ResNet-9 (ngf=64) of pix2pix: 11.4 M


def test_weights_round_trip_through_safetensors(tmp_path):
    g = E2GANGenerator(TINY).eval()
    path = save_generator(g, tmp_path / "g.safetensors", extra={"steps": "7"})
    again = load_generator(path)
    assert again.config == TINY
    assert read_metadata(path)["steps"] == "7"
    x, t = torch.rand(1, 3, 32, 32), torch.randn(1, 16)
    assert torch.equal(g(x, t), again(x, t))


def test_weights_refuse_pickle_and_missing_files(tmp_path):
    with pytest.raises(ValueError, match="safetensors"):
        load_generator(tmp_path / "g.pt")
    with pytest.raises(FileNotFoundError, match="e2gan base"):
        load_generator(tmp_path / "missing.safetensors")
