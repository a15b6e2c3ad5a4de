"""Crop / depth normalisation / point cloud on synthetic geometry (exact inverses)."""
import numpy as np
import pytest

from facesynth.face import crop as vc
from facesynth.face import point_cloud as pc

FX, W, H = 600.0, 640, 480


def _scene(dist_mm):
    """A 150 mm wide fronto-parallel 'face' plate with a 20 mm nose bump, at dist_mm, and its landmarks."""
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    x = (u - W / 2) * dist_mm / FX
    y = (v - H / 2) * dist_mm / FX
    z = np.full((H, W), float(dist_mm))
    r = np.hypot(x, y)
    z -= np.clip(20 - r ** 2 / 100, 0, None)  # rounded nose at the centre
    inside = (np.abs(x) < 75) & (np.abs(y) < 100)
    depth = np.where(inside, z, 0).round().astype(np.uint16)
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 0] = (u % 256).astype(np.uint8)
    # landmarks: a 120 x 140 mm box pattern around the centre, nose tip at the centre
    rng = np.random.RandomState(0)
    mm = np.c_[rng.uniform(-60, 60, 70), rng.uniform(-70, 70, 70)]
    mm[30] = (0, 0)
    mm[36], mm[45] = (-48, -30), (48, -30)
    px = mm * FX / dist_mm + (W / 2, H / 2)
    return rgb, depth, px.astype(np.float32)


def test_reference_and_scale_normalisation():
    rgb, depth, pts = _scene(500)
    norm = vc.reference(pts, depth, FX, size=256)
    assert norm.d0_mm == pytest.approx(480, abs=1)  # the nose bump is 20 mm in front of the plate
    a = vc.crop_frame(rgb, depth, pts, norm, FX)
    rgb2, depth2, pts2 = _scene(700)
    b = vc.crop_frame(rgb2, depth2, pts2, norm, FX)
    # one global size factor: the same face lands at the same crop positions at either distance
    assert np.abs(a.landmarks[:68] - b.landmarks[:68]).max() < 2.5  # 1 % (integer crop side)
    # depth shifted so the nose tip sits at D0, in mm
    for r in (a, b):
        x, y = np.round(r.landmarks[30]).astype(int)
        assert abs(int(r.depth[y, x]) - norm.d0_mm) <= 1
        assert r.depth.dtype == np.uint16 and r.mask.any() and (r.depth[~r.mask] == 0).all()
    # plate pixels (20 mm behind the nose) are inside [D0-20, D0+80]; outside the plate is background
    assert not a.mask[0, 0] and a.mask[128, 200]


def test_background_outside_face_range():
    rgb, depth, pts = _scene(500)
    full = vc.crop_frame(rgb, depth, pts, vc.reference(pts, depth, FX, size=256), FX)
    norm = vc.reference(pts, depth, FX, size=256, face_depth_mm=10)  # plate is 20 mm behind: outside
    r = vc.crop_frame(rgb, depth, pts, norm, FX)
    assert 0 < r.mask.sum() < 0.3 * full.mask.sum() and (r.depth[~r.mask] == 0).all()
    assert r.depth[r.mask].max() <= norm.d0_mm + 10


def test_point_cloud_inverts_crop_exactly():
    rgb, depth, pts = _scene(650)
    norm = vc.reference(pts, depth, FX, size=256)
    r = vc.crop_frame(rgb, depth, pts, norm, FX)
    intr = {"fx": FX, "fy": FX, "cx": W / 2, "cy": H / 2}
    a = pc.point_at(r.landmarks[36], r.depth, norm, r.transform, intr)
    b = pc.point_at(r.landmarks[45], r.depth, norm, r.transform, intr)
    assert a[2] == pytest.approx(650, abs=2)
    assert np.linalg.norm(a - b) == pytest.approx(96, abs=3)
    # the canonical (network-output) inverse gives the same metric size
    a2, b2 = pc.point_at(r.landmarks[36], r.depth, norm), pc.point_at(r.landmarks[45], r.depth, norm)
    assert np.linalg.norm(a2 - b2) == pytest.approx(96, abs=4)


@pytest.mark.parametrize("binary", [True, False])
def test_ply_roundtrip(tmp_path, binary):
    pts = np.random.RandomState(1).rand(50, 3).astype(np.float32) * 100
    cols = np.random.RandomState(2).randint(0, 256, (50, 3)).astype(np.uint8)
    path = pc.write_ply(tmp_path / "c.ply", pts, cols, binary=binary)
    head = path.read_bytes()[:80]
    assert (b"binary_little_endian" in head) == binary
    p2, c2 = pc.read_ply(path)
    assert np.allclose(p2, pts, atol=1e-3) and np.array_equal(c2, cols)
