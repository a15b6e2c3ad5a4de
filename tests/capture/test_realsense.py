"""capture.realsense playing a recording the RealSense SDK itself wrote from the real iPhone frames.

No RealSense camera here: the SDK's software device (a camera made of frames handed to it) and
its recorder write the recording, the way a camera session would (SDK 2.59 writes ROS 2 `.db3`;
`.bag` files of older SDKs go through the same playback call, untested here). Depth is written
in 0.1 mm units (the SDK keeps a depth unit of 1e-4 m exactly; 0.0153 mm it rounds to 0.015).
Needs pyrealsense2 (extra [realsense]) and, on Linux, libusb-1.0: skipped without them.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from r3d_fixture_tools import H, SEQUENCE, W, source_depth_mm  # noqa: E402
from test_capture_nodes import make_node, run  # noqa: E402

from facesynth.store.frame_store import FrameStore  # noqa: E402

rs = pytest.importorskip("pyrealsense2", reason="pyrealsense2 (extra [realsense]) with libusb-1.0 is not installed")
pytestmark = pytest.mark.skipif(not (SEQUENCE / "info.json").exists(), reason=f"real sequence not found at {SEQUENCE}")
N = 5


def write_recording(path: Path, frames: int) -> None:
    """The sequence's first frames through a software device into the SDK's recorder (test code)."""
    info = {s["name"]: s for s in json.loads((SEQUENCE / "info.json").read_text())["streams"]}

    def stream(kind, uid, w, h, bpp, fmt, name):
        k = info[name]["properties"]["intrinsics"]
        intr = rs.intrinsics()
        intr.width, intr.height, intr.model, intr.coeffs = w, h, rs.distortion.none, [0.0] * 5
        (intr.fx, intr.fy), (intr.ppx, intr.ppy) = k["focal"], k["pp"]
        v = rs.video_stream()
        v.type, v.index, v.uid, v.width, v.height, v.fps, v.bpp, v.fmt, v.intrinsics = \
            kind, 0, uid, w, h, 30, bpp, fmt, intr
        return v

    dev = rs.software_device()
    depth_sensor, color_sensor = dev.add_sensor("Depth"), dev.add_sensor("Color")
    dprof = depth_sensor.add_video_stream(stream(rs.stream.depth, 0, 360, 640, 2, rs.format.z16, "Depth"))
    cprof = color_sensor.add_video_stream(stream(rs.stream.color, 1, W, H, 3, rs.format.rgb8, "Color"))
    depth_sensor.add_read_only_option(rs.option.depth_units, 1e-4)
    ext = rs.extrinsics()
    ext.rotation, ext.translation = [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0], [0.0, 0.0, 0.0]
    dprof.register_extrinsics_to(cprof, ext)  # same optical centre, as the sequence's info.json says
    recorder = rs.recorder(str(path), dev)
    sync = rs.syncer()
    for sensor, prof in ((depth_sensor, dprof), (color_sensor, cprof)):
        sensor.open(prof)
        sensor.start(sync)
    for i in range(frames):
        depth = np.rint(source_depth_mm(i) * 10).astype(np.uint16)
        color = cv2.imread(str(SEQUENCE / f"color_{i:02d}.jpg"), cv2.IMREAD_COLOR_RGB)
        for sensor, prof, img, bpp in ((depth_sensor, dprof, depth, 2), (color_sensor, cprof, color, 3)):
            f = rs.software_video_frame()
            f.pixels, f.bpp, f.stride = img, bpp, img.shape[1] * bpp
            f.timestamp, f.domain, f.frame_number = i * 1000.0 / 30, rs.timestamp_domain.hardware_clock, i
            f.profile = prof.as_video_stream_profile()
            sensor.on_video_frame(f)
    for sensor in (depth_sensor, color_sensor):
        sensor.stop()
        sensor.close()
    del recorder  # closes the file


async def test_realsense_recording_of_the_real_frames(tmp_path):
    rec = tmp_path / "sequence.db3"
    write_recording(rec, N)
    node, _ = make_node("capture.realsense", tmp_path / "s.zarr", {"path": str(rec)})
    await run(node)
    st = FrameStore.open(tmp_path / "s.zarr", "r")
    ok = st.read("raw/ok")
    assert int(ok.sum()) == N and st.read("raw/source_index")[ok].tolist() == list(range(N))
    assert st.attrs["depth_source"] == "realsense"
    assert st.attrs["intrinsics"]["fx"] == pytest.approx(957.366, abs=1e-3)
    assert st.attrs["capture"]["depth_mm_per_unit"] == pytest.approx(0.1, rel=1e-6)
    color, depth = st.read("raw/color", 0, N), st.read("raw/depth", 0, N)
    for i in range(N):
        assert np.array_equal(color[i], cv2.imread(str(SEQUENCE / f"color_{i:02d}.jpg"), cv2.IMREAD_COLOR_RGB))
        # the SDK's alignment reprojects each depth pixel into the colour camera: every aligned value is
        # one of the source's measured values around the colour pixel (3x3 depth pixels), to 0.1 mm units
        src = source_depth_mm(i)
        lo = cv2.erode(np.where(src > 0, src, 1e9), np.ones((3, 3)))
        hi = cv2.dilate(src, np.ones((3, 3)))
        rows, cols = np.arange(H)[:, None] // 2, np.arange(W)[None, :] // 2
        lo, hi, measured = lo[rows, cols], hi[rows, cols], src[rows, cols] > 0
        d = depth[i].astype(np.float64)
        inside = (d >= lo - 0.6) & (d <= hi + 0.6)
        assert inside[measured & (d > 0)].mean() > 0.999
        assert ((d > 0) & measured).sum() / measured.sum() > 0.99  # alignment leaves no new holes
        exact = np.abs(d - src[rows, cols])[measured & (d > 0)]
        assert np.median(exact) <= 0.5
