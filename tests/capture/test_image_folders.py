"""Image-folder datasets: the original layout and plain RGB-D folders with a declared depth scale."""
from __future__ import annotations

from pathlib import Path

import sys

import cv2
import numpy as np
import pytest

from facesynth.errors import InputDataError
from facesynth.capture.folder.image_folders import list_original, list_rgbd, load_frame
from facesynth.depth.testdata_realdepth import realdata_root

REALDATA = realdata_root()
sys.path.insert(0, str(Path(__file__).parent))  # test_capture_nodes' node helpers


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


def write_half_depth_folder(root: Path, n: int = 2) -> np.ndarray:
    """Colour 12x8 with depth 6x4 (half resolution, same view), depth raw units of 0.5 mm; returns the raw depth."""
    root.mkdir(parents=True, exist_ok=True)
    raw = (np.arange(24, dtype=np.uint16).reshape(4, 6) + 1) * 100
    raw[0, 0] = 0  # no reading
    for i in range(n):
        cv2.imwrite(str(root / f"color_{i}.png"), np.full((8, 12, 3), 50 + i, np.uint8))
        cv2.imwrite(str(root / f"depth_{i}.png"), raw)
    return raw


async def test_folder_depth_at_half_resolution_from_a_camera_json(tmp_path):
    """Depth at another size over the same view, intrinsics and depth units from a JSON beside the frames."""
    import json

    from test_capture_nodes import make_node, run

    from facesynth.store.frame_store import FrameStore

    raw = write_half_depth_folder(tmp_path / "ds")
    (tmp_path / "ds" / "camera.json").write_text(json.dumps({
        "color": {"fx": 10.0, "fy": 10.0, "cx": 6.0, "cy": 4.0, "width": 12, "height": 8},
        "depth": {"fx": 5.0, "fy": 5.0, "cx": 3.0, "cy": 2.0, "width": 6, "height": 4}, "depth_scale_mm": 0.5}))
    node, _ = make_node("capture.folder", tmp_path / "s.zarr", {"path": str(tmp_path / "ds")})
    await run(node)
    st = FrameStore.open(tmp_path / "s.zarr", "r")
    expected = np.repeat(np.repeat(raw, 2, 0), 2, 1) * 0.5  # each depth pixel covers 2x2 colour pixels
    assert np.array_equal(st.read("raw/depth")[1], expected.astype(np.uint16))
    assert st.attrs["intrinsics"]["fx"] == 10.0 and st.attrs["capture"]["depth_scale_mm"] == 0.5
    # a depth scale given as a param wins over the JSON's
    node, _ = make_node("capture.folder", tmp_path / "s2.zarr", {"path": str(tmp_path / "ds"), "depth_scale_mm": 1.0})
    await run(node)
    assert np.array_equal(FrameStore.open(tmp_path / "s2.zarr", "r").read("raw/depth")[0], expected * 2)


def test_folder_geometry_rules():
    from facesynth.capture.source import Intrinsics
    from facesynth.capture.folder.registration import folder_geometry

    # same aspect, nothing known: the colour's (nominal) intrinsics scaled to the depth: x -> x // 2
    color, reg = folder_geometry((8, 12), (4, 6))
    assert color["estimated"] and reg is not None
    depth = np.arange(24, dtype=np.uint16).reshape(4, 6)
    assert np.array_equal(reg.apply(depth), np.repeat(np.repeat(depth, 2, 0), 2, 1))
    # same size, nothing known: already registered
    assert folder_geometry((8, 12), (8, 12))[1] is None
    # another aspect ratio needs the depth camera's intrinsics
    with pytest.raises(InputDataError, match="depth_intrinsics"):
        folder_geometry((8, 12), (6, 6))
    color, reg = folder_geometry((8, 12), (6, 6), Intrinsics(fx=10, fy=10, cx=6, cy=4),
                                 Intrinsics(fx=5, fy=5, cx=3, cy=3))
    assert reg is not None and reg.depth_shape == (6, 6)
    # colour pixel (u, v) reads depth pixel floor((u + 0.5 - 6) / 2 + 3): u = 0 -> 0, u = 11 -> 5
    assert reg.apply(np.arange(36, dtype=np.uint16).reshape(6, 6))[4, [0, 11]].tolist() == [6 * 3 + 0, 6 * 3 + 5]


@pytest.mark.skipif(not (REALDATA / "truedepth_face_sequence").exists(), reason="realdata not present")
def test_the_real_sequence_info_json():
    from facesynth.capture.folder.camera_json import find_camera_json, read_camera_json

    cam = read_camera_json(find_camera_json(REALDATA / "truedepth_face_sequence"))
    assert cam.depth_scale_mm == 0.0153
    assert (cam.color["fx"], cam.color["cx"], cam.color["width"], cam.color["height"]) == (957.366, 358.7454, 720, 1280)
    assert (cam.depth["fx"], cam.depth["cy"], cam.depth["width"], cam.depth["height"]) == (478.683, 320.121, 360, 640)


def test_unknown_camera_json(tmp_path):
    from facesynth.capture.folder.camera_json import read_camera_json

    (tmp_path / "info.json").write_text('{"frames": 3, "author": "someone"}')
    assert read_camera_json(tmp_path / "info.json", required=False) is None  # found beside frames: ignored
    with pytest.raises(InputDataError, match="not a camera JSON"):
        read_camera_json(tmp_path / "info.json")  # given by name: must be one
    (tmp_path / "bad.json").write_text('{"color": {"fx": -1, "fy": 1, "cx": 0, "cy": 0, "width": 4, "height": 4}}')
    with pytest.raises(InputDataError, match="not a camera"):
        read_camera_json(tmp_path / "bad.json")
