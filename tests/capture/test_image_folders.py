"""Image-folder datasets: the original layout and plain RGB-D folders with a declared depth scale."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facesynth.errors import InputDataError
from facesynth.capture.folder.image_folders import list_original, list_rgbd, load_frame
from facesynth.depth.testdata_realdepth import realdata_root

REALDATA = realdata_root()


def write_original(root: Path, train: int, eval_: int, size=(24, 32)) -> None:
    for split, n in (("train", train), ("eval", eval_)):
        for sub in ("Color", "Depth", "Infrared"):
            (root / split / sub).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            h, w = size
            cv2.imwrite(str(root / split / "Color" / f"{i}.png"), np.full((h, w, 3), (10, 20, 30 + i), np.uint8))
            cv2.imwrite(str(root / split / "Depth" / f"{i}.png"), np.full((h, w), 600 + i, np.uint16))
            cv2.imwrite(str(root / split / "Infrared" / f"{i}.png"), np.full((h, w), 100 + i, np.uint16))


def test_original_layout_in_numeric_order_with_splits(tmp_path):
    write_original(tmp_path, train=11, eval_=2)
    frames = list_original(tmp_path)
    assert [f.split for f in frames] == [0] * 11 + [1] * 2
    assert [f.color.stem for f in frames[:11]] == [str(i) for i in range(11)]  # 10 after 9, not after 1
    rgb, depth, ir = load_frame(frames[10])
    assert rgb[0, 0].tolist() == [40, 20, 10]  # RGB order (written as BGR)
    assert depth.dtype == np.uint16 and depth[0, 0] == 610 and ir[0, 0] == 110


def test_eight_bit_depth_and_size_mismatch_are_errors(tmp_path):
    write_original(tmp_path, train=1, eval_=0)
    frame = list_original(tmp_path)[0]
    cv2.imwrite(str(frame.depth), np.zeros((24, 32), np.uint8))
    with pytest.raises(InputDataError, match="16-bit"):
        load_frame(frame)
    cv2.imwrite(str(frame.depth), np.zeros((12, 32), np.uint16))
    with pytest.raises(InputDataError, match="register depth to colour"):
        load_frame(frame)


@pytest.mark.skipif(not (REALDATA / "truedepth_charuco_zeiss").exists(), reason="realdata not present")
def test_truedepth_folder_pairs_by_name_and_scales_to_mm():
    frames = list_rgbd(REALDATA / "truedepth_charuco_zeiss")
    assert [(f.color.name, f.depth.name) for f in frames][0] == ("rgb_1233681.png", "depth_1233681.png")
    assert len(frames) == 5
    rgb, depth, _ = load_frame(frames[0], depth_scale_mm=0.1)  # stored in 0.1 mm
    assert rgb.shape == (480, 640, 3)
    assert abs(float(np.median(depth[depth > 0])) - 196) < 10  # the board is about 196 mm away


@pytest.mark.skipif(not (REALDATA / "nyu_tum_sun_redwood_open3d").exists(), reason="realdata not present")
def test_tum_depth_scale():
    frames = [f for f in list_rgbd(REALDATA / "nyu_tum_sun_redwood_open3d") if f.color.name.startswith("TUM")]
    assert len(frames) == 1
    raw = cv2.imread(str(frames[0].depth), cv2.IMREAD_UNCHANGED)
    _, depth, _ = load_frame(frames[0], depth_scale_mm=0.2)  # 5000 units per metre
    sel = raw > 0
    assert np.abs(depth[sel].astype(float) - raw[sel] * 0.2).max() <= 0.5


def test_tum_style_timestamps_pair_nearest(tmp_path):
    (tmp_path / "rgb").mkdir()
    (tmp_path / "depth").mkdir()
    for t in ("1305031102.175304", "1305031102.211214"):
        cv2.imwrite(str(tmp_path / "rgb" / f"{t}.png"), np.zeros((4, 4, 3), np.uint8))
    for t in ("1305031102.160407", "1305031102.226738", "1305031102.400000"):
        cv2.imwrite(str(tmp_path / "depth" / f"{t}.png"), np.zeros((4, 4), np.uint16))
    pairs = [(f.color.stem, f.depth.stem) for f in list_rgbd(tmp_path)]
    assert pairs == [("1305031102.175304", "1305031102.160407"), ("1305031102.211214", "1305031102.226738")]
