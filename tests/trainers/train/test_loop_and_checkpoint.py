import pytest
import torch

from trainers.models import E2GANGenerator, GeneratorConfig, ResnetGenerator
from trainers.models.discriminator import layers_for, receptive_field
from trainers.train.checkpoint import load_checkpoint, save_checkpoint
from trainers.train.loop import PairTensors, fit, linear_decay, new_ema, new_gan_parts
from trainers.train.objective import Objective, new_discriminator

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


@pytest.mark.parametrize("kind", ["lsgan", "hinge"])
def test_fit_with_the_discriminator_and_without_text(kind):
    objective = Objective(adversarial_weight=1.0, l1_weight=100.0, gan_loss=kind, ndf=8, discriminator_lr=1e-3)
    result = fit(ResnetGenerator(ngf=8, n_blocks=1), _data(), steps=3, batch_size=4, lr=1e-3, use_text=False,
                 objective=objective)
    disc = result.gan.inner
    assert disc.n_layers == layers_for(32) == 1 and disc.receptive_field == 16
    assert result.gan.optimizer.param_groups[0]["initial_lr"] == 1e-3  # its own learning rate
    assert all(p.grad is not None for p in disc.parameters())


def test_patch_discriminator_field_scales_with_resolution():
    assert receptive_field(3) == 70 and layers_for(256) == 3
    assert layers_for(128) == 2 and layers_for(512) == 4 and layers_for(64) == 1


def test_linear_decay_and_ema():
    factor = linear_decay(10, 0.5)
    assert [factor(s) for s in (0, 4, 5, 8, 10)] == [1.0, 1.0, 1.0, 0.4, 0.0]
    model = E2GANGenerator(TINY)
    ema = new_ema(model, 0.9)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    fit(model, _data(), steps=4, batch_size=4, lr=1e-2, optimizer=opt, ema=ema,
        objective=Objective(adversarial_weight=0.0, lr_decay_from=0.5))
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0)  # decayed linearly to 0 at the last step
    ours, theirs = dict(model.named_parameters()), dict(ema.module.named_parameters())
    assert any(not torch.equal(ours[k], theirs[k]) for k in ours)  # an average, not a copy


def test_on_step_can_stop_early():
    result = fit(E2GANGenerator(TINY), _data(), steps=50, batch_size=2, lr=1e-3, on_step=lambda s, loss: s >= 3)
    assert result.steps == 3


def test_checkpoint_restores_model_optimizer_discriminator_ema_and_step(tmp_path):
    model = E2GANGenerator(TINY)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    objective = Objective(ndf=8, ema_decay=0.9)
    ema = new_ema(model, 0.9)
    gan = fit(model, _data(), steps=2, batch_size=4, lr=1e-3, optimizer=opt, objective=objective, ema=ema).gan
    save_checkpoint(tmp_path, model, opt, 2, {"loss": 0.5}, gan, ema)
    again = E2GANGenerator(TINY)
    opt2 = torch.optim.Adam(again.parameters(), lr=1e-3)
    gan2 = new_gan_parts(new_discriminator(objective, 32), objective.discriminator_lr)
    ema2 = new_ema(again, 0.9)
    state = load_checkpoint(tmp_path, again, opt2, gan2, ema2)
    assert state["step"] == 2
    assert all(torch.equal(a, b) for a, b in zip(gan.inner.state_dict().values(), gan2.inner.state_dict().values(), strict=True))
    assert gan2.optimizer.state_dict()["state"].keys() == gan.optimizer.state_dict()["state"].keys()
    assert all(torch.equal(a, b) for a, b in zip(ema.module.state_dict().values(), ema2.module.state_dict().values(), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True))
    saved, restored = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert saved.keys() == restored.keys()
    assert all(torch.equal(saved[k]["exp_avg"], restored[k]["exp_avg"]) for k in saved)
    assert not list(tmp_path.glob("*.pt")) and not list(tmp_path.glob("*.pkl"))
