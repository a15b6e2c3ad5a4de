"""U-Net generator of the pix2pix recipe (DESIGN.md section 2), with the options facesynth's
own recipe measured (benchmarks/quality.py, docs/model.md).

One channel in (the landmark drawing), four out (RGB + depth, tanh, [-1, 1]). The number
of down-samplings follows the image size (log2(size)) so the innermost feature map is
1x1 at any size: 256 and 512 as the original, 64 or 128 in tests. The defaults are the
original's: transposed 4x4 convolutions up, BatchNorm, dropout 0.5 in the inner ngf*8
blocks, N(0, 0.02) initialisation. Options (constructor kwargs, so generator.json's "arch"
rebuilds them): `upsample="resize"` (nearest 2x + 3x3 conv: no checkerboard, Odena et al.
2016), `norm="instance"` (per-image statistics: the same in training and in export at any
batch size, unlike BatchNorm's running averages) or "none".
"""
from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from facesynth.face.depth_norm import BACKGROUND_UNIT, mask_background
from facesynth.errors import ModelFileError
from facesynth.model.arch import (DEFAULT_MEMORY_BUDGET, NORMS, SCALARS, UPSAMPLE, check_arch, check_memory,
                                  num_downs_for)  # noqa: F401 (num_downs_for: tests use it here)


def _channels(level: int, ngf: int) -> int:
    return ngf * min(2 ** level, 8)


class UNetGenerator(nn.Module):
    """pix2pix U-Net written as explicit lists of blocks (straightforward to trace/export)."""

    def __init__(self, size: int = 256, ngf: int = 64, in_ch: int = 1, out_ch: int = 4,
                 dropout: float = 0.5, upsample: str = "transpose", norm: str = "batch"):
        super().__init__()
        if upsample not in UPSAMPLE:
            raise ValueError(f"upsample must be one of {UPSAMPLE} (got {upsample!r})")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS} (got {norm!r})")
        self.size, self.ngf, self.in_ch, self.out_ch = size, ngf, in_ch, out_ch
        self.dropout, self.upsample, self.norm = float(dropout), upsample, norm
        self.arch = {"size": size, "ngf": ngf, "in_ch": in_ch, "out_ch": out_ch,
                     "dropout": float(dropout), "upsample": upsample, "norm": norm}
        n = num_downs_for(size)
        self.num_downs = n
        downs, ups = [], []
        for i in range(n):
            c_in = in_ch if i == 0 else _channels(i - 1, ngf)
            conv = nn.Conv2d(c_in, _channels(i, ngf), 4, 2, 1, bias=False)
            if i == 0:
                downs.append(nn.Sequential(conv))
            elif i == n - 1:  # innermost: no norm
                downs.append(nn.Sequential(nn.LeakyReLU(0.2, True), conv))
            else:
                downs.append(nn.Sequential(nn.LeakyReLU(0.2, True), conv,
                                           _norm_layer(norm, _channels(i, ngf))))
        for i in range(n):
            c_in = _channels(i, ngf) * (1 if i == n - 1 else 2)
            if i == 0:
                ups.append(nn.Sequential(nn.ReLU(True), *_up_conv(upsample, c_in, out_ch, True),
                                         nn.Tanh()))
                continue
            c_out = _channels(i - 1, ngf)
            layers = [nn.ReLU(True), *_up_conv(upsample, c_in, c_out, norm == "none"),
                      _norm_layer(norm, c_out)]
            if 4 <= i < n - 1 and dropout > 0:  # the original's num_downs-5 inner ngf*8 blocks
                layers.append(nn.Dropout(dropout))
            ups.append(nn.Sequential(*layers))
        self.downs = nn.ModuleList(downs)
        self.ups = nn.ModuleList(ups)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = []
        h = x
        for down in self.downs:
            h = down(h)
            feats.append(h)
        n = len(self.downs)
        h = self.ups[n - 1](feats[n - 1])
        for i in range(n - 2, -1, -1):
            h = self.ups[i](torch.cat([feats[i], h], 1))
        return h


def _norm_layer(norm: str, ch: int) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm2d(ch)
    if norm == "instance":  # affine, no running stats: identical in train() and eval()
        return nn.InstanceNorm2d(ch, affine=True, track_running_stats=False)
    return nn.Identity()


def _up_conv(mode: str, c_in: int, c_out: int, bias: bool) -> list[nn.Module]:
    """2x up-sampling convolution: transposed 4x4 stride 2 (the original) or resize-convolution."""
    if mode == "transpose":
        return [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=bias)]
    return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, 1, 1, bias=bias)]


def init_weights(module: nn.Module, gain: float = 0.02) -> None:
    """The original's 'normal' init: conv weights N(0, gain), BatchNorm weight N(1, gain)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)


def apply_background_mask(out, threshold: float = BACKGROUND_UNIT, channel_axis: int = -3):
    """Set every channel to -1 where the depth channel (the last) is background.

    Works on torch tensors (traceable, used inside the exported graph) and on numpy arrays
    (live output outside the graph); channel-first layout (N,4,H,W) or (4,H,W) by default.
    """
    if isinstance(out, torch.Tensor):
        depth = out.narrow(channel_axis, out.shape[channel_axis] - 1, 1)
        return torch.where(depth <= threshold, torch.full_like(out, -1.0), out)
    return mask_background(out, threshold, channel_axis)


def constructor_params() -> dict[str, inspect.Parameter]:
    sig = inspect.signature(UNetGenerator.__init__)
    return {n: p for n, p in sig.parameters.items()
            if n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def generator_arch(gen: UNetGenerator) -> dict[str, Any]:
    """{kwarg: value} for every UNetGenerator constructor parameter, as JSON scalars."""
    given = getattr(gen, "arch", None)
    if isinstance(given, dict):  # a generator that records its own kwargs
        return {k: v for k, v in given.items() if isinstance(v, SCALARS)}
    arch = {}
    for name, p in constructor_params().items():
        value = getattr(gen, name, p.default)
        if not isinstance(value, SCALARS):  # an attribute that is a layer, not the kwarg
            value = p.default
        if value is not inspect.Parameter.empty:
            arch[name] = value
    return arch


def build_generator(arch: Any, where: str, memory_budget: int = DEFAULT_MEMORY_BUDGET) -> UNetGenerator:
    """UNetGenerator(**arch), refusing anything that is not a plain dict of known scalar kwargs, or
    a net that would not fit `memory_budget` bytes (checked before a byte of it is allocated)."""
    check_arch(arch, where)
    check_memory(arch, where, memory_budget)
    try:
        return UNetGenerator(**arch)
    except (TypeError, ValueError) as e:
        raise ModelFileError(f"{where}: cannot build the generator from {arch}: {e}") from None
