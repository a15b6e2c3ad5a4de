"""pix2pix + pix2pixHD objectives (DESIGN.md section 2).

Generator: least-squares GAN + L1 x100 + feature matching x10 (x 4/(n_layers+1) per layer,
1/num_d per scale) + LPIPS x10 on the colour channels. LPIPS is part of the autograd graph
(the original converted it to a Python float, so it never trained anything).
facesynth options: a (1 - face SSIM) colour term and LPIPS on the faces' box with the background
made equal, the evaluation's own measures (metrics.py) as losses.
Discriminator: least-squares GAN, real and fake halves averaged.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from facesynth.face.depth_norm import BACKGROUND_UNIT
from facesynth.model.metrics import composite, face_boxes, face_ssim, lpips_sized


@dataclass
class LossWeights:
    l1: float = 100.0
    feat: float = 10.0
    lpips: float = 10.0
    gan: float = 1.0
    depth: float = 1.0   # the depth channel's L1 weight next to each colour channel's (1: plain L1)
    lpips_face: bool = False  # LPIPS on the faces' box, background equal (True) or the whole crop
    ssim: float = 0.0    # weight of (1 - face SSIM of the colour), the metric itself; 0: off (the original)
    detail: float = 0.0  # extra L1 weight on the eyes and mouth: x (1 + detail) there; 0: off


def lsgan(preds: list[list[torch.Tensor]], real: bool) -> torch.Tensor:
    """Mean squared distance of every scale's patch scores to 1 (real) or 0 (fake), summed over scales."""
    target = 1.0 if real else 0.0
    total = preds[0][-1].new_zeros((), dtype=torch.float32)
    for scale in preds:
        p = scale[-1].float()
        total = total + F.mse_loss(p, torch.full_like(p, target))
    return total


def feature_matching(fake: list[list[torch.Tensor]], real: list[list[torch.Tensor]]) -> torch.Tensor:
    """pix2pixHD feature matching: L1 between D features of fake and (detached) real pairs."""
    num_d = len(fake)
    n_layers = len(fake[0]) - 2  # blocks = n_layers stride-2 + 1 stride-1 + score
    layer_w, scale_w = 4.0 / (n_layers + 1), 1.0 / num_d
    total = fake[0][0].new_zeros((), dtype=torch.float32)
    for f_scale, r_scale in zip(fake, real):
        for f, r in zip(f_scale[:-1], r_scale[:-1]):
            total = total + scale_w * layer_w * F.l1_loss(f.float(), r.detach().float())
    return total


def weighted_l1(fake: torch.Tensor, target: torch.Tensor, depth_w: float = 1.0,
                detail: torch.Tensor | None = None, detail_w: float = 0.0) -> torch.Tensor:
    """Mean L1 over RGB + depth with the depth channel weighted `depth_w` (1: F.l1_loss), and each
    pixel of the (B,1,H,W) `detail` map weighted (1 + detail_w)."""
    err = (fake.float() - target.float()).abs()
    if detail is not None and detail_w > 0:
        err = err * (1.0 + detail_w * detail.float())
    err = err.mean((0, 2, 3))
    return (err[:3].sum() + depth_w * err[3:].sum()) / fake.shape[1]


def target_face(target: torch.Tensor) -> torch.Tensor:
    """(B,1,H,W) face mask of a target RGBD batch: where its depth is not background."""
    return target[:, 3:] > BACKGROUND_UNIT


def face_ssim_loss(fake: torch.Tensor, target: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
    """1 - the face SSIM of metrics.py on the colour channels: the evaluation's own measure as a
    differentiable loss (Zhao et al. 2017 mix it with L1)."""
    return 1.0 - face_ssim(fake[:, :3], target[:, :3], face).nan_to_num(1.0).mean()


def face_box_colour(fake: torch.Tensor, target: torch.Tensor,
                    face: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Colour of both, background -1 in both (the target's), cut to the box around every face of
    the batch (upsampled to 64 px when smaller): what the face LPIPS metric looks at, and about
    60 % of a 128 px crop's pixels."""
    boxes = [box for box in face_boxes(face) if box is not None]
    if not boxes:
        return fake[:, :3], target[:, :3]
    y0, y1 = min(b[0] for b in boxes), max(b[1] for b in boxes)
    x0, x1 = min(b[2] for b in boxes), max(b[3] for b in boxes)
    a, b = composite(fake[:, :3], face), composite(target[:, :3], face)
    return lpips_sized(a[..., y0:y1, x0:x1], b[..., y0:y1, x0:x1])


def _recon_parts(fake, target, w: LossWeights, lpips_fn, detail=None) -> dict[str, torch.Tensor]:
    parts = {"g_l1": weighted_l1(fake, target, w.depth, detail, w.detail) * w.l1}
    face = target_face(target) if w.ssim > 0 or w.lpips_face else None
    if w.ssim > 0:
        parts["g_ssim"] = face_ssim_loss(fake, target, face) * w.ssim
    if lpips_fn is not None and w.lpips > 0:
        a, b = (face_box_colour(fake, target, face) if w.lpips_face else (fake[:, :3], target[:, :3]))
        parts["g_lpips"] = lpips_fn(a.float(), b.float()).mean() * w.lpips
    return parts


def reconstruction_loss(fake: torch.Tensor, target: torch.Tensor, w: LossWeights,
                        lpips_fn=None, detail=None) -> tuple[torch.Tensor, dict[str, float]]:
    """L1 (+ LPIPS) only: the warm-up objective, before the discriminator has learned anything."""
    parts = _recon_parts(fake, target, w, lpips_fn, detail)
    total = sum(parts.values())
    return total, {k: float(v.detach()) for k, v in parts.items()}


def generator_loss(d_fake, d_real, fake: torch.Tensor, target: torch.Tensor,
                   w: LossWeights, lpips_fn=None, detail=None) -> tuple[torch.Tensor, dict[str, float]]:
    """Total generator loss and its parts (floats, for logging only)."""
    parts = {"g_gan": lsgan(d_fake, True) * w.gan,
             **_recon_parts(fake, target, w, lpips_fn, detail),
             "g_feat": feature_matching(d_fake, d_real) * w.feat}
    total = sum(parts.values())
    return total, {k: float(v.detach()) for k, v in parts.items()}


def discriminator_loss(d_fake, d_real) -> tuple[torch.Tensor, dict[str, float]]:
    fake, real = lsgan(d_fake, False), lsgan(d_real, True)
    return 0.5 * (fake + real), {"d_fake": float(fake.detach()), "d_real": float(real.detach())}
