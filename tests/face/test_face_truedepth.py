"""Acceptance on the real iPhone TrueDepth portraits: decode, 70 landmarks, crop, metric PLY."""

import numpy as np
import pytest

from facesynth.face import crop as vc
from facesynth.face import point_cloud as pc
from facesynth.depth.testdata_realdepth import realdata_root
from facesynth.capture.portrait.truedepth_portrait import disparity_to_mm, load_portrait

REAL = realdata_root() / "truedepth_faces"
pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason=f"real TrueDepth faces not found at {REAL}")


@pytest.fixture(scope="module")
def landmarker():
    from facesynth.face.landmarks_mediapipe import FaceMeshLandmarker

    with FaceMeshLandmarker() as fl:
        yield fl


def test_disparity_formula_from_readme():
    # z_mm = 1000 / (dmin + v/255*(dmax-dmin)); v=0 -> 1000/dmin, v=255 -> 1000/dmax
    z = disparity_to_mm(np.array([0, 255], np.uint8), 0.494, 3.402)
    assert z[0] == pytest.approx(1000 / 0.494, rel=1e-5) and z[1] == pytest.approx(1000 / 3.402, rel=1e-5)


@pytest.mark.parametrize("name,fx_source", [("heic_face_data.heic", "exif"), ("jpeg_depth_data.jpg", "xmp")])
def test_portrait_landmarks_crop_and_metric_size(tmp_path, landmarker, name, fx_source):
    p = load_portrait(REAL / name)
    assert p.rgb.shape == (3088, 2316, 3) and p.depth_mm.shape == (3088, 2316)
    assert p.intrinsics["source"].startswith(fx_source)
    face = landmarker.landmarks70(p.rgb)
    assert face is not None and face.points.shape == (70, 2) and np.isfinite(face.points).all()
    if name.startswith("heic"):  # frontal: the capture gate (10 degrees) would keep it
        assert np.abs(face.pose).max() < 10
    else:  # head tilted back (chin forward): pitch > 0, a reject for the gate
        assert face.pose[1] > 15
    raw_nose = vc.nose_depth(p.depth_mm, face.points)
    assert 250 < raw_nose < 450  # README: face at about 310-390 mm
    fx = p.intrinsics["fx"]
    norm = vc.reference(face.points, p.depth_mm, fx, size=256)
    c = vc.crop_frame(p.rgb, p.depth_mm, face.points, norm, fx)
    assert c.ok and c.color.shape == (256, 256, 3) and c.mask.mean() > 0.2
    x, y = np.round(c.landmarks[30]).astype(int)
    assert abs(float(c.depth[y, x]) - raw_nose) <= 3  # nose depth in the crop = the raw depth there
    # back to metric 3D: outer eye corners 80-110 mm apart
    a = pc.point_at(c.landmarks[36], c.depth, norm, c.transform, p.intrinsics)
    b = pc.point_at(c.landmarks[45], c.depth, norm, c.transform, p.intrinsics)
    assert 80 <= np.linalg.norm(a - b) <= 110
    pts, cols = pc.crop_points(c.color, c.depth, norm, c.transform, p.intrinsics, mask=c.mask)
    ply = pc.write_ply(tmp_path / "face.ply", pts, cols)
    back, _ = pc.read_ply(ply)
    assert len(back) == int(c.mask.sum()) > 10000
    assert 60 < np.ptp(back[:, 0]) < 400  # a head-sized cloud, in mm


def test_head_tilted_far_back_is_not_a_face(landmarker):
    """heic_depth_data: the head is tilted back so far that the mesh finds no face: skipped, not wrong."""
    p = load_portrait(REAL / "heic_depth_data.heic")
    assert p.depth_mm.max() > 0
    assert landmarker.landmarks70(p.rgb) is None


def test_cli_portrait_and_ply(tmp_path, capsys):
    import json

    from facesynth.cli import main
    from facesynth.face.point_cloud import read_ply

    assert main(["face", "portrait", str(REAL / "heic_face_data.heic"), "--out", str(tmp_path)]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 80 <= info["outer_eye_corners_mm"] <= 110 and info["normalisation"]["size"] == 256
    pts, cols = read_ply(tmp_path / "face.ply")
    assert len(pts) == info["points"] > 10000 and cols.dtype == np.uint8
    for name in ("crop.png", "depth.png", "drawing.png", "face.json"):
        assert (tmp_path / name).stat().st_size > 0
    assert main(["face", "portrait", str(REAL / "heic_depth_data.heic"), "--out", str(tmp_path / "x")]) == 1
