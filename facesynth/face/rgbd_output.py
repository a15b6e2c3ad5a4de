"""The generator's [-1, 1] output -> what a VR client draws: RGB bytes, metric depth, 3D points.

Pure and shared by the live nodes, the example client's checks and the tests, so an RGBD frame
received over the network can be compared bit for bit with the generator's own output.
Depth goes out as uint16 in steps of `DEPTH_UNIT_MM` (0.1 mm: finer than the network's output
resolution, up to 6.5 m); 0 means no point (background).
"""
from __future__ import annotations

import numpy as np

from facesynth.face.crop import Normalisation
from facesynth.face.depth_norm import BACKGROUND_UNIT, mask_background, unit_to_mm
from facesynth.face.drawing import draw_landmarks
from facesynth.face.point_cloud import crop_points

DEPTH_UNIT_MM = 0.1
DEFAULT_D0_MM = 600.0  # used only when a model carries no normalisation (depth then not metric)


def network_input(points70: np.ndarray, size: int) -> np.ndarray:
    """Landmarks (network px) -> the generator's input batch (1, 1, S, S) float32 in [-1, 1]."""
    return draw_landmarks(points70, size)[None, None]


def masked_output(raw: np.ndarray) -> np.ndarray:
    """(1, 4, S, S) or (4, S, S) generator output -> (4, S, S) float32 with the background mask applied."""
    out = np.asarray(raw, dtype=np.float32)
    if out.ndim == 4:
        out = out[0]
    if out.ndim != 3 or out.shape[0] != 4:
        raise ValueError(f"expected a (4, S, S) RGBD output, got {out.shape}")
    return mask_background(out, BACKGROUND_UNIT, channel_axis=0)


def depth_params(meta: dict) -> tuple[float, float, bool]:
    """(d0_mm, face_depth_mm, metric) from a model's metadata."""
    if "d0_mm" in meta:
        return float(meta["d0_mm"]), float(meta.get("face_depth_mm", 80.0)), True
    return DEFAULT_D0_MM, float(meta.get("face_depth_mm", 80.0)), False


def to_rgbd(out: np.ndarray, d0_mm: float, face_depth_mm: float = 80.0,
            depth_unit_mm: float = DEPTH_UNIT_MM) -> tuple[np.ndarray, np.ndarray]:
    """Masked (4, S, S) output -> rgb (S, S, 3) uint8 and depth (S, S) uint16 in depth_unit_mm (0 = none)."""
    rgb = np.clip(np.rint((out[:3].transpose(1, 2, 0) + 1.0) * 127.5), 0, 255).astype(np.uint8)
    mm = unit_to_mm(out[3], d0_mm, face_depth_mm, background=BACKGROUND_UNIT)
    depth = np.clip(np.rint(mm * np.float32(1.0 / depth_unit_mm)), 0, 65535).astype(np.uint16)
    return rgb, depth


def points_xyzrgb(rgb: np.ndarray, depth_mm: np.ndarray, meta: dict) -> np.ndarray | None:
    """(N, 6) float32 x, y, z (mm, the crop's virtual camera) + r, g, b (0-255); None without crop_mm."""
    if "d0_mm" not in meta or "crop_mm" not in meta:
        return None
    norm = Normalisation.from_dict({**meta, "size": int(rgb.shape[0])})
    pts, cols = crop_points(rgb, depth_mm, norm)
    return np.concatenate([pts, cols.astype(np.float32)], axis=1)
