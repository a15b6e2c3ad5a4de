"""Crop + depth -> coloured metric 3D points, and a PLY writer: the inverse of crop.py's normalisation.

Two ways back to metric space:
- `crop_points(..., transform=..., intrinsics=...)`: exact, for a stored crop frame. The crop pixel
  goes back to the source pixel (x0, y0, s), the depth back to the source depth (shifted by
  nose_mm - D0), then the colour camera's pinhole model unprojects it (camera coordinates, mm).
- `crop_points(..., transform=None)`: for a network output, which has no frame of its own. The
  face is taken as sitting at D0 seen by a virtual pinhole camera centred on the crop with
  fx = scale_factor * D0 (crop px per mm at the nose plane times the distance), so the face has
  its real metric size; coordinates are relative to that virtual camera.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from facesynth.face.crop import Normalisation


def crop_intrinsics(norm: Normalisation) -> dict:
    """The virtual pinhole camera of a normalised crop (face at D0)."""
    f = norm.scale_factor * norm.d0_mm
    c = (norm.size - 1) / 2.0
    return {"fx": f, "fy": f, "cx": c, "cy": c, "width": norm.size, "height": norm.size}


def crop_points(color: np.ndarray, depth_mm: np.ndarray, norm: Normalisation,
                transform: np.ndarray | None = None, intrinsics: dict | None = None,
                mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(M, 3) float32 points in mm and (M, 3) uint8 colours for every pixel with depth (and mask)."""
    d = np.asarray(depth_mm, dtype=np.float32)
    keep = d > 0
    if mask is not None:
        keep &= np.asarray(mask, dtype=bool)
    v, u = np.nonzero(keep)
    z = d[v, u]
    if transform is None:
        k = crop_intrinsics(norm)
        us, vs = u.astype(np.float64), v.astype(np.float64)
    else:
        if intrinsics is None:
            raise ValueError("a per-frame transform needs the colour camera's intrinsics")
        x0, y0, s, nose = (float(t) for t in transform)
        k = intrinsics
        us, vs = u / s + x0, v / s + y0  # crop px -> source px (pixel grids share the corner)
        z = z - norm.d0_mm + nose
    x = (us - k["cx"]) * z / k["fx"]
    y = (vs - k["cy"]) * z / k["fy"]
    pts = np.stack([x, y, z], axis=1).astype(np.float32)
    cols = np.asarray(color)[v, u].astype(np.uint8).reshape(-1, 3)
    return pts, cols


def point_at(px: np.ndarray, depth_mm: np.ndarray, norm: Normalisation,
             transform: np.ndarray | None = None, intrinsics: dict | None = None,
             radius: int = 2) -> np.ndarray:
    """The 3D point (mm) of one crop pixel, its depth the median valid depth around it."""
    d = np.asarray(depth_mm, dtype=np.float32)
    x, y = int(round(float(px[0]))), int(round(float(px[1])))
    win = d[max(0, y - radius):y + radius + 1, max(0, x - radius):x + radius + 1]
    valid = win[win > 0]
    if not valid.size:
        return np.full(3, np.nan, np.float32)
    one = np.zeros_like(d)
    one[y, x] = np.median(valid)
    pts, _ = crop_points(np.zeros((*d.shape, 3), np.uint8), one, norm, transform, intrinsics)
    return pts[0]


def write_ply(path: str | Path, points: np.ndarray, colors: np.ndarray, binary: bool = True) -> Path:
    """Write coloured points as PLY (binary little-endian by default, or ASCII)."""
    p = Path(path)
    pts = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    cols = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    if len(pts) != len(cols):
        raise ValueError(f"{len(pts)} points but {len(cols)} colours")
    fmt = "binary_little_endian" if binary else "ascii"
    header = (f"ply\nformat {fmt} 1.0\ncomment facesynth crop point cloud, millimetres\n"
              f"element vertex {len(pts)}\nproperty float x\nproperty float y\nproperty float z\n"
              "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n")
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "wb") as f:
        f.write(header.encode("ascii"))
        if binary:
            rec = np.empty(len(pts), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                                            ("r", "u1"), ("g", "u1"), ("b", "u1")])
            rec["x"], rec["y"], rec["z"] = pts[:, 0], pts[:, 1], pts[:, 2]
            rec["r"], rec["g"], rec["b"] = cols[:, 0], cols[:, 1], cols[:, 2]
            f.write(rec.tobytes())
        else:
            for (x, y, z), (r, g, b) in zip(pts, cols):
                f.write(f"{x:.3f} {y:.3f} {z:.3f} {r} {g} {b}\n".encode("ascii"))
    return p


def read_ply(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a PLY written by write_ply (either format) back: points (M, 3) f32, colours (M, 3) u8."""
    data = Path(path).read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    n = int(next(line.split()[2] for line in header if line.startswith("element vertex")))
    if any("binary_little_endian" in line for line in header):
        rec = np.frombuffer(data[end:], dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                                               ("r", "u1"), ("g", "u1"), ("b", "u1")], count=n)
        return (np.stack([rec["x"], rec["y"], rec["z"]], 1).astype(np.float32),
                np.stack([rec["r"], rec["g"], rec["b"]], 1).astype(np.uint8))
    rows = np.array([line.split() for line in data[end:].decode("ascii").splitlines()[:n]], dtype=np.float64)
    return rows[:, :3].astype(np.float32), rows[:, 3:6].astype(np.uint8)
