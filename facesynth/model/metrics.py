"""Evaluation on the eval split, on the face only, and the same numbers for a trivial baseline
(the mean eval image), so a trained model can be shown to have learned something.

Face metrics (what the product is judged by):
- `face_psnr` / `face_ssim`: colour inside the true face mask; outside it both images are set to
  the same value (-1) first, so no background pixel can move them;
- `face_lpips`: LPIPS on the face's bounding box, background set equal in both images;
- `depth_mae_mm`: |error| in mm on *measured* face pixels only (the filler's estimates of the
  sensor's holes are not ground truth);
- `depth_roughness_ratio`: mean |Laplacian| of predicted / of true depth inside the face mask
  eroded by 2 px; a checkerboard or speckle shows as > 1, an over-smoothed face as < 1.
Whole-crop numbers (`crop_psnr`, `crop_ssim`, background -1 in both) stay for comparison with
the original tool, which reported those.
"""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from facesynth.model.dataset import PairData
from facesynth.model.generator import apply_background_mask

SSIM_WIN, SSIM_SIGMA = 11, 1.5
LPIPS_MIN_SIDE = 64      # AlexNet LPIPS needs about this much; smaller face boxes are upsampled
ROUGHNESS_ERODE_PX = 2
FACE_KEYS = ("depth_mae_mm", "face_psnr", "face_ssim", "face_lpips", "depth_roughness_ratio")


def depth_mae_mm(pred_depth: torch.Tensor, true_depth: torch.Tensor, mask: torch.Tensor,
                 span_mm: float) -> tuple[float, int]:
    """Sum of |error| in mm over `mask` pixels and their count (unit depth spans `span_mm`)."""
    err = (pred_depth.float() - true_depth.float()).abs() * (span_mm / 2.0)
    m = mask.bool()
    return float(err[m].sum()), int(m.sum())


def psnr(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB) of colour in [-1, 1], computed on the [0, 1] scale, whole image."""
    mse = ((pred.float() - true.float()) / 2.0).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(1.0 / mse.clamp_min(1e-10))


def _gauss(size: int = SSIM_WIN, sigma: float = SSIM_SIGMA, device=None) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def ssim_map(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """SSIM map (Wang et al. 2004, 11x11 Gaussian, sigma 1.5, on [0, 1]), channel mean,
    (B, 1, H-10, W-10): the 'valid' positions, whose window lies inside the image."""
    a, b = (pred.float() + 1) / 2, (true.float() + 1) / 2
    c = a.shape[1]
    g = _gauss(device=a.device)
    k = (g[:, None] * g[None, :]).expand(c, 1, SSIM_WIN, SSIM_WIN).contiguous()

    def blur(t):
        return F.conv2d(t, k, groups=c)

    mu_a, mu_b = blur(a), blur(b)
    saa = blur(a * a) - mu_a ** 2
    sbb = blur(b * b) - mu_b ** 2
    sab = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (saa + sbb + c2))
    return s.mean(1, keepdim=True)


def ssim(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM over the whole image (mean of the valid map)."""
    return ssim_map(pred, true).flatten(1).mean(1)


def _valid(mask: torch.Tensor) -> torch.Tensor:
    """`mask` cropped to the positions of ssim_map."""
    p = SSIM_WIN // 2
    return mask[..., p:mask.shape[-2] - p, p:mask.shape[-1] - p]


def composite(img: torch.Tensor, face: torch.Tensor, value: float = -1.0) -> torch.Tensor:
    """`img` inside the face, `value` on every channel outside it."""
    return torch.where(face.bool(), img.float(), torch.full_like(img, value, dtype=torch.float32))


