"""Multiscale PatchGAN discriminator of pix2pixHD (DESIGN.md section 2).

Three copies of a PatchGAN, each looking at the (drawing + RGBD) pair at half the previous
resolution. Each returns every intermediate feature map as well as its patch scores, so the
generator can be trained with feature matching. 4 layers -> the 0.8 per-layer weight
(4 / (n_layers + 1)) of pix2pixHD's feature-matching loss.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from facesynth.model.generator import init_weights


class PatchGAN(nn.Module):
    """One scale: n_layers stride-2 convs, one stride-1 conv, one score conv (no sigmoid: LSGAN)."""

    def __init__(self, in_ch: int = 5, ndf: int = 64, n_layers: int = 4):
        super().__init__()
        kw, pad = 4, int(math.ceil((4 - 1) / 2))
        blocks = [nn.Sequential(nn.Conv2d(in_ch, ndf, kw, 2, pad), nn.LeakyReLU(0.2, True))]
        nf = ndf
        for n in range(1, n_layers):
            prev, nf = nf, min(nf * 2, 512)
            blocks.append(nn.Sequential(nn.Conv2d(prev, nf, kw, 2, pad), nn.BatchNorm2d(nf),
                                        nn.LeakyReLU(0.2, True)))
        prev, nf = nf, min(nf * 2, 512)
        blocks.append(nn.Sequential(nn.Conv2d(prev, nf, kw, 1, pad), nn.BatchNorm2d(nf),
                                    nn.LeakyReLU(0.2, True)))
        blocks.append(nn.Sequential(nn.Conv2d(nf, 1, kw, 1, pad)))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return feats  # last entry: patch scores


class MultiscaleDiscriminator(nn.Module):
    """`num_d` PatchGANs on successively 2x average-pooled inputs; returns features per scale."""

    def __init__(self, in_ch: int = 5, ndf: int = 64, n_layers: int = 4, num_d: int = 3):
        super().__init__()
        self.n_layers, self.num_d = n_layers, num_d
        self.scales = nn.ModuleList(PatchGAN(in_ch, ndf, n_layers) for _ in range(num_d))
        self.down = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        out = []
        for i, d in enumerate(self.scales):
            if i:
                x = self.down(x)
            out.append(d(x))
        return out
