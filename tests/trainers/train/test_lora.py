import pytest
import torch

from trainers.models import E2GANGenerator, GeneratorConfig
from trainers.models.crucial import CRUCIAL_LAYERS
from trainers.train.loop import PairTensors, fit
from trainers.train.lora import (
    attach_lora,
    load_adapter,
    lora_config,
    ranks_of,
    save_adapter,
    trainable_parameters,
)

TINY = GeneratorConfig(width=8, text_dim=16, context_tokens=2, heads=2)


def _data(n=8):
    x = torch.rand(n, 3, 32, 32) * 2 - 1
    return PairTensors(x, -x, torch.randn(n, 16))


def test_per_group_ranks_are_attached():
    ranks = {"down": 1, "self_attn": 2, "cross_attn": 4, "mlp": 2, "up": 8}
    model = attach_lora(E2GANGenerator(TINY), ranks)
    assert ranks_of(model) == ranks


def test_only_lora_trains_and_the_base_is_untouched():
    base = E2GANGenerator(TINY)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    model = attach_lora(base, dict.fromkeys(CRUCIAL_LAYERS, 2))
    assert all("lora_" in n for n, p in model.named_parameters() if p.requires_grad)
    fit(model, _data(), steps=3, batch_size=4, lr=1e-2)
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())


def test_higher_rank_costs_more_parameters():
    base = E2GANGenerator(TINY)
    small = trainable_parameters(attach_lora(base, dict.fromkeys(CRUCIAL_LAYERS, 1)))
    large = trainable_parameters(attach_lora(base, dict.fromkeys(CRUCIAL_LAYERS, 4)))
    assert large == 4 * small


def test_adapter_round_trip_reproduces_outputs(tmp_path):
    base = E2GANGenerator(TINY).eval()
    model = attach_lora(base, {"up": 2, "cross_attn": 2})
    fit(model, _data(), steps=5, batch_size=4, lr=1e-2)
    save_adapter(model, tmp_path)
    assert (tmp_path / "adapter_model.safetensors").is_file()
    again = load_adapter(base, tmp_path)
    x, t = torch.rand(2, 3, 32, 32), torch.randn(2, 16)
    with torch.no_grad():
        assert torch.allclose(model(x, t), again(x, t), atol=1e-6)
        merged = load_adapter(base, tmp_path).merge_and_unload()
        assert torch.allclose(model(x, t), merged(x, t), atol=1e-4)


def test_bad_rank_requests_are_refused():
    with pytest.raises(ValueError, match="unknown layer groups"):
        lora_config({"res": 4})
    with pytest.raises(ValueError, match="every rank is 0"):
        lora_config({"up": 0})


def test_fp16_adapter_is_half_the_bytes_and_gives_the_same_outputs(tmp_path):
    from safetensors.torch import load_file

    base = E2GANGenerator(TINY).eval()
    model = attach_lora(base, {"up": 2, "cross_attn": 2})
    fit(model, _data(), steps=5, batch_size=4, lr=1e-2)
    save_adapter(model, tmp_path / "fp32", dtype="fp32")
    save_adapter(model, tmp_path / "fp16", dtype="fp16")
    assert {v.dtype for v in load_file(str(tmp_path / "fp16" / "adapter_model.safetensors")).values()} == {torch.float16}
    size32 = (tmp_path / "fp32" / "adapter_model.safetensors").stat().st_size
    size16 = (tmp_path / "fp16" / "adapter_model.safetensors").stat().st_size
    assert size16 < 0.6 * size32
    x, t = torch.rand(2, 3, 32, 32) * 2 - 1, torch.randn(2, 16)
    with torch.no_grad():
        full, half = (load_adapter(base, tmp_path / d)(x, t) for d in ("fp32", "fp16"))
    assert full.dtype == half.dtype == torch.float32
    assert torch.allclose(full, half, atol=2e-3)  # fp16 rounding of the LoRA matrices only
