import torch

from trainers.models import E2GANGenerator, GeneratorConfig, ResnetGenerator
from trainers.train.checkpoint import load_checkpoint, save_checkpoint
from trainers.train.loop import PairTensors, fit

TINY = GeneratorConfig(width=8, text_dim=16, context_tokens=2, heads=2)


def _data(n=8):
    torch.manual_seed(0)
    x = torch.rand(n, 3, 32, 32) * 2 - 1
    return PairTensors(x, x.flip(1) * 0.5, torch.randn(n, 16))


def test_fit_lowers_the_loss():
    model = E2GANGenerator(TINY)
    data = _data()
    first = fit(model, data, steps=1, batch_size=8, lr=3e-3).last_loss
    last = fit(model, data, steps=60, batch_size=8, lr=3e-3).last_loss
    assert last < first


def test_fit_with_the_discriminator_and_without_text():
    fit(ResnetGenerator(ngf=8, n_blocks=1), _data(), steps=2, batch_size=4, lr=1e-3, use_text=False, adversarial_weight=0.1)


def test_on_step_can_stop_early():
    result = fit(E2GANGenerator(TINY), _data(), steps=50, batch_size=2, lr=1e-3, on_step=lambda s, loss: s >= 3)
    assert result.steps == 3


def test_checkpoint_restores_model_optimizer_and_step(tmp_path):
    model = E2GANGenerator(TINY)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    fit(model, _data(), steps=2, batch_size=4, lr=1e-3, optimizer=opt)
    save_checkpoint(tmp_path, model, opt, 2, {"loss": 0.5})
    again = E2GANGenerator(TINY)
    opt2 = torch.optim.Adam(again.parameters(), lr=1e-3)
    state = load_checkpoint(tmp_path, again, opt2)
    assert state["step"] == 2
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True))
    saved, restored = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert saved.keys() == restored.keys()
    assert all(torch.equal(saved[k]["exp_avg"], restored[k]["exp_avg"]) for k in saved)
    assert not list(tmp_path.glob("*.pt")) and not list(tmp_path.glob("*.pkl"))
