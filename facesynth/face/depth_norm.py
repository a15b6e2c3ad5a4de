"""Metric depth <-> the network's [-1, 1] depth channel (DESIGN.md section 2).

The original mapped [D0 - 20 mm, D0 + face_depth] linearly to the output range and
treated everything outside as background. facesynth keeps millimetres in the store and
saves D0 and face_depth with the dataset and the model, so outputs can go back to mm.
Background is -1 on every channel.
"""
from __future__ import annotations

import numpy as np

NEAR_MM = 20.0  # how far in front of the nose-tip depth the range starts
BACKGROUND_UNIT = -0.995  # a network depth at or below this is background


def depth_range(d0_mm: float, face_depth_mm: float = 80.0) -> tuple[float, float]:
    """The metric range [near, far] in mm that the depth channel spans."""
    return float(d0_mm) - NEAR_MM, float(d0_mm) + float(face_depth_mm)


def in_face_range(depth_mm: np.ndarray, d0_mm: float, face_depth_mm: float = 80.0) -> np.ndarray:
    """True where a depth (mm, 0 = no reading) lies inside the face range."""
    near, far = depth_range(d0_mm, face_depth_mm)
    d = np.asarray(depth_mm, dtype=np.float32)
    return (d > 0) & (d >= near) & (d <= far)


def mm_to_unit(depth_mm: np.ndarray, d0_mm: float, face_depth_mm: float = 80.0,
               mask: np.ndarray | None = None) -> np.ndarray:
    """Depth in mm -> float32 in [-1, 1]; background (outside range or ~mask) -> -1."""
    near, far = depth_range(d0_mm, face_depth_mm)
    d = np.asarray(depth_mm, dtype=np.float32)
    unit = (d - near) / (far - near) * 2.0 - 1.0
    keep = in_face_range(d, d0_mm, face_depth_mm)
    if mask is not None:
        keep &= np.asarray(mask, dtype=bool)
    return np.where(keep, np.clip(unit, -1.0, 1.0), -1.0).astype(np.float32)


def unit_to_mm(unit: np.ndarray, d0_mm: float, face_depth_mm: float = 80.0,
               background: float = BACKGROUND_UNIT) -> np.ndarray:
    """Network depth in [-1, 1] -> float32 mm; values at or below `background` -> 0 (no point)."""
    near, far = depth_range(d0_mm, face_depth_mm)
    u = np.asarray(unit, dtype=np.float32)
    mm = near + (u + 1.0) * 0.5 * (far - near)
    return np.where(u > background, mm, 0.0).astype(np.float32)


def mask_background(out: np.ndarray, threshold: float = BACKGROUND_UNIT, channel_axis: int = -3) -> np.ndarray:
    """Every channel -1 where the depth channel (the last along `channel_axis`) is background."""
    arr = np.asarray(out)
    depth = np.take(arr, [arr.shape[channel_axis] - 1], axis=channel_axis)
    return np.where(depth <= threshold, np.asarray(-1.0, arr.dtype), arr)
