"""Generator, discriminator and losses: shapes, the original's structure, and real gradients."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from facesynth.model.discriminator import MultiscaleDiscriminator
from facesynth.model.generator import UNetGenerator, apply_background_mask, num_downs_for
from facesynth.model.losses import LossWeights, discriminator_loss, feature_matching, generator_loss, lsgan


@pytest.mark.parametrize("size", [64, 128])
def test_generator_shapes_and_range(size):
    g = UNetGenerator(size=size, ngf=8)
    assert g.num_downs == int(np.log2(size))
    y = g(torch.randn(2, 1, size, size)).detach()
    assert y.shape == (2, 4, size, size)
    assert float(y.abs().max()) <= 1.0


def test_generator_matches_original_structure_at_256():
    g = UNetGenerator(size=256, ngf=4)
    assert g.num_downs == 8
    drops = [m for m in g.modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == 3 and all(d.p == 0.5 for d in drops)  # num_downs - 5 inner ngf*8 blocks
    assert sum(isinstance(m, nn.BatchNorm2d) for m in g.modules()) == 6 + 7
    w = torch.cat([m.weight.detach().flatten() for m in g.modules() if isinstance(m, nn.Conv2d)])
    assert float(w.mean()) == pytest.approx(0.0, abs=2e-3) and float(w.std()) == pytest.approx(0.02, rel=0.05)
    assert isinstance(g.ups[0][-1], nn.Tanh)
    assert num_downs_for(512) == 9
    with pytest.raises(ValueError, match="power of two"):
        UNetGenerator(size=100)


def test_background_mask_torch_and_numpy():
    out = torch.zeros(1, 4, 2, 2)
    out[0, :3] = 0.5
    out[0, 3, 0, 0] = -1.0
    m = apply_background_mask(out)
    assert m[0, :, 0, 0].tolist() == [-1.0] * 4
    assert m[0, :, 1, 1].tolist() == [0.5, 0.5, 0.5, 0.0]
    n = apply_background_mask(out[0].numpy())
    assert n.shape == (4, 2, 2) and n[:, 0, 0].tolist() == [-1.0] * 4 and n[0, 1, 0] == 0.5


def test_multiscale_discriminator_features():
    d = MultiscaleDiscriminator(in_ch=5, ndf=8, n_layers=4, num_d=3)
    feats = d(torch.randn(1, 5, 64, 64))
    assert len(feats) == 3 and all(len(f) == 6 for f in feats)  # 4 stride-2, 1 stride-1, scores
    assert [f[-1].shape[1] for f in feats] == [1, 1, 1]
    assert feats[0][0].shape[-1] == 33 and feats[1][0].shape[-1] == 17  # scale 2 sees a 32x32 input


def test_loss_weights_follow_pix2pixhd():
    real = [[torch.zeros(1, 1, 2, 2)] * 5 + [torch.ones(1, 1, 2, 2)] for _ in range(3)]
    fake = [[torch.ones(1, 1, 2, 2)] * 5 + [torch.zeros(1, 1, 2, 2)] for _ in range(3)]
    # every feature differs by 1: 3 scales * 5 layers * (1/3) * 0.8 = 4.0
    assert float(feature_matching(fake, real)) == pytest.approx(4.0)
    assert float(feature_matching(real, real)) == 0.0
    assert float(lsgan(real, True)) == 0.0 and float(lsgan(fake, True)) == pytest.approx(3.0)
    loss, parts = discriminator_loss(fake, real)
    assert float(loss) == 0.0 and parts == {"d_fake": 0.0, "d_real": 0.0}


def test_generator_loss_lpips_term_backpropagates():
    from facesynth.model.lpips import LPIPS

    torch.manual_seed(0)
    g = UNetGenerator(size=64, ngf=8)
    d = MultiscaleDiscriminator(ndf=8)
    x, y = torch.randn(1, 1, 64, 64), torch.rand(1, 4, 64, 64) * 2 - 1
    fake = g(x)
    w = LossWeights(l1=0.0, feat=0.0, lpips=10.0, gan=0.0)
    loss, parts = generator_loss(d(torch.cat([x, fake], 1)), d(torch.cat([x, y], 1)), fake, y, w, LPIPS())
    assert parts["g_lpips"] > 0 and parts["g_l1"] == 0.0
    loss.backward()
    grads = [p.grad for p in g.parameters() if p.grad is not None]
    assert grads and float(sum(gr.abs().sum() for gr in grads)) > 0  # only LPIPS can give these
