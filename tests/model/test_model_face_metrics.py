"""The face metrics: nothing outside the face moves them, filled depth is not ground truth, and
SSIM / PSNR agree with scikit-image's on real photographs."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from facesynth.depth.testdata_realdepth import realdata_root
from facesynth.model.dataset import PairData
from facesynth.model.metrics import (abs_laplacian_sum, erode, evaluate, face_psnr, face_ssim,
                                     psnr, ssim)

S = 48
REDWOOD = realdata_root() / "nyu_tum_sun_redwood_open3d"


def _ellipse(size: int, shrink: float = 0.0) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return ((yy - size / 2) / (size * (0.38 - shrink))) ** 2 + ((xx - size / 2) / (size * (0.3 - shrink))) ** 2 < 1


def _data(seed: int, face: np.ndarray, measured: np.ndarray, bg_color: int, bg_pred: float):
    """A 2-frame PairData and a predict() whose output differs from the truth inside the face."""
    g = np.random.default_rng(seed)
    color = g.integers(0, 256, (2, 3, S, S)).astype(np.uint8)
    depth = (np.linspace(-0.2, 0.6, S)[None, None, :, None] + 0 * color[:, :1]).astype(np.float32)
    f = np.broadcast_to(face, (2, 1, S, S))
    color = np.where(f, color, bg_color).astype(np.uint8)
    depth = np.where(f, depth, -1.0).astype(np.float16)
    data = PairData(torch.zeros(2, 1, S, S, dtype=torch.uint8), torch.from_numpy(color),
                    torch.from_numpy(depth), torch.from_numpy(f.copy()), np.arange(2),
                    {"near_mm": 20.0, "face_depth_mm": 80.0},
                    torch.from_numpy(np.broadcast_to(measured & face, (2, 1, S, S)).copy()))
    noise = np.random.default_rng(99).normal(0, 0.15, (2, 4, S, S)).astype(np.float32)
    _, y = data.batch([0, 1])
    pred = (y + torch.from_numpy(noise)).clamp(-0.99, 1)
    fb = torch.from_numpy(f.copy())
    pred = torch.where(fb, pred, torch.full_like(pred, bg_pred))
    return data, (lambda x: pred[: x.shape[0]])


def test_changing_background_pixels_changes_no_face_metric():
    from facesynth.model.lpips import LPIPS

    lp = LPIPS("alexnet")
    face = _ellipse(S)
    d1, p1 = _data(0, face, face, bg_color=0, bg_pred=0.3)      # background: black truth, grey-ish pred
    d2, p2 = _data(0, face, face, bg_color=200, bg_pred=0.9)    # other background in both
    a, b = evaluate(p1, d1, lp), evaluate(p2, d2, lp)
    for key in ("depth_mae_mm", "face_psnr", "face_ssim", "face_lpips", "depth_roughness_ratio"):
        assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), key
    assert abs(a["crop_psnr"] - b["crop_psnr"]) > 0.5  # the whole-crop number does see it
    assert 0 < a["face_ssim"] < 0.99 and a["depth_mae_mm"] > 1 and a["face_lpips"] > 0


def test_depth_mae_counts_only_measured_face_pixels():
    face = _ellipse(S)
    measured = face & ~_ellipse(S, shrink=0.2)           # a hole in the middle of the face
    data, _ = _data(1, face, measured, bg_color=0, bg_pred=-1.0)
    _, y = data.batch([0, 1])
    pred = y.clone()
    hole = torch.from_numpy(face & ~measured).expand(2, 1, S, S)
    pred[:, 3:][hole] += 0.8                              # wild depth where only the filler guessed
    ring = torch.from_numpy(measured).expand(2, 1, S, S)
    pred[:, 3:][ring] += 0.1                              # 0.1 unit = 5 mm over the 100 mm span
    res = evaluate(lambda x: pred, data)
    assert res["depth_mae_mm"] == pytest.approx(5.0, abs=0.02)  # float16 depth storage


def test_roughness_ratio_sees_a_checkerboard():
    face = torch.from_numpy(_ellipse(S))[None, None]
    smooth = torch.linspace(-0.2, 0.6, S).view(1, 1, S, 1).expand(1, 1, S, S)
    yy, xx = torch.meshgrid(torch.arange(S), torch.arange(S), indexing="ij")
    checker = smooth + 0.01 * ((yy + xx) % 2 * 2 - 1).float()
    truth = smooth + 0.002 * torch.sin(yy.float() / 2)      # a little real relief
    inner = erode(face, 2)
    assert bool((inner <= face).all()) and inner.sum() < face.sum()
    ratio = float(abs_laplacian_sum(checker, inner) / abs_laplacian_sum(truth, inner))
    # |lap| of the +-0.01 checkerboard is 8 * 0.01 per pixel; of the sine about 0.002 * 0.25 * 2/pi
    assert ratio > 20


@pytest.mark.skipif(not REDWOOD.is_dir(), reason=f"no real images at {REDWOOD}")
def test_ssim_and_psnr_match_scikit_image_on_real_photos():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    def load(i):
        bgr = cv2.imread(str(REDWOOD / f"redwood_color_{i:05d}.jpg"))
        rgb = cv2.cvtColor(cv2.resize(bgr, (80, 64), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        return rgb.astype(np.float64) / 255.0

    a, b = load(0), load(3)                               # two real frames of one scene
    ta, tb = (torch.from_numpy(v).permute(2, 0, 1)[None].float() * 2 - 1 for v in (a, b))
    kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=2)
    assert float(ssim(ta, tb)[0]) == pytest.approx(structural_similarity(a, b, **kw), abs=1e-4)
    assert float(psnr(ta, tb)[0]) == pytest.approx(peak_signal_noise_ratio(b, a, data_range=1.0), abs=1e-3)
    yy, xx = np.mgrid[:64, :80]
    mask = ((yy - 32) / 26.0) ** 2 + ((xx - 40) / 30.0) ** 2 < 1
    m = torch.from_numpy(mask)[None, None]
    assert float(face_psnr(ta, tb, m)[0]) == pytest.approx(
        peak_signal_noise_ratio(b[mask], a[mask], data_range=1.0), abs=1e-3)
    ca, cb = (np.where(mask[..., None], v, 0.0) for v in (a, b))  # the same background in both
    _, smap = structural_similarity(ca, cb, full=True, **kw)
    pad = 5                                                # skimage's map beyond the valid window
    inner = np.zeros_like(mask)
    inner[pad:-pad, pad:-pad] = mask[pad:-pad, pad:-pad]
    want = smap.mean(2)[inner].mean()
    assert float(face_ssim(ta, tb, m)[0]) == pytest.approx(want, abs=1e-4)
    assert abs(float(face_ssim(ta, tb, m)[0]) - float(ssim(ta, tb)[0])) > 1e-3  # a different number
