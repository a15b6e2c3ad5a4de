"""The synthetic RGB-D head: deterministic, metric, and its pixels follow its landmarks."""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from facesynth.capture.synthetic.face_features import frame_maps
from facesynth.capture.synthetic.head import (
    HEAD_Z_MM, FaceParams, Intrinsics, pose_matrix, project, render_frame, render_frame_and_mask, sample_sequence,
)

CLEAN = dict(hole_fraction=0.0, depth_noise_mm=0.0)


def poly(points: np.ndarray) -> np.ndarray:
    return np.asarray(points, np.float32).reshape(-1, 1, 2)


def inside(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bool mask of the pixels inside a polygon."""
    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [np.round(points).astype(np.int32)], 1)
    return m.astype(bool)


def test_same_params_give_the_same_bytes_and_the_noise_seed_only_changes_noise():
    p = FaceParams(jaw_open=0.4, smile=0.3, yaw=3.0, noise_seed=5)
    a, b = render_frame(p), render_frame(p)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    c = render_frame(dataclasses.replace(p, noise_seed=6))
    np.testing.assert_array_equal(a.landmarks, c.landmarks)
    assert not np.array_equal(a.depth, c.depth)
    assert np.abs(a.color.astype(int) - c.color.astype(int)).mean() < 3.0  # sensor noise only


def test_frame_shapes_types_and_default_camera():
    cam = Intrinsics.default()
    assert (cam.width, cam.height, cam.fx, cam.fy, cam.cx, cam.cy) == (640, 480, 600.0, 600.0, 319.5, 239.5)
    f = render_frame(FaceParams())
    assert f.color.shape == (480, 640, 3) and f.color.dtype == np.uint8
    assert f.depth.shape == (480, 640) and f.depth.dtype == np.uint16
    assert f.landmarks.shape == (70, 2) and f.landmarks.dtype == np.float32
    assert f.color.std() > 10  # not flat


def test_other_image_sizes_scale_the_face():
    p = FaceParams(smile=0.5)
    big = render_frame(p, **CLEAN)
    small = render_frame(p, Intrinsics.default(320, 240), **CLEAN)
    assert small.color.shape == (240, 320, 3)
    # same field of view: half the focal length, (pixel centre convention) u' = (u - 0.5) / 2
    np.testing.assert_allclose(small.landmarks, (big.landmarks - 0.5) / 2, atol=1e-3)


def test_depth_is_metric_and_plausible():
    f, head = render_frame_and_mask(FaceParams(), **CLEAN)
    face = inside(f.landmarks[list(range(17)) + list(range(26, 16, -1))], head.shape)
    d = f.depth[face & (f.depth > 0)].astype(float)
    assert 500 <= d.min() and d.max() <= 700
    assert d.min() == pytest.approx(HEAD_Z_MM - 117, abs=3)       # the nose tip ~117 mm before the head centre
    wall = f.depth[~head]
    assert np.median(wall) == pytest.approx(1200, abs=40)
    assert head.mean() > 0.08                                       # the head fills a good part of the frame


@pytest.mark.parametrize("pose", [(0, 0, 0), (6, -4, 3), (-7, 5, -2)])
def test_nose_tip_landmark_is_the_nearest_face_point(pose):
    f = render_frame(FaceParams(yaw=pose[0], pitch=pose[1], roll=pose[2]), **CLEAN)
    d = np.where(f.depth > 0, f.depth.astype(float), np.inf)
    v, u = np.unravel_index(np.argmin(d), d.shape)
    nose = f.landmarks[30]
    assert np.hypot(u - nose[0], v - nose[1]) <= 4.0
    nu, nv = np.round(nose).astype(int)
    assert d[nv, nu] <= d.min() + 1.5


def test_landmarks_lie_on_the_rendered_surface():
    for p in sample_sequence(2, 120)[::30]:
        f = render_frame(p, **CLEAN)
        R = pose_matrix(p.yaw, p.pitch, p.roll)
        cam_pts = frame_maps(p).landmarks @ R.T + np.array([p.tx, p.ty, HEAD_Z_MM + p.tz])
        np.testing.assert_allclose(project(cam_pts, Intrinsics.default()), f.landmarks, atol=1e-3)
        uv = np.round(f.landmarks).astype(int)
        seen = f.depth[uv[:, 1], uv[:, 0]].astype(float)
        err = np.abs(seen - cam_pts[:, 2])[seen > 0]
        assert len(err) >= 66
        assert np.median(err) < 1.0 and np.percentile(err, 90) < 3.0


def test_pupils_lie_inside_the_eye_contours():
    for p in sample_sequence(4, 150)[::15]:
        if p.blink > 0.5:
            continue
        lm = render_frame(p, **CLEAN).landmarks
        assert cv2.pointPolygonTest(poly(lm[36:42]), tuple(map(float, lm[68])), False) > 0
        assert cv2.pointPolygonTest(poly(lm[42:48]), tuple(map(float, lm[69])), False) > 0


def test_jaw_open_moves_chin_and_lip_landmarks_down_and_opens_a_dark_deep_mouth():
    closed = render_frame(FaceParams(), **CLEAN)
    opened = render_frame(FaceParams(jaw_open=1.0), **CLEAN)
    move = opened.landmarks - closed.landmarks
    assert move[57, 1] > 10 and move[8, 1] > 10 and move[66, 1] > 10
    assert np.abs(move[17:48]).max() < 0.5           # brows, nose and eyes stay
    assert np.abs(move[[50, 51, 52, 62]]).max() < 2.0  # the upper lip stays (nearly)
    mouth = inside(opened.landmarks[60:68], closed.depth.shape)
    mouth = cv2.erode(mouth.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    assert mouth.sum() > 100
    lum_open = opened.color[mouth].mean(axis=1)
    lum_closed = closed.color[mouth].mean(axis=1)
    assert np.median(lum_open) < 0.6 * np.median(lum_closed)
    depth_open, depth_closed = opened.depth[mouth].astype(float), closed.depth[mouth].astype(float)
    assert np.median(depth_open - depth_closed) > 5.0   # the mouth opening is deeper than the closed lips


def test_blink_closes_the_eye_and_brows_raise_with_their_landmarks():
    open_ = render_frame(FaceParams(), **CLEAN)
    shut = render_frame(FaceParams(blink=1.0), **CLEAN)
    eye = inside(open_.landmarks[36:42], open_.depth.shape)
    def red_minus_blue(img) -> float:  # skin is warm; sclera and iris are not
        px = img.color[eye].astype(float)
        return float(np.median(px[:, 0] - px[:, 2]))

    assert red_minus_blue(open_) < 30 and red_minus_blue(shut) > 50
    changed = np.abs(shut.color[eye].astype(int) - open_.color[eye].astype(int)).max(axis=1) > 30
    assert changed.mean() > 0.8
    lid_gap = shut.landmarks[[37, 38], 1] - shut.landmarks[[41, 40], 1]
    assert np.abs(lid_gap).max() < 1.0

    raised = render_frame(FaceParams(brows=1.0), **CLEAN)
    up = open_.landmarks[17:27, 1] - raised.landmarks[17:27, 1]
    assert up.min() > 4.0

    def brow_row(img, lm) -> float:
        """Row of the brow over its inner half (clear of the hair): brow hair is less blue than skin."""
        u0, u1 = int(lm[19, 0]), int(lm[21, 0])
        v0, v1 = int(lm[19:22, 1].min()) - 14, int(lm[19:22, 1].max()) + 8
        band = img.color[v0:v1, u0:u1].astype(float)
        blue_red = (band[..., 2] / np.maximum(band[..., 0], 1)).mean(axis=1)
        weight = np.clip(np.median(blue_red) - blue_red, 0, None)
        return v0 + float((weight * np.arange(len(weight))).sum() / weight.sum())

    shift = brow_row(open_, open_.landmarks) - brow_row(raised, open_.landmarks)
    assert shift == pytest.approx(up[2:5].mean(), abs=1.5)  # the dark brow pixels move with the landmarks


@pytest.mark.parametrize("fraction", [0.0, 0.03, 0.1, 0.25])
def test_hole_fraction_of_the_head_matches_the_parameter(fraction):
    for p in sample_sequence(6, 60)[::30]:
        f, head = render_frame_and_mask(p, hole_fraction=fraction)
        got = ((f.depth == 0) & head).sum() / head.sum()
        assert got == pytest.approx(fraction, abs=0.004)


def test_colour_and_depth_agree_on_where_the_head_is():
    f, head = render_frame_and_mask(FaceParams(yaw=4, smile=0.5, noise_seed=3))
    near = (f.depth > 0) & (f.depth < 900)
    assert not (near & ~head).any() and not (head & (f.depth >= 900)).any()
    rgb = f.color.astype(int)
    warm = (rgb[..., 0] - rgb[..., 2]) > 25          # skin, lips, hair; the wall is grey-blue
    assert (warm & head).sum() / warm.sum() > 0.995
    assert (warm & head).sum() / head.sum() > 0.9
    # holes are sensor dropouts: the colour camera still sees the face there
    holes = head & (f.depth == 0)
    assert holes.sum() > 0 and warm[holes].mean() > 0.8


def test_sequence_is_smooth_seeded_and_prefix_stable():
    seq = sample_sequence(3, 200)
    assert seq[:50] == sample_sequence(3, 50)
    assert seq != sample_sequence(4, 200)
    arr = np.array([dataclasses.astuple(p)[:-1] for p in seq])
    names = [f.name for f in dataclasses.fields(FaceParams)][:-1]
    col = {n: arr[:, i] for i, n in enumerate(names)}
    for angle in ("yaw", "pitch", "roll"):
        assert np.abs(col[angle]).max() <= 8.0 + 1e-9
        assert np.abs(np.diff(col[angle])).max() < 0.5      # degrees per frame at 30 fps
    assert np.abs(np.diff(col["jaw_open"])).max() < 0.35
    assert col["jaw_open"].max() > 0.3 and col["blink"].max() > 0.9  # it talks and blinks
    assert len({p.noise_seed for p in seq}) == len(seq)
