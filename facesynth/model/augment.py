"""Augmentation of training batches and the eye/mouth weight map, for small captures.

A real capture may be a few dozen frames (the TrueDepth sequence: 28 to train on), so the net
sees each pose hundreds of times. Geometric changes are applied to the drawing and the target
alike, so the pair stays true: a shift (whole pixels), a zoom and a rotation about the crop's
centre, per sample; depth and drawing sampled nearest (no blended depth at the face's edge, the
drawing stays 0/1), the colour bilinearly. The new border is background (-1). Colour jitter changes the target's brightness/contrast only:
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


def augment_pair(x: torch.Tensor, y: torch.Tensor, detail: torch.Tensor | None, shift_px: int, scale: float,
                 rotate_deg: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """A random shift (whole pixels, up to `shift_px`), zoom (1 +- `scale`) and rotation (up to
    `rotate_deg`) per sample, the same for the drawing, the target and the eye/mouth map. The
    target's colour is resampled bilinearly (nearest made its texture jagged, measured worse in
    face LPIPS), everything else nearest; colour outside the moved face is background again."""
    b = x.shape[0]
    zoom = 1.0 + (torch.rand(b) * 2 - 1) * scale
    angle = (torch.rand(b) * 2 - 1) * rotate_deg
    shift = torch.randint(-shift_px, shift_px + 1, (b, 2)).float() if shift_px > 0 else torch.zeros(b, 2)
    x, rgb, depth, detail = affine([x, y[:, :3], y[:, 3:], detail], zoom, angle, shift, [-1.0, -1.0, -1.0, 0.0],
                                   ["nearest", "bilinear", "nearest", "nearest"])
    rgb = torch.where(depth > -1.0, rgb, torch.full_like(rgb, -1.0))
    return x, torch.cat([rgb, depth], 1), detail


def affine(tensors: list[torch.Tensor | None], zoom: torch.Tensor, angle_deg: torch.Tensor, shift_px: torch.Tensor,
           fill: list[float], modes: list[str] | None = None) -> list[torch.Tensor | None]:
    """Zoom each sample by `zoom` (B,) and rotate it by `angle_deg` (B,, counter-clockwise as
    seen) about the image centre, then move it by `shift_px` (B, 2: x, y pixels); every
    (B,C,S,S) tensor alike, sampled by its mode (default nearest) with its `fill` value where the
    source has no pixel. None entries stay None."""
    ref = next(t for t in tensors if t is not None)
    h, w = ref.shape[-2:]
    a = torch.deg2rad(angle_deg.float())
    cos, sin = torch.cos(a) / zoom, torch.sin(a) / zoom
    # output -> source in normalised coordinates: undo the shift, then the rotation and zoom
    tx, ty = -2.0 * shift_px[:, 0] / w, -2.0 * shift_px[:, 1] / h
    theta = torch.stack([torch.stack([cos, -sin, cos * tx - sin * ty], 1),
                         torch.stack([sin, cos, sin * tx + cos * ty], 1)], 1)
    grid = F.affine_grid(theta.to(ref.device, torch.float32), list(ref.shape), align_corners=False)
    out = []
    for t, value, mode in zip(tensors, fill, modes or ["nearest"] * len(tensors)):
        if t is None:
            out.append(None)
            continue
        # grid_sample fills zeros outside the source: sample t - fill, add it back
        out.append(F.grid_sample(t - value, grid.to(t.dtype), mode=mode, padding_mode="zeros",
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
