"""Depth -> colour registration: each depth pixel lands where its 3-D point projects, nearest wins, holes 0."""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from mkv_fixture_tools import CALIBRATION, RECORDING, blocks  # noqa: E402

from facesynth.capture.kinect.calibration import CameraModel, KinectCalibration, load_calibration  # noqa: E402
from facesynth.capture.kinect.registration import Registration  # noqa: E402

needs_real = pytest.mark.skipif(not RECORDING.exists(), reason=f"real recording not found at {RECORDING}")


def cv_model(cam: CameraModel):
    k = np.array([[cam.fx, 0, cam.cx], [0, cam.fy, cam.cy], [0, 0, 1]], np.float64)
    k1, k2, k3, k4, k5, k6 = cam.k
    return k, np.array([k1, k2, cam.p1, cam.p2, k3, k4, k5, k6], np.float64)


@needs_real
def test_real_depth_lands_where_its_3d_points_project():
    cal = load_calibration(CALIBRATION, "NFOV_UNBINNED", "720P")
    depth = np.frombuffer(next(p for t, _, p in blocks(RECORDING.read_bytes()) if t == 2), ">u2")
    depth = depth.reshape(576, 640).astype(np.uint16)
    rows, cols = np.mgrid[0:576, 0:640].astype(np.uint16)
    reg = Registration(cal)
    out, (reg_col, reg_row) = reg.register(depth, cols * 16, rows * 16)  # 1/16 px resolution
    reg_col, reg_row = reg_col / 16.0, reg_row / 16.0
    assert out.shape == (720, 1280) and out.dtype == np.uint16
    # smooth depth pixels (3x3 spread < 15 mm), sampled
    d = depth.astype(np.float32)
    pad = np.pad(d, 1, mode="edge")
    win = np.stack([pad[i:i + 576, j:j + 640] for i in range(3) for j in range(3)])
    smooth = (win.min(0) > 0) & (win.max(0) - win.min(0) < 15)
    ii, jj = np.nonzero(smooth)
    pick = np.random.default_rng(0).choice(len(ii), 3000, replace=False)
    ii, jj = ii[pick], jj[pick]
    # independent path: OpenCV's rational lens model through cv2.projectPoints, our rays checked separately
    kd, dd = cv_model(cal.depth)
    kc, dc = cv_model(cal.color)
    rx, ry, ok = cal.depth.undistort(jj.astype(np.float64), ii.astype(np.float64))
    check, _ = cv2.projectPoints(np.column_stack([rx, ry, np.ones_like(rx)]), np.zeros(3), np.zeros(3), kd, dd)
    assert np.abs(check[:, 0] - np.column_stack([jj, ii])).max() < 1e-3
    z = d[ii, jj]
    pts_d = np.column_stack([rx * z, ry * z, z])
    pts_c = pts_d @ cal.rotation.T + cal.translation
    uv, _ = cv2.projectPoints(pts_c, np.zeros(3), np.zeros(3), kc, dc)
    u, v = np.rint(uv[:, 0, 0]).astype(int), np.rint(uv[:, 0, 1]).astype(int)
    inside = ok & (u >= 0) & (u < 1280) & (v >= 0) & (v < 720)
    assert inside.mean() > 0.9
    u, v, ii, jj, zc = u[inside], v[inside], ii[inside], jj[inside], pts_c[inside, 2]
    got_depth = out[v, u].astype(np.float64)
    # rounding (u, v) to a colour pixel moves up to 0.5 colour px = 0.41 depth px per axis
    hit = (np.abs(got_depth - zc) < 0.01 * zc) & (np.abs(reg_col[v, u] - jj) <= 0.75) \
        & (np.abs(reg_row[v, u] - ii) <= 0.75)
    # all but occluded points hit their own depth pixel at the projected colour pixel (to a pixel)
    assert hit.mean() > 0.97, hit.mean()
    # and a two-colour-pixel shift of the expectation fails (the test can fail)
    shifted = np.abs(reg_col[v, np.clip(u + 2, 0, 1279)] - jj) <= 0.75
    assert shifted.mean() < 0.1, shifted.mean()
    # holes: outside the depth camera's view and where nothing was measured
    assert out[:, :40].max() == 0 and 0.3 < (out == 0).mean() < 0.6


def synthetic_calibration(shift_mm: float = 0.0) -> KinectCalibration:
    depth = CameraModel(width=64, height=48, fx=50.0, fy=50.0, cx=31.5, cy=23.5)
    color = CameraModel(width=96, height=72, fx=75.0, fy=75.0, cx=47.5, cy=35.5)
    return KinectCalibration(depth=depth, color=color, rotation=np.eye(3), translation=np.array([shift_mm, 0, 0.0]))


def test_plane_fills_its_footprint_without_holes():
    reg = Registration(synthetic_calibration())
    depth = np.full((48, 64), 1000, np.uint16)
    out, _ = reg.register(depth)
    # same optical centre, 1.5x focal length: the depth pixel centres span colour pixels 0.75 .. 95.25 (x)
    assert np.all(out[1:71, 1:95] == 1000)
    assert out[0, 0] == 0 and out[71, 95] == 0


def test_nearest_surface_wins_and_steps_are_not_bridged():
    reg = Registration(synthetic_calibration(shift_mm=-40.0), max_step_mm=50)
    depth = np.full((48, 64), 1000, np.uint16)
    depth[16:32, 24:40] = 500                      # a box 0.5 m in front of a wall
    out, _ = reg.register(depth)
    # the wall is drawn in the box's colour pixels only where it is not covered: the box centre shows 500
    assert out[36, 48] == 500
    vals = set(np.unique(out).tolist())
    assert vals <= {0, 500, 1000}, sorted(vals)[:10]   # nothing invented between 500 and 1000
    # the sideways baseline leaves an occlusion shadow of holes beside the box
    assert (out[30:42, 20:80] == 0).sum() > 20
    bridged, _ = Registration(synthetic_calibration(shift_mm=-40.0), max_step_mm=0).register(depth)
    assert ((bridged > 500) & (bridged < 1000)).any()  # the SDK's rubber sheet, for comparison


def test_ir_follows_depth():
    reg = Registration(synthetic_calibration())
    depth = np.full((48, 64), 800, np.uint16)
    depth[:, :10] = 0
    ir = np.tile(np.arange(64, dtype=np.uint16) * 10, (48, 1))
    out, (reg_ir,) = reg.register(depth, ir)
    assert np.all(reg_ir[out == 0] == 0)
    # colour column u sees depth column (u - 47.5) / 1.5 + 31.5, IR = 10 x that
    u = np.arange(30, 90)
    assert np.allclose(reg_ir[36, u], ((u - 47.5) / 1.5 + 31.5) * 10, atol=1.0)


@pytest.mark.slow  # compiling the parallel kernel takes a while the first time (then numba caches it)
@needs_real
def test_parallel_bands_give_the_serial_result():
    cal = load_calibration(CALIBRATION, "NFOV_UNBINNED", "720P")
    depth = np.frombuffer(next(p for t, _, p in blocks(RECORDING.read_bytes()) if t == 2), ">u2")
    depth = depth.reshape(576, 640).astype(np.uint16)
    ir = (depth // 3).astype(np.uint16)
    serial, (s_ir,) = Registration(cal, threads=1).register(depth, ir)
    banded, (b_ir,) = Registration(cal, threads=3).register(depth, ir)  # 12 bands
    assert np.array_equal(serial, banded) and np.array_equal(s_ir, b_ir)
    assert (serial > 0).mean() > 0.4
