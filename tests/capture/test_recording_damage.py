"""Damaged Azure Kinect recordings: every damaged frame is found, counted by kind, and never silent.

Each file is a copy of the real capture (mkv_fixture_tools.repeat_capture) damaged by hand at a
known frame, so the expected damaged and kept frames are written down from what was damaged.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from mkv_fixture_tools import (RECORDING, block_offsets, blocks, repeat_capture, set_cluster_size,  # noqa: E402
                               shorten_block)

from facesynth.capture.jpeg_check import jpeg_damage  # noqa: E402
from facesynth.capture.kinect.recording import KinectRecording  # noqa: E402

needs_real = pytest.mark.skipif(not RECORDING.exists(), reason=f"real recording not found at {RECORDING}")
N = 6  # frames in each crafted recording
COLOR = 1  # the colour track number in k4arecord files


def damaged(path: Path) -> tuple[list[int], list[tuple[int, str, int]]]:
    """(indices of intact frames, [(index, kind, frames lost)] of damaged ones) under on_error='skip'."""
    caps = list(KinectRecording(path).captures(on_error="skip"))
    return ([c.index for c in caps if c.error is None],
            [(c.index, c.damage, c.frames_lost) for c in caps if c.error is not None])


def zeros_in_jpeg(data: bytes, offsets: list[int], frame: int, at: int, n: int) -> bytes:
    bad = bytearray(data)
    jpeg_at = block_offsets(data, offsets[frame])[0][2]
    bad[jpeg_at + at:jpeg_at + at + n] = bytes(n)
    return bytes(bad)


@needs_real
@pytest.mark.parametrize("crc", [True, False])
def test_zeros_inside_one_jpeg_skip_that_frame_only(tmp_path, crc):
    data, offsets = repeat_capture(N, crc=crc)
    path = tmp_path / "zeros.mkv"
    path.write_bytes(zeros_in_jpeg(data, offsets, 2, 20_000, 65_536))  # as in the issue: 64 KB of zeros
    assert damaged(path) == ([0, 1, 3, 4, 5], [(2, "jpeg", 1)])
    # what the check prevents: OpenCV decodes this JPEG without an error, most pixels wrong
    good = [p for t, _, p in blocks(data) if t == COLOR][2]
    bad = [p for t, _, p in blocks(path.read_bytes()) if t == COLOR][2]
    a = cv2.imdecode(np.frombuffer(good, np.uint8), cv2.IMREAD_COLOR)
    b = cv2.imdecode(np.frombuffer(bad, np.uint8), cv2.IMREAD_COLOR)
    assert b is not None and (np.abs(a.astype(int) - b).max(axis=2) > 8).mean() > 0.5


@needs_real
@pytest.mark.parametrize("crc", [True, False])
def test_zeros_inside_one_restart_interval_are_found_by_the_huffman_walk(tmp_path, crc):
    """300 zero bytes leave every restart marker in place: only the Huffman data tells (with a CRC,
    the failed checksum makes the reader walk the JPEG to say what is wrong)."""
    data, offsets = repeat_capture(N, crc=crc)
    bad = zeros_in_jpeg(data, offsets, 4, 30_000, 300)
    jpeg = [p for t, _, p in blocks(bad) if t == COLOR][4]
    assert jpeg_damage(jpeg, huffman=False) is None  # the markers are all there
    assert "restart interval" in jpeg_damage(jpeg)  # the interval's Huffman data is not
    path = tmp_path / "zeros300.mkv"
    path.write_bytes(bad)
    assert damaged(path) == ([0, 1, 2, 3, 5], [(4, "jpeg", 1)])


@needs_real
def test_jpeg_damaged_before_recording_needs_jpeg_check_full(tmp_path):
    """A JPEG already damaged when its cluster's CRC-32 was computed: under auto only the markers
    are checked (the documented gap), full walks it and finds it."""
    from mkv_fixture_tools import set_crc

    data, offsets = repeat_capture(N)
    bad = bytearray(zeros_in_jpeg(data, offsets, 4, 30_000, 300))
    set_crc(bad, offsets[4])  # the checksum vouches for the damaged bytes
    path = tmp_path / "camera_side.mkv"
    path.write_bytes(bytes(bad))
    assert damaged(path) == ([0, 1, 2, 3, 4, 5], [])
    caps = list(KinectRecording(path, jpeg_check="full").captures(on_error="skip"))
    assert [(c.index, c.damage) for c in caps if c.error] == [(4, "jpeg")]


@needs_real
@pytest.mark.parametrize("crc", [True, False])
def test_random_bytes_to_the_end_lose_those_frames_and_say_how_many(tmp_path, crc):
    data, offsets = repeat_capture(N, crc=crc)
    bad = bytearray(data)
    bad[offsets[3]:] = np.random.default_rng(1).integers(0, 256, len(data) - offsets[3], dtype=np.uint8).tobytes()
    path = tmp_path / "random_tail.mkv"
    path.write_bytes(bytes(bad))
    # frames 0-2 intact; frames 3-5 (3 of them) are random bytes: one damaged slot, 3 frames lost
    assert damaged(path) == ([0, 1, 2], [(3, "unreadable", 3)])
    caps = list(KinectRecording(path).captures(on_error="skip"))
    assert "to the end of the file" in caps[-1].error and "about 3 frames lost" in caps[-1].error
    assert KinectRecording(path).count_frames() == N  # the slots the store is sized for: 3 + the 3 lost


@needs_real
def test_short_depth_payload_is_a_size_damage(tmp_path):
    data, offsets = repeat_capture(N)
    path = tmp_path / "short_depth.mkv"
    path.write_bytes(shorten_block(data, offsets[2], 1, 1000))  # every size and the CRC consistent
    assert damaged(path) == ([0, 1, 3, 4, 5], [(2, "size", 1)])
    err = next(c.error for c in KinectRecording(path).captures(on_error="skip") if c.error)
    assert f"DEPTH block has {640 * 576 * 2 - 1000} bytes, expected {640 * 576 * 2}" in err


@needs_real
@pytest.mark.parametrize("delta", [100, -100, 100_000])
def test_wrong_cluster_size_damages_that_frame_only(tmp_path, delta):
    data, offsets = repeat_capture(N)
    path = tmp_path / "cluster_size.mkv"
    path.write_bytes(set_cluster_size(data, offsets[3], delta))
    assert damaged(path) == ([0, 1, 2, 4, 5], [(3, "structure", 1)])


@needs_real
def test_flipped_bit_in_raw_depth_fails_the_cluster_crc(tmp_path):
    data, offsets = repeat_capture(N)
    bad = bytearray(data)
    bad[block_offsets(data, offsets[1])[1][2] + 5000] ^= 0x10
    path = tmp_path / "flip.mkv"
    path.write_bytes(bytes(bad))
    assert damaged(path) == ([0, 2, 3, 4, 5], [(1, "checksum", 1)])


@needs_real
def test_damaged_run_is_ok_but_reports_each_frame_and_counts_by_kind(tmp_path, capsys):
    """Through the CLI: exit 0 under the default policy, the damage in the run log and the summary;
    under on_error=fail the run fails at once, naming the frame (an input error is not retried)."""
    from facesynth.cli import main
    from facesynth.store.frame_store import FrameStore

    data, offsets = repeat_capture(N)
    rec = tmp_path / "two_damages.mkv"
    rec.write_bytes(shorten_block(zeros_in_jpeg(data, offsets, 1, 20_000, 65_536), offsets[4], 1, 1000))
    store = tmp_path / "s.zarr"
    graph = tmp_path / "g.yaml"
    graph.write_text(f"version: 1\nname: rec\nstore: {{path: {store}, chunk_frames: 4}}\n"
                     "defaults: {max_restarts: 3}\n"
                     f"nodes:\n  - id: camera\n    kind: capture.recording\n    params: {{path: {rec}}}\n")
    assert main(["graph", "run", str(graph), "--local", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["status"] == "ok"
    assert summary["warnings"] == {"camera": {"capture.damaged": {"jpeg": 1, "size": 1}}}
    log = [json.loads(line) for line in Path(summary["run_log"]).read_text().splitlines()]
    events = [r for r in log if r.get("name") == "capture.damaged"]
    assert [(e["frame"], e["kind"]) for e in events] == [(1, "jpeg"), (4, "size")]
    fs = FrameStore.open(store, "r")
    assert fs.read("raw/source_index")[fs.read("raw/ok")].tolist() == [0, 2, 3, 5]

    graph.write_text(graph.read_text().replace(f"{{path: {rec}}}", f"{{path: {rec}, on_error: fail}}")
                     .replace(str(store), str(tmp_path / "s2.zarr")))
    assert main(["graph", "run", str(graph), "--local", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "frame 1" in err and "color image is corrupt" in err and "Traceback" not in err
    log = [json.loads(line) for line in sorted((tmp_path / "s2.zarr.runs").glob("*.jsonl"))[-1].read_text().splitlines()]
    errors = [r for r in log if r.get("type") == "error"]
    assert len(errors) == 1 and errors[0]["fatal"]  # not retried


def _snapshot(store: Path) -> dict[str, bytes]:
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}


@needs_real
def test_resuming_a_store_with_another_recording_is_refused_and_the_store_untouched(tmp_path, capsys):
    from facesynth.cli import main

    x, y, moved = tmp_path / "x.mkv", tmp_path / "y.mkv", tmp_path / "elsewhere" / "x.mkv"
    x.write_bytes(repeat_capture(3)[0])
    y.write_bytes(repeat_capture(3, step_us=40000)[0])  # another capture: same size, other bytes
    moved.parent.mkdir()
    moved.write_bytes(x.read_bytes())
    store = tmp_path / "s.zarr"
    graph = tmp_path / "g.yaml"
    graph.write_text(f"version: 1\nname: rec\nstore: {{path: {store}, chunk_frames: 2}}\n"
                     f"nodes:\n  - id: camera\n    kind: capture.recording\n    params: {{path: {x}}}\n")
    assert main(["graph", "run", str(graph), "--local", "--quiet"]) == 0
    from facesynth.store.frame_store import FrameStore

    ident = FrameStore.open(store, "r").attrs["capture"]["recording"]
    assert ident["path"] == str(x.resolve()) and ident["size"] == x.stat().st_size
    before = _snapshot(store)
    capsys.readouterr()

    assert main(["graph", "run", str(graph), "--local", "--quiet", "--set", f"nodes.camera.params.path={y}"]) == 1
    err = capsys.readouterr().err
    assert "SourceMismatchError" in err and str(x.resolve()) in err and str(y.resolve()) in err
    assert "--restart" in err and "Traceback" not in err
    assert _snapshot(store) == before  # nothing written, not even attributes

    # the same recording moved elsewhere is the same recording: accepted
    assert main(["graph", "run", str(graph), "--local", "--quiet", "--set", f"nodes.camera.params.path={moved}"]) == 0
    # --restart captures the other one from scratch
    assert main(["graph", "run", str(graph), "--local", "--quiet", "--restart",
                 "--set", f"nodes.camera.params.path={y}"]) == 0
    assert FrameStore.open(store, "r").attrs["capture"]["recording"]["path"] == str(y.resolve())


@needs_real
async def test_store_sized_for_fewer_frames_is_an_input_error_not_retried(tmp_path):
    """More frames asked of a store sized for fewer: the same answer on every retry, so none."""
    from test_capture_nodes import make_node, run

    from facesynth.errors import SourceMismatchError

    rec = tmp_path / "three.mkv"
    rec.write_bytes(repeat_capture(3)[0])
    store = tmp_path / "s.zarr"
    node, _ = make_node("capture.recording", store, {"path": str(rec), "frames": {"train": 1, "eval": 1}})
    await run(node)  # arrays sized for 2 frames
    node2, _ = make_node("capture.recording", store, {"path": str(rec), "frames": {"train": 3, "eval": 0}})
    with pytest.raises(SourceMismatchError) as err:
        await run(node2)
    assert not err.value.retryable and "raw/color" in str(err.value) and "--restart" in str(err.value)


@needs_real
def test_reading_resumes_after_a_damaged_stretch_and_later_frames_keep_their_index(tmp_path):
    data, offsets = repeat_capture(7)
    bad = bytearray(data)
    lo, hi = offsets[2] + 5000, offsets[4] + 100  # inside frame 2's JPEG to inside frame 4's cluster header
    bad[lo:hi] = np.random.default_rng(2).integers(0, 256, hi - lo, dtype=np.uint8).tobytes()
    path = tmp_path / "middle.mkv"
    path.write_bytes(bytes(bad))
    # frames 2, 3 and 4 are gone (4 lost its cluster header): one item standing for the 3 of them
    assert damaged(path) == ([0, 1, 5, 6], [(2, "structure", 3)])
    assert KinectRecording(path).count_frames() == 7
    ts = [c.timestamp_us for c in KinectRecording(path).captures(on_error="skip") if c.error is None]
    assert ts == [463945 + 33333 * k for k in (0, 1, 5, 6)]  # the real frames 5 and 6
