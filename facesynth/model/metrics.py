"""Evaluation on the eval split: depth MAE (mm, inside the face), colour PSNR / SSIM, LPIPS,
generator ms/frame, and the same numbers for a trivial baseline (the mean eval image), so a
trained model can be shown to have learned something.
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from facesynth.model.dataset import PairData
from facesynth.model.generator import apply_background_mask


def depth_mae_mm(pred_depth: torch.Tensor, true_depth: torch.Tensor, face: torch.Tensor,
                 span_mm: float) -> tuple[float, int]:
    """Sum of |error| in mm over face pixels and their count (unit depth spans `span_mm`)."""
    err = (pred_depth.float() - true_depth.float()).abs() * (span_mm / 2.0)
    m = face.bool()
    return float(err[m].sum()), int(m.sum())


def psnr(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB) of colour in [-1, 1], computed on the [0, 1] scale."""
    mse = ((pred.float() - true.float()) / 2.0).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(1.0 / mse.clamp_min(1e-10))


def _gauss(size: int = 11, sigma: float = 1.5, device=None) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def ssim(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM (Wang et al. 2004, 11x11 Gaussian, sigma 1.5) on [0, 1], channel mean."""
    a, b = (pred.float() + 1) / 2, (true.float() + 1) / 2
    c = a.shape[1]
    g = _gauss(device=a.device)
    k = (g[:, None] * g[None, :]).expand(c, 1, 11, 11).contiguous()

    def blur(t):
        return F.conv2d(t, k, groups=c)

    mu_a, mu_b = blur(a), blur(b)
    saa = blur(a * a) - mu_a ** 2
    sbb = blur(b * b) - mu_b ** 2
    sab = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (saa + sbb + c2))
    return s.flatten(1).mean(1)


@torch.no_grad()
def evaluate(predict, data: PairData, lpips_fn=None, batch_size: int = 8, device=None) -> dict:
    """Metrics of `predict` (input batch -> RGBD batch) over every pair in `data`."""
    span = float(data.norm.get("near_mm", 20.0)) + float(data.norm.get("face_depth_mm", 80.0))
    mae_sum, mae_n, ps, ss, lp = 0.0, 0, [], [], []
    for lo in range(0, len(data), batch_size):
        idx = list(range(lo, min(lo + batch_size, len(data))))
        x, y = data.batch(idx, device)
        out = apply_background_mask(predict(x).float())
        s, n = depth_mae_mm(out[:, 3:], y[:, 3:], data.face[idx].to(out.device), span)
        mae_sum, mae_n = mae_sum + s, mae_n + n
        ps.append(psnr(out[:, :3], y[:, :3]))
        ss.append(ssim(out[:, :3], y[:, :3]))
        if lpips_fn is not None:
            lp.append(lpips_fn(out[:, :3], y[:, :3]))
    res = {"frames": len(data),
           "depth_mae_mm": mae_sum / max(mae_n, 1),
           "psnr": float(torch.cat(ps).mean()) if ps else float("nan"),
           "ssim": float(torch.cat(ss).mean()) if ss else float("nan")}
    if lp:
        res["lpips"] = float(torch.cat(lp).mean())
    return res


def mean_image_baseline(data: PairData, device=None) -> torch.Tensor:
    """The mean eval target (1, 4, S, S): the trivial 'model' every trained one must beat."""
    total = None
    for lo in range(0, len(data), 32):
        _, y = data.batch(list(range(lo, min(lo + 32, len(data)))), device)
        s = y.sum(0, keepdim=True)
        total = s if total is None else total + s
    return total / max(len(data), 1)


@torch.no_grad()
def generator_ms_per_frame(gen, size: int, device=None, repeats: int = 5, batch: int = 1) -> float:
    """Median wall time of one eval-mode forward pass per frame (after a warm-up)."""
    x = torch.zeros(batch, 1, size, size, device=device)
    gen(x)
    times = []
    for _ in range(repeats):
        if x.is_cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        gen(x)
        if x.is_cuda:
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t) * 1000.0 / batch)
    return sorted(times)[len(times) // 2]
