"""Crop, scale and depth-normalise a face (DESIGN section 2, as the original, but metric).

- One global size factor: the crop spans `crop_mm` millimetres at the nose-tip plane, fixed from
  the reference (first accepted) frame. A frame whose nose is at d mm is cropped with a side of
  fx * crop_mm / d source pixels, so the face keeps one size in the crop whatever its distance.
- Depth: shifted so the nose tip (iBUG 30) sits at D0, the reference frame's nose depth; kept in
  millimetres (uint16). Pixels with no reading or outside [D0 - 20 mm, D0 + face_depth] are
  background: depth 0 and mask False.
- Every frame keeps its transform (x0, y0, s, nose_mm): crop px = (source px - (x0, y0)) * s, and
  source depth = crop depth - D0 + nose_mm, which is what point_cloud.py needs to invert it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from facesynth.face.depth_norm import NEAR_MM, in_face_range

NOSE_TIP = 30
MARGIN = 1.7  # crop side / the 68 landmarks' larger extent, on the reference frame


@dataclass
class Normalisation:
    """Saved with the dataset (root attr `normalisation`) and the model: all that inverts a crop."""

    d0_mm: float
    crop_mm: float                 # crop side in mm at the nose-tip plane
    size: int = 256
    face_depth_mm: float = 80.0
    near_mm: float = NEAR_MM
    scale_factor: float = 0.0      # crop px per mm at the nose plane = size / crop_mm
    margin: float = MARGIN
    reference_frame: int = 0
    fx: float = 0.0                # colour camera focal length used (px)

    def __post_init__(self) -> None:
        self.scale_factor = float(self.size) / float(self.crop_mm)

    def to_dict(self) -> dict:
        return {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalisation":
        keys = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in keys and k != "scale_factor"})


@dataclass
class CropResult:
    color: np.ndarray       # (S, S, 3) uint8
    depth: np.ndarray       # (S, S) uint16 mm, shifted so the nose is at D0; 0 = background
    mask: np.ndarray        # (S, S) bool face
    landmarks: np.ndarray   # (70, 2) float32 crop px
    transform: np.ndarray   # (4,) float32 x0, y0, s, nose_mm
    ok: bool


def nose_depth(depth_mm: np.ndarray, points70: np.ndarray, radius: int | None = None) -> float:
    """Median valid depth (mm) in a small window around the nose tip; NaN when none is valid.

    The window is 4 % of the outer inter-ocular distance (at least 2 px) so one missing
    or noisy reading at the tip does not move D0.
    """
    d = np.asarray(depth_mm)
    p = np.asarray(points70, dtype=np.float64)
    if radius is None:
        radius = max(2, int(round(0.04 * np.linalg.norm(p[45] - p[36]))))
    x, y = int(round(p[NOSE_TIP, 0])), int(round(p[NOSE_TIP, 1]))
    h, w = d.shape[:2]
    x0, x1, y0, y1 = max(0, x - radius), min(w, x + radius + 1), max(0, y - radius), min(h, y + radius + 1)
    if x0 >= x1 or y0 >= y1:
        return float("nan")
    win = d[y0:y1, x0:x1]
    valid = win[win > 0]
    return float(np.median(valid)) if valid.size else float("nan")


def reference(points70: np.ndarray, depth_mm: np.ndarray, fx: float, size: int = 256,
              face_depth_mm: float = 80.0, margin: float = MARGIN, frame: int = 0) -> Normalisation | None:
    """The dataset's normalisation from its reference frame (None when the nose has no depth)."""
    d0 = nose_depth(depth_mm, points70)
    if not np.isfinite(d0):
        return None
    p = np.asarray(points70, dtype=np.float64)[:68]
    extent = float(max(np.ptp(p[:, 0]), np.ptp(p[:, 1])))
    crop_mm = margin * extent * d0 / float(fx)
    return Normalisation(d0_mm=d0, crop_mm=crop_mm, size=int(size), face_depth_mm=float(face_depth_mm),
                         margin=float(margin), reference_frame=int(frame), fx=float(fx))


def crop_frame(rgb: np.ndarray, depth_mm: np.ndarray, points70: np.ndarray, norm: Normalisation,
               fx: float) -> CropResult:
    """Crop one frame (colour and depth registered to it) around its landmarks."""
    size = int(norm.size)
    nose = nose_depth(depth_mm, points70)
    if not np.isfinite(nose):
        return _empty(size)
    p = np.asarray(points70, dtype=np.float64)
    side = max(4, int(round(float(fx) * norm.crop_mm / nose)))
    lo, hi = p[:68].min(0), p[:68].max(0)
    cx, cy = (lo + hi) / 2.0
    x0, y0 = int(round(cx - side / 2.0)), int(round(cy - side / 2.0))
    color_roi = _roi(np.asarray(rgb), x0, y0, side)
    depth_roi = _roi(np.asarray(depth_mm), x0, y0, side)
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    color = cv2.resize(color_roi, (size, size), interpolation=interp)
    depth_src = cv2.resize(depth_roi, (size, size), interpolation=cv2.INTER_NEAREST).astype(np.float32)
    shifted = np.where(depth_src > 0, depth_src + (norm.d0_mm - nose), 0.0)
    mask = in_face_range(shifted, norm.d0_mm, norm.face_depth_mm)
    depth = np.where(mask, np.clip(np.round(shifted), 0, 65535), 0).astype(np.uint16)
    s = size / side
    lm = ((p - (x0, y0)) * s).astype(np.float32)
    transform = np.array([x0, y0, s, nose], dtype=np.float32)
    return CropResult(color, depth, mask, lm, transform, True)


def source_depth(crop_depth_mm: np.ndarray, transform: np.ndarray, d0_mm: float) -> np.ndarray:
    """Undo the depth shift: crop mm -> the frame's original mm (0 stays 0)."""
    d = np.asarray(crop_depth_mm, dtype=np.float32)
    return np.where(d > 0, d - float(d0_mm) + float(transform[3]), 0.0).astype(np.float32)


def _roi(img: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """img[y0:y0+side, x0:x0+side] with zeros where the square leaves the image."""
    h, w = img.shape[:2]
    out = np.zeros((side, side, *img.shape[2:]), dtype=img.dtype)
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(w, x0 + side), min(h, y0 + side)
    if sx0 < sx1 and sy0 < sy1:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = img[sy0:sy1, sx0:sx1]
    return out


def _empty(size: int) -> CropResult:
    return CropResult(np.zeros((size, size, 3), np.uint8), np.zeros((size, size), np.uint16),
                      np.zeros((size, size), bool), np.full((70, 2), np.nan, np.float32),
                      np.full(4, np.nan, np.float32), False)
