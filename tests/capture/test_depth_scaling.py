"""Depth registered by scaling, checked against OpenCV's own pinhole maths; depth units to uint16 mm."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from facesynth.capture.depth_scaling import ScaledRegistration, intrinsics_dict, scaled_intrinsics, to_mm_u16
from facesynth.errors import InputDataError


def test_each_colour_pixel_reads_the_depth_pixel_its_ray_lands_in():
    """Colour and depth cameras with other focal lengths and principal points (no common scale):
    OpenCV normalises each colour pixel centre with the colour K and projects it with the depth K;
    the depth pixel containing that point (pixel i covers [i, i + 1)) is the one registered."""
    color = intrinsics_dict(610.0, 605.0, 318.3, 241.7, 640, 480)
    depth = intrinsics_dict(250.0, 248.0, 131.1, 95.2, 256, 192)
    reg = ScaledRegistration(color, depth)
    d = np.arange(256 * 192, dtype=np.int64).reshape(192, 256)  # each depth pixel's own id
    out = reg.apply(d.astype(np.float64))
    rng = np.random.default_rng(3)
    uv = np.stack([rng.integers(0, 640, 200), rng.integers(0, 480, 200)], 1).astype(np.float64)

    def k(c):
        return np.array([[c["fx"], 0, c["cx"]], [0, c["fy"], c["cy"]], [0, 0, 1]], np.float64)

    norm = cv2.undistortPoints((uv + 0.5)[:, None, :], k(color), None).reshape(-1, 2)
    pts = np.concatenate([norm, np.ones((len(norm), 1))], 1)
    proj, _ = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), k(depth), None)
    col, row = np.floor(proj.reshape(-1, 2)).astype(int).T
    inside = (col >= 0) & (col < 256) & (row >= 0) & (row < 192)
    assert inside.mean() > 0.9
    got = out[uv[:, 1].astype(int), uv[:, 0].astype(int)]
    assert np.array_equal(got[inside], d[row[inside], col[inside]])
    assert (got[~inside] == 0).all()  # outside the depth map: no reading


def test_same_view_is_a_size_ratio_and_same_size_is_identity():
    color = intrinsics_dict(957.366, 957.366, 358.7454, 640.242, 720, 1280)
    assert scaled_intrinsics(color, 360, 640)["fx"] == pytest.approx(478.683)
    reg = ScaledRegistration.same_view(color, 640, 360)
    d = np.arange(640 * 360, dtype=np.uint16).reshape(640, 360)
    assert np.array_equal(reg.apply(d), np.repeat(np.repeat(d, 2, 0), 2, 1))
    same = ScaledRegistration(color, color)
    img = np.ones((1280, 720), np.uint16)
    assert same.identity and same.apply(img) is img
    with pytest.raises(InputDataError, match="expected 360x640"):
        reg.apply(np.zeros((10, 10), np.uint16))


def test_depth_units_to_millimetres():
    metres = np.array([0.0, np.nan, -0.5, np.inf, 0.41234, 0.00049, 70.0], np.float32)
    assert to_mm_u16(metres, 1000.0).tolist() == [0, 0, 0, 0, 412, 0, 0]  # 70 m: beyond uint16 mm
    raw = np.array([0, 26144, 65535], np.uint16)  # TrueDepth PNG units of 0.0153 mm
    assert to_mm_u16(raw, 0.0153).tolist() == [0, 400, round(65535 * 0.0153)]
