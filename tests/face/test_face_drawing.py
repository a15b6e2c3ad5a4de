"""The network's input drawing: layout, width scaling, range, determinism."""
import numpy as np

from facesynth.face.drawing import draw_landmarks, draw_landmarks_u8, line_width


def _points(size):
    rng = np.random.RandomState(3)
    return (rng.rand(70, 2) * 0.6 + 0.2) * size


def test_range_dtype_and_background():
    img = draw_landmarks(_points(256), 256)
    assert img.shape == (256, 256) and img.dtype == np.float32
    assert set(np.unique(img)) == {-1.0, 1.0}
    assert 0.01 < (img > 0).mean() < 0.5


def test_deterministic():
    p = _points(512)
    assert np.array_equal(draw_landmarks(p, 512), draw_landmarks(p, 512))


def test_closed_eye_closes_and_jaw_stays_open():
    s = 256
    p = np.full((70, 2), np.nan)
    # eye 36-41 as a hexagon; jaw 0..16 as a U whose ends are far apart
    ang = np.linspace(0, 2 * np.pi, 7)[:-1]
    p[36:42] = np.c_[128 + 40 * np.cos(ang), 128 + 40 * np.sin(ang)]
    img = draw_landmarks_u8(p, s)
    mid = ((p[41] + p[36]) / 2).round().astype(int)  # the closing segment 41 -> 36
    assert img[mid[1], mid[0]] == 255
    q = np.full((70, 2), np.nan)
    q[0:17] = np.c_[np.linspace(20, 236, 17), 200 - 150 * np.abs(np.linspace(-1, 1, 17)) ** 0.5]
    img2 = draw_landmarks_u8(q, s)
    m = ((q[0] + q[16]) / 2).round().astype(int)  # would be lit only if the jaw were closed
    assert img2[m[1], m[0]] == 0
    assert img2[int(round(q[8, 1])), int(round(q[8, 0]))] == 255


def test_line_width_scales_with_size():
    assert line_width(512) == 4 and line_width(256) == 2
    for size, want in ((512, 4), (256, 2)):
        p = np.full((70, 2), np.nan)
        p[27:31] = np.c_[np.full(4, size / 2), np.linspace(size * 0.2, size * 0.8, 4)]  # vertical nose bridge
        img = draw_landmarks_u8(p, size)
        row = img[size // 2]
        assert abs(int((row > 0).sum()) - want) <= 1


def test_pupils_are_filled_dots():
    p = np.full((70, 2), np.nan)
    p[68], p[69] = (100, 100), (200, 100)
    img = draw_landmarks_u8(p, 512)
    assert img[100, 100] == 255 and img[100, 200] == 255 and img[100, 150] == 0
    assert 9 <= (img[90:111, 90:111] > 0).sum() <= 60
