"""Mesh depth (capture/video/mesh_depth.py) against hand computations: planes seen through a pinhole,
a z-buffer, the iris and interpupillary scale of a synthetic face, and the view-ray geometry."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import binary_dilation

from facesynth.capture.video import mesh_depth as md

FX, CX, CY, W, H = 800.0, 320.0, 240.0, 640, 480


def project(p: np.ndarray) -> np.ndarray:
    """Pinhole pixels (x, y) of 3D points (N, 3) in mm."""
    return np.stack([FX * p[:, 0] / p[:, 2] + CX, FX * p[:, 1] / p[:, 2] + CY], axis=1)


def inside(tri_xy: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pixels strictly inside a 2D triangle (signs of the three edge cross products agree)."""
    s = []
    for i in range(3):
        (ax, ay), (bx, by) = tri_xy[i], tri_xy[(i + 1) % 3]
        s.append((bx - ax) * (y - ay) - (by - ay) * (x - ax))
    s = np.stack(s)
    return (s > 1e-6).all(0) | (s < -1e-6).all(0)


def test_a_tilted_triangle_gives_the_depth_of_its_plane_along_every_ray():
    corners = np.array([[-120.0, -90.0, 420.0], [150.0, -60.0, 610.0], [10.0, 140.0, 520.0]])
    xy = project(corners)
    depth = md.rasterise_depth(xy, corners[:, 2], np.array([[0, 1, 2]]), H, W)
    # the plane n . P = c through the corners; pixel ray r = ((x-cx)/f, (y-cy)/f, 1) meets it at Z = c / (n . r)
    n = np.cross(corners[1] - corners[0], corners[2] - corners[0])
    c = n @ corners[0]
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    z_plane = c / (n[0] * (x - CX) / FX + n[1] * (y - CY) / FX + n[2])
    hit = inside(xy, x, y)
    assert hit.sum() > 10_000
    np.testing.assert_allclose(depth[hit], z_plane[hit], rtol=1e-9)
    assert (depth[~hit & (depth > 0)]).size < 0.01 * hit.sum()  # only edge pixels beyond the strict interior
    assert depth[0, 0] == 0 and depth[H - 1, W - 1] == 0       # nothing outside: no reading


def test_the_nearer_of_two_overlapping_triangles_wins():
    near = np.array([[-50.0, -50.0, 300.0], [60.0, -40.0, 300.0], [0.0, 70.0, 300.0]])
    far = near * [2.0, 2.0, 1.0] + [0.0, 0.0, 200.0]  # larger, 200 mm further, covering the near one
    pts = np.vstack([far, near])
    depth = md.rasterise_depth(project(pts), pts[:, 2], np.array([[0, 1, 2], [3, 4, 5]]), H, W)
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    in_near, in_far = inside(project(near), x, y), inside(project(far), x, y)
    around_near = binary_dilation(in_near, iterations=2)  # its edge pixels may go either way
    np.testing.assert_allclose(depth[in_near], 300.0, rtol=1e-12)
    np.testing.assert_allclose(depth[in_far & ~around_near], 500.0, rtol=1e-12)


def test_the_tesselation_comes_from_the_wheel_and_matches_mediapipes_edge_list():
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    tri = md.triangles()
    assert tri.shape == (852, 3) and tri.min() == 0 and tri.max() == 467
    edges = {tuple(sorted((int(a), int(b)))) for t in tri for a, b in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0]))}
    assert edges == {tuple(sorted(e)) for e in FACEMESH_TESSELATION}


# a synthetic flat face: rigid points and irises at known millimetres on a plane Z0 in front of the camera
RIGID_MM = {33: (-45, 0), 133: (-15, 0), 362: (15, 0), 263: (45, 0), 168: (0, -8), 6: (0, 10), 1: (0, 40)}
IRIS_RIGHT, IRIS_LEFT = (-31.0, 0.0), (31.0, 0.0)  # iris centres 62 mm apart