def face_psnr(pred: torch.Tensor, true: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR over the face pixels (all channels); NaN for an image without face."""
    m = face.bool().expand_as(pred).float()
    se = ((pred.float() - true.float()) / 2.0).pow(2) * m
    mse = se.flatten(1).sum(1) / m.flatten(1).sum(1)
    return 10.0 * torch.log10(1.0 / mse.clamp_min(1e-10))


def face_ssim(pred: torch.Tensor, true: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
    """Per-image mean SSIM over face pixels, both images composited onto the same background."""
    s = ssim_map(composite(pred, face), composite(true, face))
    m = _valid(face.bool()).float()
    return (s * m).flatten(1).sum(1) / m.flatten(1).sum(1)


def face_boxes(face: torch.Tensor) -> list[tuple[int, int, int, int] | None]:
    """(y0, y1, x0, x1) bounding box of each image's face mask (None where there is none)."""
    boxes = []
    for m in face.bool().flatten(0, 1) if face.dim() == 4 else face.bool():
        ys, xs = torch.nonzero(m, as_tuple=True)
        boxes.append(None if len(ys) == 0 else
                     (int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1))
    return boxes


def lpips_sized(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both crops upsampled (bilinear) so that the shorter side is LPIPS_MIN_SIDE, if it is less."""
    h, w = a.shape[-2:]
    if min(h, w) >= LPIPS_MIN_SIDE:
        return a, b
    hw = [round(n * LPIPS_MIN_SIDE / min(h, w)) for n in (h, w)]
    return tuple(F.interpolate(t, size=hw, mode="bilinear", align_corners=False) for t in (a, b))


def face_lpips(lpips_fn, pred: torch.Tensor, true: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
    """Per-image LPIPS on the face's bounding box (composited; small boxes upsampled to 64)."""
    a, b = composite(pred[:, :3], face), composite(true[:, :3], face)
    out = []
    for i, box in enumerate(face_boxes(face)):
        if box is None:
            out.append(torch.tensor(float("nan"), device=pred.device))
            continue
        y0, y1, x0, x1 = box
        pa, pb = lpips_sized(a[i:i + 1, :, y0:y1, x0:x1], b[i:i + 1, :, y0:y1, x0:x1])
        out.append(lpips_fn(pa, pb).reshape(()))
    return torch.stack(out)


_LAPLACE = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)


def erode(mask: torch.Tensor, px: int) -> torch.Tensor:
    """Binary erosion of (B,1,H,W) `mask` by a (2px+1) square (outside the image counts as out)."""
    inv = (~mask.bool()).float()
    inv = F.pad(inv, (px, px, px, px), value=1.0)
    return F.max_pool2d(inv, 2 * px + 1, stride=1) < 0.5


def abs_laplacian_sum(depth: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image sum of |Laplacian| of (B,1,H,W) depth over `mask` (interior pixels only)."""
    lap = F.conv2d(depth.float(), _LAPLACE.to(depth.device)).abs()
    m = mask.bool()[..., 1:-1, 1:-1].float()
    return (lap * m).flatten(1).sum(1)


def _mean(parts: list[torch.Tensor]) -> float:
    if not parts:
        return float("nan")
    v = torch.cat(parts)
    v = v[~torch.isnan(v)]
    return float(v.mean()) if len(v) else float("nan")


@torch.no_grad()
def evaluate(predict, data: PairData, lpips_fn=None, batch_size: int = 8, device=None) -> dict:
    """Face and whole-crop metrics of `predict` (input batch -> RGBD batch) over `data`."""
    span = float(data.norm.get("near_mm", 20.0)) + float(data.norm.get("face_depth_mm", 80.0))
    mae_sum, mae_n, rough_p, rough_t = 0.0, 0, 0.0, 0.0
    acc: dict[str, list[torch.Tensor]] = {k: [] for k in ("face_psnr", "face_ssim", "face_lpips",
                                                          "crop_psnr", "crop_ssim")}
    for lo in range(0, len(data), batch_size):
        idx = list(range(lo, min(lo + batch_size, len(data))))
        x, y = data.batch(idx, device)
        out = apply_background_mask(predict(x).float())
        face = data.face[idx].to(out.device)
        measured = data.measured[idx].to(out.device) & face
        s, n = depth_mae_mm(out[:, 3:], y[:, 3:], measured, span)
        mae_sum, mae_n = mae_sum + s, mae_n + n
        inner = erode(face, ROUGHNESS_ERODE_PX)
        rough_p += float(abs_laplacian_sum(out[:, 3:], inner).sum())
        rough_t += float(abs_laplacian_sum(y[:, 3:], inner).sum())
        acc["face_psnr"].append(face_psnr(out[:, :3], y[:, :3], face))
        acc["face_ssim"].append(face_ssim(out[:, :3], y[:, :3], face))
        acc["crop_psnr"].append(psnr(out[:, :3], y[:, :3]))
        acc["crop_ssim"].append(ssim(out[:, :3], y[:, :3]))
        if lpips_fn is not None:
            acc["face_lpips"].append(face_lpips(lpips_fn, out, y, face))
    res = {"frames": len(data), "depth_mae_mm": mae_sum / mae_n if mae_n else float("nan"),
           "depth_roughness_ratio": rough_p / rough_t if rough_t > 0 else float("nan")}
    for k, parts in acc.items():
        if parts:
            res[k] = _mean(parts)
    return res


def mean_image_baseline(data: PairData, device=None) -> torch.Tensor:
    """The mean eval target (1, 4, S, S): the trivial 'model' every trained one must beat."""
    total = None
    for lo in range(0, len(data), 32):
        _, y = data.batch(list(range(lo, min(lo + 32, len(data)))), device)
        s = y.sum(0, keepdim=True)
        total = s if total is None else total + s
    return total / max(len(data), 1)


def beats_baseline(metrics: dict, baseline: dict) -> dict[str, bool]:
    """Per face metric: is the model better than the baseline (lower MAE/LPIPS, higher PSNR/SSIM,
    roughness ratio closer to 1)?"""
    out = {}
    for k in FACE_KEYS:
        if k not in metrics or k not in baseline:
            continue
        m, b = metrics[k], baseline[k]
        if k == "depth_roughness_ratio":
            out[k] = abs(m - 1.0) < abs(b - 1.0)
        elif k in ("face_psnr", "face_ssim"):
            out[k] = m > b
        else:
            out[k] = m < b
    return out


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
