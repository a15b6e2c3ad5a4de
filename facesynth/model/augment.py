"""Augmentation of training batches and the eye/mouth weight map, for small captures.

A real capture may be a few dozen frames (the TrueDepth sequence: 28 to train on), so the net
sees each pose hundreds of times. Geometric changes are applied to the drawing and the target
alike, so the pair stays true: a shift (whole pixels), a zoom and a rotation about the crop's
centre, per sample, sampled nearest (no blended depth at the face's edge, the drawing stays 0/1).
The new border is background (-1). Colour jitter changes the target's brightness/contrast only:
the drawing has no colour. Eyes and mouth carry most of a real face's detail in a few percent
of its pixels; `detail_mask` marks them (from the landmarks) for an extra L1 weight there.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

EYES = ((36, 42), (42, 48))      # iBUG-68 closed curves (face/drawing.py)
MOUTH = (48, 60)                  # outer lip
OUTER_EYE_CORNERS = (36, 45)


def random_shift(x: torch.Tensor, y: torch.Tensor, px: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Shift a batch's drawings and targets alike by up to `px` pixels (new border: -1)."""
    dy, dx = (int(v) for v in torch.randint(-px, px + 1, (2,)))
    if dy == 0 and dx == 0:
        return x, y
    s = x.shape[-1]

    def shift(t):
        t = F.pad(t, (px, px, px, px), value=-1.0)
        return t[..., px - dy:px - dy + s, px - dx:px - dx + s]

    return shift(x), shift(y)


def random_affine(tensors: list[torch.Tensor | None], scale: float, rotate_deg: float,
                  fill: list[float]) -> list[torch.Tensor | None]:
    """A random zoom (1 +- `scale`) and rotation (+- `rotate_deg`) per sample, the same for every
    tensor of the list (see `affine`)."""
    b = next(t for t in tensors if t is not None).shape[0]
    zoom = 1.0 + (torch.rand(b) * 2 - 1) * scale
    angle = (torch.rand(b) * 2 - 1) * rotate_deg
    return affine(tensors, zoom, angle, fill)


def affine(tensors: list[torch.Tensor | None], zoom: torch.Tensor, angle_deg: torch.Tensor,
           fill: list[float]) -> list[torch.Tensor | None]:
    """Zoom each sample by `zoom` (B,) and rotate it by `angle_deg` (B,, counter-clockwise as
    seen) about the image centre, nearest sampling; every (B,C,S,S) tensor alike, with its
    `fill` value where the source has no pixel. None entries stay None."""
    ref = next(t for t in tensors if t is not None)
    a = torch.deg2rad(angle_deg.float())
    cos, sin = torch.cos(a) / zoom, torch.sin(a) / zoom
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta.to(ref.device, torch.float32), list(ref.shape), align_corners=False)
    out = []
    for t, value in zip(tensors, fill):
        if t is None:
            out.append(None)
            continue
        # grid_sample fills zeros outside the source: sample t - fill, add it back
        out.append(F.grid_sample(t - value, grid.to(t.dtype), mode="nearest", padding_mode="zeros",
                                 align_corners=False) + value)
    return out


def colour_jitter(y: torch.Tensor, amount: float) -> torch.Tensor:
    """Per-sample brightness and contrast of the target's colour (face pixels only, background
    kept at -1): (c + 1) * (1 +- amount) - 1 +- amount, clamped to [-1, 1]."""
    b = y.shape[0]
    gain = (1.0 + (torch.rand(b, 1, 1, 1) * 2 - 1) * amount).to(y)
    bias = ((torch.rand(b, 1, 1, 1) * 2 - 1) * amount).to(y)
    face = y[:, 3:] > -1.0
    rgb = torch.where(face, ((y[:, :3] + 1) * gain - 1 + bias).clamp(-1, 1), y[:, :3])
    return torch.cat([rgb, y[:, 3:]], 1)


def detail_mask(points: np.ndarray, size: int, grow: float = 0.08) -> np.ndarray:
    """(size, size) bool: the eyes' and the outer lip's polygons of 70 landmarks (px at `size`),
    dilated by `grow` x the outer eye corners' distance (lids and lip edges inside)."""
    out = np.zeros((size, size), np.uint8)
    pts = np.asarray(points, np.float64)
    for a, b in (*EYES, MOUTH):
        poly = pts[a:b]
        poly = poly[np.isfinite(poly).all(1)]
        if len(poly) >= 3:
            cv2.fillPoly(out, [np.round(poly).astype(np.int32).reshape(-1, 1, 2)], 1)
    eyes = np.linalg.norm(pts[OUTER_EYE_CORNERS[0]] - pts[OUTER_EYE_CORNERS[1]])
    r = int(round(grow * eyes)) if np.isfinite(eyes) else 0
    if r > 0:
        out = cv2.dilate(out, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    return out > 0