def flat_face(z0: float, shift_mm=(0.0, 0.0), seed: int = 0) -> np.ndarray:
    """A (478, 3) mesh of a face plane at depth z0 (relief 0), pixels by projection; other vertices at random."""
    rng = np.random.default_rng(seed)
    p = np.zeros((478, 3))
    p[:, :2] = rng.uniform([-60, -80], [60, 80], size=(478, 2))
    for i, xy in RIGID_MM.items():
        p[i, :2] = xy
    for centre, c in ((468, IRIS_RIGHT), (473, IRIS_LEFT)):
        p[centre, :2] = c
        for k, a in enumerate((0.0, 90.0, 180.0, 270.0)):  # contour: 11.7 mm across
            p[centre + 1 + k, :2] = (c[0] + 5.85 * np.cos(np.radians(a)), c[1] + 5.85 * np.sin(np.radians(a)))
    p[:, :2] -= p[:468, :2].mean(axis=0) - np.asarray(shift_mm)  # the face's centre where asked
    p[:, 2] = z0
    mesh = np.zeros((478, 3))
    mesh[:, :2] = project(p)
    return mesh


def rigid_rms_mm() -> float:
    q = np.array(list(RIGID_MM.values()), float)
    return float(np.sqrt(((q - q.mean(0)) ** 2).sum(1).mean()))


def test_iris_and_interpupillary_scales_give_the_faces_size_in_mm():
    meshes = [flat_face(z0) for z0 in (350.0, 420.0, 600.0)]  # the size in mm does not depend on the distance
    by_iris = md.calibrate_face_size(meshes)
    assert by_iris.size_mm == pytest.approx(rigid_rms_mm(), rel=1e-9)
    assert by_iris.samples == 3 and by_iris.spread == pytest.approx(0.0, abs=1e-9)
    by_ipd = md.calibrate_face_size(meshes, ipd_mm=62.0)
    assert by_ipd.method == "ipd" and by_ipd.size_mm == pytest.approx(rigid_rms_mm(), rel=1e-9)
    # a person whose iris is 10 % larger than assumed looks 10 % smaller
    assert md.calibrate_face_size(meshes, iris_mm=11.7 / 1.1).size_mm == pytest.approx(rigid_rms_mm() / 1.1)


def test_a_flat_face_straight_ahead_comes_out_at_its_distance():
    mesh = flat_face(420.0)
    size = md.calibrate_face_size([mesh]).size_mm
    z = md.vertex_depths(mesh, size, FX, FX, CX, CY)
    np.testing.assert_allclose(z, 420.0, rtol=1e-9)
    depth = md.face_depth_map(mesh, size, {"fx": FX, "fy": FX, "cx": CX, "cy": CY}, H, W)
    assert depth.dtype == np.uint16 and set(np.unique(depth[depth > 0])) == {420}


def test_the_relief_is_taken_along_the_ray_to_the_face_not_the_optical_axis():
    # a face 12 degrees below the optical axis, its mesh flat (relief 0): the surface must come out
    # perpendicular to the ray to the face, i.e. tilted 12 degrees against the image plane
    mesh = flat_face(400.0, shift_mm=(0.0, 400.0 * np.tan(np.radians(12.0))))
    size = md.calibrate_face_size([mesh]).size_mm
    z = md.vertex_depths(mesh, size, FX, FX, CX, CY)
    pts = np.stack([(mesh[:, 0] - CX) * z / FX, (mesh[:, 1] - CY) * z / FX, z], axis=1)[:468]
    normal = np.linalg.svd(pts - pts.mean(0))[2][2]
    tilt = np.degrees(np.arccos(abs(normal[2])))
    assert tilt == pytest.approx(12.0, abs=0.3)
    # the face's lower edge (further from the axis) is nearer along the axis than its upper edge
    lower, upper = np.argmax(mesh[:468, 1]), np.argmin(mesh[:468, 1])
    assert z[lower] < z[upper]


def test_no_mesh_no_face():
    with pytest.raises(Exception, match="no frame with a single face"):
        md.calibrate_face_size([])
    with pytest.raises(Exception, match="478, 3"):
        md.rigid_size_px(np.zeros((468, 3)))
