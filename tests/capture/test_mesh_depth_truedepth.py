"""Depth from the face mesh against a real iPhone TrueDepth sensor, on a few frames of the real sequence.

The bounds are what benchmarks/mesh_depth.py measured on all 34 frames (docs/capture_video.md), with
a little room: after fitting the offset D0 per frame, each frame's median |error| inside the face
was 1.6-3.0 mm (the naive scattered-vertex method 4.5-8.7 mm) and its 90th percentile 4.8-8.4 mm;
without the fit (the distance from the iris alone) the median was 2-30 mm and the nose-tip distance
off by -25..+5 mm.
"""
from __future__ import annotations

import numpy as np
import pytest

from facesynth.depth.testdata_realdepth import TRUEDEPTH_SEQUENCE, realdata_root

REAL = realdata_root() / TRUEDEPTH_SEQUENCE
pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason=f"real TrueDepth sequence not found at {REAL}")

FRAMES = [0, 5, 15, 20, 32]          # frontal, turned left, turned right, the worst frame measured, looking up
MEDIAN_AFTER_D0_MM = 3.5
P90_AFTER_D0_MM = 9.0
MEDIAN_RAW_MM = 35.0
NOSE_DISTANCE_MM = 35.0


def test_mesh_depth_is_within_the_measured_bounds_of_the_sensor():
    from facesynth.capture.video import mesh_depth as md
    from facesynth.depth.testdata_realdepth import load_truedepth_sequence
    from facesynth.face.landmarks_mediapipe import FaceMeshLandmarker

    seq = load_truedepth_sequence(FRAMES)
    with FaceMeshLandmarker() as fl:
        meshes = [fl.detect(rgb) for rgb in seq.color]
    assert [len(f) for f in meshes] == [1] * len(FRAMES)
    meshes = [f[0].mesh for f in meshes]
    scale = md.calibrate_face_size(meshes)
    h, w = seq.color.shape[1:3]
    for i, mesh, sensor in zip(FRAMES, meshes, seq.depth_mm):
        est = md.face_depth_map(mesh, scale.size_mm, seq.intrinsics, h, w)[::2, ::2].astype(np.float64)
        face = (est > 0) & (sensor > 0)
        assert face.sum() > 15_000, i  # forehead to chin at this distance: ~20k depth pixels
        e = est[face] - sensor[face]
        d0 = np.median(e)
        assert np.median(np.abs(e - d0)) < MEDIAN_AFTER_D0_MM, i
        assert np.percentile(np.abs(e - d0), 90) < P90_AFTER_D0_MM, i
        assert np.median(np.abs(e)) < MEDIAN_RAW_MM, i
        x, y = np.round(mesh[1, :2] / 2).astype(int)  # the nose tip: the depth face.crop takes D0 from
        win = sensor[y - 1:y + 2, x - 1:x + 2]
        assert abs(est[y, x] - np.median(win[win > 0])) < NOSE_DISTANCE_MM, i
