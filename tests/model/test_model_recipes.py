"""Recipe options: what each one promises, at a tiny size."""
from __future__ import annotations

import pytest
import torch

from facesynth.model.arch import build_generator, generator_arch
from facesynth.model.generator import UNetGenerator
from facesynth.model.losses import weighted_l1
from facesynth.model.recipes import RECIPES, recipe_config
from facesynth.model.train import Trainer, TrainConfig, random_shift

pytestmark = pytest.mark.usefixtures("one_thread")


def test_original_recipe_is_the_plain_config_and_names_are_checked():
    plain, orig = TrainConfig(), recipe_config("original")
    for key in RECIPES["original"]:
        assert getattr(orig, key) == getattr(plain, key), key
    fs = recipe_config("facesynth", ngf=8, ema=None)
    assert fs.recipe == "facesynth" and fs.ngf == 8 and fs.ema == RECIPES["facesynth"]["ema"]
    assert recipe_config("facesynth", upsample="transpose").upsample == "transpose"
    with pytest.raises(ValueError, match="unknown recipe"):
        recipe_config("fancy")
    with pytest.raises(ValueError, match="unknown training settings"):
        recipe_config("original", bogus=1)


def test_instance_norm_generator_computes_the_same_in_training_and_export():
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    torch.manual_seed(0)
    inst = UNetGenerator(32, 8, dropout=0.0, upsample="resize", norm="instance")
    with torch.no_grad():
        assert torch.allclose(inst.train()(x), inst.eval()(x), atol=1e-6)
    torch.manual_seed(0)
    bn = UNetGenerator(32, 8, dropout=0.0)
    with torch.no_grad():  # BatchNorm: batch statistics in training, running averages in export
        assert not torch.allclose(bn.train()(x), bn.eval()(x), atol=1e-3)


def test_generator_options_round_trip_through_the_arch_dict():
    g = UNetGenerator(32, 6, dropout=0.0, upsample="resize", norm="none")
    arch = generator_arch(g)
    assert arch["upsample"] == "resize" and arch["norm"] == "none" and arch["dropout"] == 0.0
    copy = build_generator(arch, "test")
    copy.load_state_dict(g.state_dict())
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(copy.eval()(x), g.eval()(x))
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in g.modules())
    with pytest.raises(ValueError):
        UNetGenerator(32, 8, upsample="pixelshuffle")


def test_weighted_l1_and_shift():
    fake, target = torch.zeros(1, 4, 4, 4), torch.zeros(1, 4, 4, 4)
    target[:, 3] = 1.0                      # depth off by 1, colour exact
    assert float(weighted_l1(fake, target, 1.0)) == pytest.approx(float(torch.nn.functional.l1_loss(fake, target)))
    assert float(weighted_l1(fake, target, 2.0)) == pytest.approx(0.5)
    x = torch.arange(64.0).view(1, 1, 8, 8)
    torch.manual_seed(3)
    sx, sy = random_shift(x, x.expand(1, 4, 8, 8), 2)
    assert torch.equal(sx, sy[:, :1]) and sx.shape == x.shape
    kept = sx[sx >= 0]
    assert len(kept) >= 36 and set(kept.tolist()) <= set(x.flatten().tolist())


def test_warmup_trains_only_the_generator_and_ema_is_what_is_shipped(tmp_path):
    cfg = recipe_config("facesynth", size=32, ngf=4, ndf=4, lpips=False, device="cpu", warmup_steps=2,
                        ema=0.9, batch_size=2)
    tr = Trainer(cfg, tmp_path)
    d0 = [p.detach().clone() for p in tr.D.parameters()]
    x, y = torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(2, 4, 32, 32) * 2 - 1
    for _ in range(2):
        parts = tr.train_step(x, y)
        tr.step += 1
    assert "g_gan" not in parts and all(torch.equal(a, b) for a, b in zip(d0, tr.D.parameters()))
    parts = tr.train_step(x, y)
    assert "g_gan" in parts and not all(torch.equal(a, b) for a, b in zip(d0, tr.D.parameters()))
    assert tr.G_export is tr.G_ema
    g, e = dict(tr.G.named_parameters()), dict(tr.G_ema.named_parameters())
    assert any(not torch.equal(g[k], e[k]) for k in g)


def test_resume_with_another_recipe_is_refused_clearly(tmp_path):
    from facesynth.errors import ModelFileError

    first = Trainer(recipe_config("facesynth", size=32, ngf=4, ndf=4, lpips=False, device="cpu"), tmp_path)
    first.save(epoch_end=True)
    other = Trainer(recipe_config("original", size=32, ngf=4, ndf=4, lpips=False, device="cpu"), tmp_path)
    with pytest.raises(ModelFileError, match="upsample: checkpoint resize vs now transpose"):
        other.resume()
