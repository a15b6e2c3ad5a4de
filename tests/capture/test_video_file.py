"""The video file reader (capture/video/video_file.py): frames, damage under the shared on_error policy,
and untrusted files refused."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from video_fixture_tools import damage_jpeg, synthetic_frames, write_video  # noqa: E402

from facesynth.capture.damage_policy import apply_on_error  # noqa: E402
from facesynth.capture.video.video_file import VideoFile  # noqa: E402
from facesynth.errors import InputDataError  # noqa: E402

N = 16


@pytest.fixture(scope="module")
def avi(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("v") / "clip.avi", synthetic_frames(N), codec="mjpeg", fmt="avi")


def test_reads_every_frame_in_order_with_its_time(avi):
    v = VideoFile(avi)
    assert (v.width, v.height, v.frame_count, v.fps, v.codec) == (96, 64, N, 24.0, "mjpeg")
    frames = list(v.frames())
    assert [f.index for f in frames] == list(range(N))
    assert [f.timestamp_us for f in frames] == [round(k * 1e6 / 24) for k in range(N)]
    src = synthetic_frames(N)
    for f in frames:
        assert f.rgb.shape == (64, 96, 3) and f.error is None
        assert np.abs(f.rgb.astype(int) - src[f.index]).mean() < 6  # JPEG
    assert [f.index for f in v.frames(start=5, stride=4)] == [8, 12]


@pytest.mark.parametrize("policy", ["skip", "stop", "fail"])
def test_an_undecodable_packet_follows_on_error(avi, tmp_path, policy):
    bad = damage_jpeg(avi, 6, tmp_path / "bad.avi")
    v = VideoFile(bad)

    def read():
        return list(apply_on_error(v.frames(), policy, lambda f: f.error))

    if policy == "fail":
        with pytest.raises(InputDataError, match="frame 6: a packet does not decode"):
            read()
        return
    frames = read()
    damaged = [f for f in frames if f.error]
    assert [(f.index, f.damage, f.rgb) for f in damaged] == [(6, "undecodable", None)]
    good = [f.index for f in frames if not f.error]
    assert good == ([k for k in range(N) if k != 6] if policy == "skip" else list(range(6)))


def test_a_cut_file_says_how_many_frames_are_missing(avi, tmp_path):
    cut = tmp_path / "cut.avi"
    data = avi.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    frames = list(VideoFile(cut).frames())
    good = [f for f in frames if not f.error]
    assert 0 < len(good) < N
    assert frames[-1].damage == "truncated"
    assert len(good) + sum(f.frames_lost for f in frames if f.error) == N  # every frame accounted for
    with pytest.raises(InputDataError, match=f"frame {len(good)}: "):  # the half-cut packet, or the end
        list(apply_on_error(VideoFile(cut).frames(), "fail", lambda f: f.error))


def test_files_that_are_not_plain_videos_are_refused_before_decoding(tmp_path, avi):
    with pytest.raises(InputDataError, match="no such video file"):
        VideoFile(tmp_path / "missing.mp4")
    with pytest.raises(InputDataError, match="a directory"):
        VideoFile(tmp_path)
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    with pytest.raises(InputDataError, match="a FIFO"):  # opening it would block forever
        VideoFile(fifo)
    # playlists and concat lists name other files or URLs: FFmpeg would open those
    (tmp_path / "list.m3u8").write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{avi}\n#EXT-X-ENDLIST\n")
    (tmp_path / "list.ffconcat").write_text(f"ffconcat version 1.0\nfile {avi}\n")
    (tmp_path / "net.m3u8").write_text("#EXTM3U\n#EXTINF:10,\nhttp://127.0.0.1:9/x.ts\n#EXT-X-ENDLIST\n")
    (tmp_path / "junk.mp4").write_bytes(bytes(range(256)) * 64)
    for name in ("list.m3u8", "list.ffconcat", "net.m3u8", "junk.mp4"):
        with pytest.raises(InputDataError, match="not a video file facesynth reads"):
            VideoFile(tmp_path / name)


def test_an_absurd_frame_size_is_refused_from_the_header(tmp_path):
    # a 60-byte file declaring 12000 x 12000 frames (432 MB each): refused before any frame is allocated
    y4m = tmp_path / "huge.y4m"
    y4m.write_bytes(b"YUV4MPEG2 W12000 H12000 F25:1 Ip A1:1 C420jpeg\nFRAME\n" + bytes(16))
    with pytest.raises(InputDataError, match=r"declares 12000x12000 pixels.*max_pixels"):
        VideoFile(y4m)
    small = tmp_path / "small.y4m"
    small.write_bytes(b"YUV4MPEG2 W64 H48 F25:1 Ip A1:1 C420jpeg\n" + (b"FRAME\n" + bytes(64 * 48 * 3 // 2)) * 2)
    assert len(list(VideoFile(small).frames())) == 2
    with pytest.raises(InputDataError, match="declares 64x48"):
        VideoFile(small, max_pixels=64 * 47)
