"""Reading Azure Kinect MKV: arrays equal to the raw blocks; damage named by file and frame."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from mkv_fixture_tools import CALIBRATION, RECORDING, block_offsets, blocks, repeat_capture  # noqa: E402

from facesynth.errors import InputDataError  # noqa: E402
from facesynth.capture.jpeg_check import jpeg_damage
from facesynth.capture.kinect.images import decode_color  # noqa: E402
from facesynth.capture.kinect.recording import KinectRecording  # noqa: E402

needs_real = pytest.mark.skipif(not RECORDING.exists(), reason=f"real recording not found at {RECORDING}")
COLOR, DEPTH, IR = 1, 2, 3  # Matroska track numbers in k4arecord files


@needs_real
def test_real_recording_decodes_to_its_block_bytes():
    raw = blocks(RECORDING.read_bytes())
    by_track = {t: (tc, p) for t, tc, p in raw}
    rec = KinectRecording(RECORDING)
    assert rec.count_frames() == 1
    caps = list(rec.captures())
    assert len(caps) == 1
    cap = caps[0]
    assert cap.index == 0 and cap.timestamp_us == by_track[DEPTH][0] == 463945
    depth = np.frombuffer(by_track[DEPTH][1], ">u2").reshape(576, 640)
    ir = np.frombuffer(by_track[IR][1], ">u2").reshape(576, 640)
    assert cap.depth.dtype == np.uint16 and np.array_equal(cap.depth, depth)
    assert np.array_equal(cap.ir, ir)
    bgr = cv2.imdecode(np.frombuffer(by_track[COLOR][1], np.uint8), cv2.IMREAD_COLOR)
    assert cap.color.shape == (720, 1280, 3) and np.array_equal(cap.color, bgr[..., ::-1])
    # real content, not zeros: 23.5 % holes per the data README
    assert abs((depth == 0).mean() - 0.235) < 0.01 and cap.color.std() > 20


@needs_real
def test_calibration_attachment_matches_the_file_beside_it():
    rec = KinectRecording(RECORDING)
    assert json.loads(rec.calibration_json) == json.loads(CALIBRATION.read_text())
    cal = rec.calibration()
    assert (cal.depth_mode, cal.color_mode) == ("NFOV_UNBINNED", "720P")
    assert rec.tags["K4A_DEVICE_SERIAL_NUMBER"] == "001514394512"


@needs_real
def test_multi_frame_copy_reads_every_frame(tmp_path):
    data, _ = repeat_capture(4)
    path = tmp_path / "four.mkv"
    path.write_bytes(data)
    caps = list(KinectRecording(path).captures())
    assert [c.index for c in caps] == [0, 1, 2, 3]
    assert [c.timestamp_us for c in caps] == [463945 + 33333 * k for k in range(4)]
    assert all(np.array_equal(c.depth, caps[0].depth) for c in caps)


@needs_real
def test_truncated_real_recording_names_file_and_frame(tmp_path):
    path = tmp_path / "cut.mkv"
    path.write_bytes(RECORDING.read_bytes()[:500_000])  # inside the depth block of frame 0
    with pytest.raises(InputDataError) as err:
        list(KinectRecording(path).captures())
    msg = str(err.value)
    assert str(path) in msg and "frame 0" in msg and "truncated" in msg


@needs_real
def test_truncation_keeps_the_frames_before_it(tmp_path):
    data, offsets = repeat_capture(4)
    cut = block_offsets(data, offsets[2])[1][2] + 1000  # 1000 bytes into frame 2's depth image
    path = tmp_path / "cut4.mkv"
    path.write_bytes(data[:cut])
    got = []
    with pytest.raises(InputDataError) as err:
        for cap in KinectRecording(path).captures():
            got.append(cap)
    assert [c.index for c in got] == [0, 1] and all(c.depth is not None for c in got)
    msg = str(err.value)
    assert str(path) in msg and "frame 2" in msg and "truncated" in msg and "t=0.530611" in msg
    # stop: the same intact frames, then the damaged one (reported, no images), then the end
    caps = list(KinectRecording(path).captures(on_error="stop"))
    assert [(c.index, c.damage) for c in caps] == [(0, None), (1, None), (2, "truncated")]
    assert caps[2].color is None and "truncated" in caps[2].error


@needs_real
def test_corrupt_jpeg_is_reported_not_painted_grey(tmp_path):
    data, offsets = repeat_capture(3)
    bad = bytearray(data)
    jpeg_at = block_offsets(data, offsets[1])[0][2]
    bad[jpeg_at + 5000:jpeg_at + 7000] = np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes()
    path = tmp_path / "badjpeg.mkv"
    path.write_bytes(bytes(bad))
    got = []
    with pytest.raises(InputDataError) as err:
        for cap in KinectRecording(path).captures():
            got.append(cap.index)
    assert got == [0]
    assert str(path) in str(err.value) and "frame 1" in str(err.value) and "color" in str(err.value)
    caps = list(KinectRecording(path).captures(on_error="skip"))
    assert [c.index for c in caps] == [0, 1, 2] and caps[1].error and caps[1].color is None
    assert caps[2].color is not None


@needs_real
def test_corrupt_block_header_gives_missing_images(tmp_path):
    data, offsets = repeat_capture(4)
    bad = bytearray(data)
    depth_el = block_offsets(data, offsets[2])[1][1]
    bad[depth_el:depth_el + 4] = b"\x00\x00\x00\x00"  # the depth SimpleBlock's id + size destroyed
    path = tmp_path / "badblock.mkv"
    path.write_bytes(bytes(bad))
    with pytest.raises(InputDataError) as err:
        list(KinectRecording(path).captures())
    assert "frame 2" in str(err.value) and "depth" in str(err.value)
    caps = list(KinectRecording(path).captures(on_error="skip"))
    assert [c.error is None for c in caps] == [True, True, False, True]


@needs_real
def test_corrupt_cluster_loses_a_frame_and_says_so(tmp_path):
    data, offsets = repeat_capture(4)
    bad = bytearray(data)
    first_block = block_offsets(data, offsets[1])[0][1]
    bad[first_block:first_block + 600] = bytes(600)
    path = tmp_path / "badcluster.mkv"
    path.write_bytes(bytes(bad))
    with pytest.raises(InputDataError) as err:
        list(KinectRecording(path).captures())
    assert "frame 1" in str(err.value) and "lost" in str(err.value)


def test_jpeg_damage_checks():
    img = (np.arange(64 * 48 * 3) % 251).astype(np.uint8).reshape(48, 64, 3)
    ok, enc = cv2.imencode(".jpg", img)
    buf = enc.tobytes()
    assert jpeg_damage(buf) is None
    assert "cut short" in jpeg_damage(buf[:-200])
    assert "start" in jpeg_damage(b"\x00" + buf[1:])
    assert "the track says 32x48" in jpeg_damage(buf, size=(32, 48))


@pytest.mark.parametrize("restart", [0, 3])
def test_jpeg_damage_finds_zeros_that_opencv_decodes_silently(restart):
    """Zeros inside the scan of an OpenCV-written JPEG (without and with restart markers)."""
    rng = np.random.default_rng(3)
    img = cv2.GaussianBlur(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8), (5, 5), 2)
    ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 30, cv2.IMWRITE_JPEG_RST_INTERVAL, restart])
    buf = enc.ravel()
    assert jpeg_damage(buf) is None
    bad = buf.copy()
    bad[bad.size // 2:bad.size // 2 + 8] = 0
    assert cv2.imdecode(bad, cv2.IMREAD_COLOR) is not None  # the decoder gives an image all the same
    assert "JPEG scan data corrupt" in jpeg_damage(bad)


def test_raw_colour_formats_decode_to_rgb():
    rng = np.random.default_rng(1)
    rgb = cv2.GaussianBlur(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8), (9, 9), 4)
    bgra = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA)
    assert np.array_equal(decode_color(bgra.tobytes(), "bgra", 48, 32), rgb)
    i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)  # planar Y, U, V -> NV12 interleaves U and V
    y, u, v = i420[:32], i420[32:40].reshape(-1), i420[40:48].reshape(-1)
    nv12 = np.concatenate([y.reshape(-1), np.stack([u, v], 1).reshape(-1)])
    same_chroma = cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)
    assert np.abs(decode_color(nv12.tobytes(), "nv12", 48, 32).astype(int) - same_chroma).max() <= 1
    yuv = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV)
    yuy2 = np.empty((32, 48, 2), np.uint8)
    yuy2[..., 0] = yuv[..., 0]
    yuy2[:, 0::2, 1] = yuv[:, 0::2, 1]
    yuy2[:, 1::2, 1] = yuv[:, 0::2, 2]
    assert np.abs(decode_color(yuy2.tobytes(), "yuy2", 48, 32).astype(int) - rgb).mean() < 4
    with pytest.raises(ValueError, match="bytes"):
        decode_color(bgra.tobytes()[:-4], "bgra", 48, 32)


def test_missing_file_is_input_error(tmp_path):
    with pytest.raises(InputDataError, match="no such recording"):
        KinectRecording(tmp_path / "nope.mkv")
    (tmp_path / "junk.mkv").write_bytes(b"not a matroska file" * 10)
    with pytest.raises(InputDataError, match="junk.mkv"):
        KinectRecording(tmp_path / "junk.mkv")
