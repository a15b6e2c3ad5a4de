"""Kinect calibration: mode intrinsics from the factory JSON, lens model equal to OpenCV's rational model."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from mkv_fixture_tools import CALIBRATION  # noqa: E402

from facesynth.errors import InputDataError  # noqa: E402
from facesynth.capture.kinect.calibration import CameraModel, load_calibration, parse_calibration  # noqa: E402

needs_real = pytest.mark.skipif(not CALIBRATION.exists(), reason=f"real calibration not found at {CALIBRATION}")


def cv_dist(cam: CameraModel) -> tuple[np.ndarray, np.ndarray]:
    k = np.array([[cam.fx, 0, cam.cx], [0, cam.fy, cam.cy], [0, 0, 1]], np.float64)
    k1, k2, k3, k4, k5, k6 = cam.k
    return k, np.array([k1, k2, cam.p1, cam.p2, k3, k4, k5, k6], np.float64)


@needs_real
def test_mode_intrinsics_follow_crop_scale_and_pixel_centre():
    raw = json.loads(CALIBRATION.read_text())["CalibrationInformation"]["Cameras"]
    d, c = raw[0]["Intrinsics"]["ModelParameters"], raw[1]["Intrinsics"]["ModelParameters"]
    cal = load_calibration(CALIBRATION, "NFOV_UNBINNED", "MJPG_720P")
    assert (cal.depth.width, cal.depth.height, cal.color.width, cal.color.height) == (640, 576, 1280, 720)
    assert cal.depth.cx == pytest.approx(d[0] * 1024 - 192 - 0.5)
    assert cal.depth.cy == pytest.approx(d[1] * 1024 - 180 - 0.5)
    assert cal.depth.fx == pytest.approx(d[2] * 1024)
    assert cal.color.cx == pytest.approx(c[0] * 1280 - 0.5)
    assert cal.color.cy == pytest.approx(c[1] * 960 - 120 - 0.5)
    assert cal.color.fy == pytest.approx(c[3] * 960)
    assert cal.color.p2 == c[12] and cal.color.p1 == c[13]
    assert cal.color.metric_radius == 1.7  # 0 in the file: the SDK's default
    # depth -> colour: about 32 mm to the side, as on every Azure Kinect
    assert np.allclose(cal.translation, [-32.08, -2.21, 3.88], atol=0.01)
    assert np.allclose(cal.rotation @ cal.rotation.T, np.eye(3), atol=1e-6)
    binned = load_calibration(CALIBRATION, "NFOV_2X2BINNED", "1080P")
    assert binned.depth.fx == pytest.approx(cal.depth.fx / 2) and binned.color.width == 1920


@needs_real
def test_projection_equals_opencv_rational_model():
    cal = load_calibration(CALIBRATION, "NFOV_UNBINNED", "720P")
    rng = np.random.default_rng(0)
    pts = np.column_stack([rng.uniform(-600, 600, 500), rng.uniform(-350, 350, 500), rng.uniform(500, 2000, 500)])
    for cam in (cal.depth, cal.color):
        uv, valid = cam.project(pts)
        k, dist = cv_dist(cam)
        ref, _ = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), k, dist)
        assert valid.mean() > 0.95
        assert np.abs(uv[valid] - ref[:, 0][valid]).max() < 1e-6


@needs_real
def test_undistort_inverts_projection_and_agrees_with_opencv():
    cal = load_calibration(CALIBRATION, "NFOV_UNBINNED", "720P")
    cam = cal.depth
    v, u = np.mgrid[0:cam.height:23, 0:cam.width:29].astype(np.float64)
    x, y, valid = cam.undistort(u, v)
    assert valid.mean() > 0.97
    pu, pv, _ = cam.distort(x, y)
    assert np.abs(pu - u)[valid].max() < 1e-4 and np.abs(pv - v)[valid].max() < 1e-4
    # rays from OpenCV's forward model come back exactly
    rng = np.random.default_rng(2)
    xy = np.column_stack([rng.uniform(-0.8, 0.8, 300), rng.uniform(-0.7, 0.7, 300)])
    k, dist = cv_dist(cam)
    ref, _ = cv2.projectPoints(np.column_stack([xy, np.ones(300)]), np.zeros(3), np.zeros(3), k, dist)
    rx, ry, ok = cam.undistort(ref[:, 0, 0], ref[:, 0, 1])
    assert ok.all()
    assert np.abs(rx - xy[:, 0]).max() < 1e-6 and np.abs(ry - xy[:, 1]).max() < 1e-6


def test_bad_calibration_is_input_error():
    with pytest.raises(InputDataError, match="not an Azure Kinect calibration"):
        parse_calibration("{}", "NFOV_UNBINNED", "720P", source="cal.json")
    with pytest.raises(InputDataError, match="unknown depth mode"):
        parse_calibration({"CalibrationInformation": {"Cameras": []}}, "NFOV_HUGE", "720P")
    with pytest.raises(InputDataError, match="no camera 'CALIBRATION_CameraLocationD0'"):
        parse_calibration({"CalibrationInformation": {"Cameras": []}}, "NFOV_UNBINNED", "720P")
