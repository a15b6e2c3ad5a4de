"""Real depth loaders decode each data set's encoding to plausible millimetres; hole masks only
remove known valid pixels, in the amount asked, away from the border, reproducibly."""
from __future__ import annotations

import numpy as np
import pytest

from facesynth.depth.testdata_hole_masks import blobs, copied, make_holes, stripes
from facesynth.depth.testdata_realdepth import load_kinect, load_open3d, nyu_disparity_to_mm, realdata_root, sun_to_mm

REAL = realdata_root()
needs_real = pytest.mark.skipif(not (REAL / "nyu_tum_sun_redwood_open3d").is_dir(),
                                reason=f"real sensor data not found at {REAL.resolve()}")


def test_encodings():
    # NYU: z_m = 351.3 / (1092.5 - raw), 2047 invalid
    assert nyu_disparity_to_mm(np.array([[741, 2047]], np.uint16)).tolist() == [[999, 0]]  # 351.3 / 351.5 m
    # SUN: a 3-bit rotation of the uint16
    raw = np.array([(1500 << 3) & 0xFFFF], np.uint16)
    assert sun_to_mm(raw).tolist() == [1500]


@needs_real
def test_open3d_frames_decode_to_plausible_depth():
    frames = {f.name: f for f in load_open3d(REAL)}
    assert sorted(frames) == ["nyu", "redwood0", "redwood1", "redwood2", "redwood3", "redwood4", "sun", "tum"]
    for f in frames.values():
        assert f.depth.shape == (480, 640) and f.color.shape == (480, 640, 3)
        assert 0.05 < f.hole_fraction < 0.25  # README: real sensor holes 7-19 %
        med = float(np.median(f.depth[f.depth > 0]))
        assert 1000 < med < 4000, (f.name, med)  # indoor scenes, metres away


@needs_real
def test_kinect_depth_frame():
    (f,) = load_kinect(REAL, frames=1)
    assert f.depth.shape == (576, 640) and f.depth.dtype == np.uint16
    assert abs(f.hole_fraction - 0.235) < 0.03  # README: 23.5 % holes incl. the NFOV hexagon
    assert 300 < float(np.median(f.depth[f.depth > 0])) < 3000


@needs_real
def test_make_holes_removes_only_valid_pixels_away_from_the_border():
    frames = load_open3d(REAL)
    d = frames[0].depth
    donors = [f.depth == 0 for f in frames[1:]]
    m = make_holes(d, 0.03, seed=3, donors=donors, margin=16)
    usable = (d > 0).copy()
    usable[:16] = usable[-16:] = usable[:, :16] = usable[:, -16:] = False
    assert m.dtype == bool and m.shape == d.shape
    assert not (m & ~usable).any()
    share = m.sum() / usable.sum()
    assert 0.02 < share < 0.045
    np.testing.assert_array_equal(m, make_holes(d, 0.03, seed=3, donors=donors, margin=16))
    assert not np.array_equal(m, make_holes(d, 0.03, seed=4, donors=donors, margin=16))


def test_shape_generators():
    rng = np.random.default_rng(0)
    b = blobs((64, 64), rng, count=2, radius=(4, 6))
    s = stripes((64, 64), rng, count=2)
    assert 10 < b.sum() < 64 * 64 // 2 and 5 < s.sum() < 64 * 64 // 4
    donor = np.zeros((64, 64), bool)
    donor[10:14, 20:30] = True  # one 40 px component
    c = copied((64, 64), rng, [donor])
    assert c.sum() == 40
    with pytest.raises(ValueError, match="unknown hole kinds"):
        make_holes(np.ones((64, 64), np.uint16), kinds=["cracks"])
