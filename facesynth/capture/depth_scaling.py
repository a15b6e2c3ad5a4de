"""Depth registered to colour by scaling, and depth in any unit to the store's uint16 millimetres.

Phones give a depth map over the same field of view as the colour image at another resolution
(an iPhone's TrueDepth 480x640 or 360x640, its LiDAR 256x192, for a 1080p or 720p colour image),
from (nearly) the same optical centre: no extrinsics, only two sets of intrinsics. A colour
pixel then finds its depth by going through both: its centre, normalised with the colour
intrinsics, lands in one depth pixel (nearest: a value is never blended with its neighbour
across a face's edge, so every registered value is a measured one).

Pixel convention: pixel i covers [i, i + 1), the convention in which intrinsics scale with the
image size (Apple's `K * (depth width / colour width)`), so `scaled_intrinsics` of the colour
intrinsics are the depth map's own when only the colour's are known. For the real TrueDepth
sequence (colour focal 957.366, pp 358.75; depth 478.683, 179.37) colour pixel x reads depth
pixel x // 2, as its README says.
"""
from __future__ import annotations

import numpy as np

from facesynth.errors import InputDataError

MAX_MM = 65535  # uint16 millimetres: 65.5 m, beyond every depth sensor facesynth reads


def intrinsics_dict(fx: float, fy: float, cx: float, cy: float, width: int, height: int, **extra) -> dict:
    """The store's intrinsics record (colour pixels), checked: positive focal lengths and sizes."""
    values = [float(fx), float(fy), float(cx), float(cy)]
    if not all(np.isfinite(values)) or fx <= 0 or fy <= 0 or width <= 0 or height <= 0:
        raise InputDataError(f"intrinsics fx={fx} fy={fy} cx={cx} cy={cy} for {width}x{height} are not a camera")
    return {"fx": values[0], "fy": values[1], "cx": values[2], "cy": values[3],
            "width": int(width), "height": int(height), **extra}


def scaled_intrinsics(k: dict, width: int, height: int) -> dict:
    """Intrinsics `k` (for k["width"] x k["height"]) of the same field of view seen at width x height."""
    sx, sy = width / k["width"], height / k["height"]
    return intrinsics_dict(k["fx"] * sx, k["fy"] * sy, k["cx"] * sx, k["cy"] * sy, width, height)


def same_aspect(a: tuple[int, int], b: tuple[int, int], tolerance: float = 0.01) -> bool:
    """Whether two (height, width) sizes have the same aspect ratio (within `tolerance`, relative)."""
    return abs(a[1] / a[0] - b[1] / b[0]) <= tolerance * (b[1] / b[0])


class ScaledRegistration:
    """Depth pixels -> colour pixels for a depth map over the colour's field of view (see module doc).

    The look-up (which depth pixel each colour row and column reads) is computed once; `apply` is
    then one gather per frame. Colour pixels that fall outside the depth map read 0 (no reading).
    """

    def __init__(self, color: dict, depth: dict):
        self.color, self.depth = color, depth
        self.color_shape = (int(color["height"]), int(color["width"]))
        self.depth_shape = (int(depth["height"]), int(depth["width"]))
        u = np.arange(self.color_shape[1]) + 0.5
        v = np.arange(self.color_shape[0]) + 0.5
        cols = np.floor((u - color["cx"]) * depth["fx"] / color["fx"] + depth["cx"]).astype(np.int64)
        rows = np.floor((v - color["cy"]) * depth["fy"] / color["fy"] + depth["cy"]).astype(np.int64)
        self._cols_ok = (cols >= 0) & (cols < self.depth_shape[1])
        self._rows_ok = (rows >= 0) & (rows < self.depth_shape[0])
        self._cols = np.clip(cols, 0, self.depth_shape[1] - 1)
        self._rows = np.clip(rows, 0, self.depth_shape[0] - 1)
        self.identity = (self.color_shape == self.depth_shape and bool(self._cols_ok.all() and self._rows_ok.all())
                         and np.array_equal(self._cols, np.arange(self.color_shape[1]))
                         and np.array_equal(self._rows, np.arange(self.color_shape[0])))

    @classmethod
    def same_view(cls, color: dict, depth_height: int, depth_width: int) -> "ScaledRegistration":
        """For a depth map whose only intrinsics are the colour's, scaled to its size (same field of view)."""
        return cls(color, scaled_intrinsics(color, depth_width, depth_height))

    def apply(self, depth: np.ndarray) -> np.ndarray:
        """A (depth h, depth w) map -> (colour h, colour w), same dtype; 0 outside the depth map."""
        if depth.shape[:2] != self.depth_shape:
            raise InputDataError(f"depth map is {depth.shape[1]}x{depth.shape[0]}, "
                                 f"expected {self.depth_shape[1]}x{self.depth_shape[0]}")
        if self.identity:
            return depth
        out = depth[self._rows[:, None], self._cols[None, :]]
        if not (self._rows_ok.all() and self._cols_ok.all()):
            out[~(self._rows_ok[:, None] & self._cols_ok[None, :])] = 0
        return out


def to_mm_u16(depth: np.ndarray, mm_per_unit: float) -> np.ndarray:
    """Depth in any unit (float metres: 1000; raw TrueDepth PNG units: 0.0153) -> uint16 millimetres.

    No reading (0, NaN, negative, infinite) and depth beyond 65.535 m are 0, the store's "no reading".
    """
    mm = np.asarray(depth, dtype=np.float64) * float(mm_per_unit)
    ok = np.isfinite(mm) & (mm > 0) & (mm <= MAX_MM)
    return np.where(ok, np.rint(np.where(ok, mm, 0)), 0).astype(np.uint16)
