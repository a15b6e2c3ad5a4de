"""The network's input image: 70 landmarks drawn as white polylines on black, in [-1, 1].

Used by training (pairs from the store) and by live inference (points from a webcam or the
network), so it must be pure, deterministic and fast. Lines are drawn without anti-aliasing
(cv2.LINE_8): the same points always give the same pixels, on every machine.
Layout (DESIGN section 2, as the original): open curves jaw 0-16, brows 17-21 and 22-26,
nose bridge 27-30, lower nose 31-35; closed curves eyes 36-41 and 42-47, outer lip 48-59,
inner lip 60-67; pupils 68 and 69 as small filled dots. Line width 4 px at 512, scaled with size.
"""
from __future__ import annotations

import cv2
import numpy as np

OPEN_CURVES: tuple[tuple[int, int], ...] = ((0, 17), (17, 22), (22, 27), (27, 31), (31, 36))
CLOSED_CURVES: tuple[tuple[int, int], ...] = ((36, 42), (42, 48), (48, 60), (60, 68))
PUPILS: tuple[int, ...] = (68, 69)

_SHIFT = 4  # sub-pixel bits for cv2 (coordinates are fixed point with 4 fractional bits)


def line_width(size: int) -> int:
    """Line thickness in px: 4 at 512, proportional to size, at least 1."""
    return max(1, int(round(4.0 * size / 512.0)))


def pupil_radius(size: int) -> int:
    """Pupil dot radius in px: a small filled dot a bit wider than the lines."""
    return max(1, int(round(3.0 * size / 512.0)))


def draw_landmarks_u8(points70: np.ndarray, size: int) -> np.ndarray:
    """Draw the 70 points (px in a size x size image) as 0/255 uint8 (size, size).

    Non-finite points (a missing pupil, say) are left out of their curve.
    """
    pts = np.asarray(points70, dtype=np.float64)
    if pts.shape != (70, 2):
        raise ValueError(f"draw_landmarks expects (70, 2) points, got {pts.shape}")
    size = int(size)
    img = np.zeros((size, size), dtype=np.uint8)
    finite = np.isfinite(pts).all(axis=1)
    # Clamp far-away points so the fixed-point conversion cannot overflow; cv2 clips the rest.
    fixed = np.round(np.clip(np.where(finite[:, None], pts, 0.0), -4 * size, 5 * size)
                     * (1 << _SHIFT)).astype(np.int32)
    width = line_width(size)

    def curves(ranges: tuple[tuple[int, int], ...]) -> list[np.ndarray]:
        out = []
        for a, b in ranges:
            sel = fixed[a:b][finite[a:b]]
            if len(sel) >= 2:
                out.append(sel.reshape(-1, 1, 2))
        return out

    open_c, closed_c = curves(OPEN_CURVES), curves(CLOSED_CURVES)
    if open_c:
        cv2.polylines(img, open_c, False, 255, width, cv2.LINE_8, _SHIFT)
    if closed_c:
        cv2.polylines(img, closed_c, True, 255, width, cv2.LINE_8, _SHIFT)
    r = pupil_radius(size)
    for i in PUPILS:
        if finite[i]:
            cv2.circle(img, (int(fixed[i, 0]), int(fixed[i, 1])), r << _SHIFT, 255, -1,
                       cv2.LINE_8, _SHIFT)
    return img


def draw_landmarks(points70: np.ndarray, size: int) -> np.ndarray:
    """Draw the 70 points as float32 (size, size) in [-1, 1]: lines +1, background -1."""
    u8 = draw_landmarks_u8(points70, size)
    return u8.astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)
