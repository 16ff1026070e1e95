"""The perceptual loss reads a VGG-style network from a safetensors path (a tiny random one here)."""

import pytest
import torch
from safetensors.torch import save_file

from trainers.models import E2GANGenerator, GeneratorConfig
from trainers.train.loop import PairTensors, fit
from trainers.train.objective import Objective
from trainers.train.perceptual import PerceptualWeightsError, load_feature_net, perceptual_loss

TINY = GeneratorConfig(width=8, text_dim=16, context_tokens=2, heads=2)


def tiny_vgg(path):
    """torchvision's vgg.features naming: conv 0, relu 1, conv 2, relu 3, pool 4, conv 5."""
    g = torch.Generator().manual_seed(0)
    shapes = {0: (4, 3), 2: (4, 4), 5: (8, 4)}
    state = {}
    for i, (cout, cin) in shapes.items():
        state[f"features.{i}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * 0.2
        state[f"features.{i}.bias"] = torch.zeros(cout)
    save_file(state, str(path))
    return path


def test_a_tiny_random_network_loads_by_path_and_trains_a_generator(tmp_path):
    path = tiny_vgg(tmp_path / "vgg.safetensors")
    net = load_feature_net(path)
    assert len(net.convs) == 3 and net.pool_after == {1}  # the pool between conv 2 and conv 5
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert float(perceptual_loss(net, x, x)) == 0.0 and float(perceptual_loss(net, x, -x)) > 0
    data = PairTensors(x.repeat(2, 1, 1, 1), -x.repeat(2, 1, 1, 1), torch.randn(4, 16))
    objective = Objective(adversarial_weight=0.0, l1_weight=1.0, perceptual_weights=str(path), perceptual_weight=1.0)
    result = fit(E2GANGenerator(TINY), data, steps=2, batch_size=2, lr=1e-3, objective=objective)
    assert result.steps == 2 and result.last_loss > 0


@pytest.mark.parametrize("name", ["missing.safetensors", "vgg.pth", "garbage.safetensors"])
def test_a_bad_path_is_one_line_naming_the_field(tmp_path, name):
    (tmp_path / "vgg.pth").write_bytes(b"pickle")
    (tmp_path / "garbage.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(PerceptualWeightsError) as err:
        load_feature_net(tmp_path / name)
    assert str(err.value).startswith("training.perceptualWeights: ") and "\n" not in str(err.value)
