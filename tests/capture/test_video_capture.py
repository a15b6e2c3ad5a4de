"""capture.video through the node contract and a small local graph, on frames of the real expressions video:
mesh depth where one face is found, depth 0 (no reading) where none is, those frames skipped and counted
downstream, damage counted, a store tied to its video, and clear errors without a webcam."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_capture_nodes import make_node, run  # noqa: E402
from video_fixture_tools import (EXPRESSIONS, count_faces_directly, damage_jpeg, hide_face,  # noqa: E402
                                 read_frames, write_video)

from facesynth.errors import SourceMismatchError  # noqa: E402
from facesynth.store.frame_store import FrameStore  # noqa: E402

pytestmark = pytest.mark.skipif(not EXPRESSIONS.exists(), reason=f"real face video not found at {EXPRESSIONS}")

# real frames: crying, a hand over the nose, a hand over the mouth, laughing twice; two with the person hidden
PICK = [0, 100, 150, 300, 400]
HIDDEN_AT = (1, 4)


@pytest.fixture(scope="module")
def clip_frames() -> list[np.ndarray]:
    real = read_frames(EXPRESSIONS, PICK)
    frames = [real[i] for i in PICK]
    for k in HIDDEN_AT:
        frames.insert(k, hide_face(frames[k]))
    return frames


@pytest.fixture(scope="module")
def clip(tmp_path_factory, clip_frames) -> Path:
    return write_video(tmp_path_factory.mktemp("clip") / "clip.mp4", clip_frames)


async def test_frames_get_mesh_depth_and_frames_without_a_face_get_no_reading(tmp_path, clip):
    decoded = list(read_frames(clip).values())
    faces = count_faces_directly(decoded)  # the independent count: mediapipe's detector on the decoded frames
    assert faces == [0 if k in HIDDEN_AT else 1 for k in range(len(decoded))]
    node, events = make_node("capture.video", tmp_path / "s.zarr",
                             {"path": str(clip), "frames": {"train": 7, "eval": 0}})
    await run(node)
    store = FrameStore.open(tmp_path / "s.zarr", "r")
    assert store.read("raw/ok").tolist() == [True] * 7  # every frame of the video is a frame of the store
    assert store.read("raw/source_index").tolist() == list(range(7))
    depth = store.read("raw/depth")
    for k in range(7):
        if faces[k] == 0:
            assert depth[k].max() == 0, k
        else:
            d = depth[k][depth[k] > 0]
            assert 0.08 < d.size / depth[k].size < 0.4, k    # the face, not the frame
            assert 150 < np.median(d) < 1500 and np.ptp(d) < 200, k  # a face at arm's length, ~10 cm deep
    attrs = store.attrs
    assert attrs["depth_source"] == "face_mesh"
    cap = attrs["capture"]
    assert cap["source"] == "capture.video" and cap["recording"]["size"] == clip.stat().st_size
    assert cap["face_scale"]["method"] == "iris" and cap["face_scale"]["samples"] == sum(faces)
    assert attrs["intrinsics"]["estimated"] is True and attrs["intrinsics"]["width"] == 640
    last = [d for n, d in events if n == "capture.rejects"][-1]
    assert last["face_mesh"] == {"depth_frames": sum(faces), "no_face": faces.count(0), "several_faces": 0}


def test_frames_without_one_face_are_skipped_and_counted_downstream(tmp_path, clip, capsys):
    from facesynth.cli import main
    from facesynth.runtime.api import run_graph

    graph = tmp_path / "g.yaml"
    graph.write_text(f"""version: 1
name: video_landmarks
store: {{path: {tmp_path / 's.zarr'}, chunk_frames: 4}}
nodes:
  - id: camera
    kind: capture.video
    params: {{path: {clip}, frames: {{train: 7, eval: 0}}}}
  - id: landmarks
    kind: face.landmarks
    inputs: {{rgbd: camera/rgbd}}
""")
    records: list[dict] = []
    assert run_graph(str(graph), backend="local", on_record=records.append).status == "ok"
    store = FrameStore.open(tmp_path / "s.zarr", "r")
    faces = count_faces_directly(list(store.read("raw/color")))
    assert store.read("landmarks/ok").tolist() == [n == 1 for n in faces]
    skipped = [r for r in records if r.get("name") == "landmarks.skipped"]
    assert sum(r["skipped"] for r in skipped) == sum(n != 1 for n in faces) == len(HIDDEN_AT)
    assert sum(r["reasons"].get("no_face", 0) for r in skipped) == len(HIDDEN_AT)
    assert main(["store", "info", str(tmp_path / "s.zarr")]) == 0
    out = capsys.readouterr().out
    assert "depth source: face_mesh (estimated from the face mesh, not measured)" in out


async def test_a_store_is_tied_to_its_video(tmp_path, clip_frames):
    a = write_video(tmp_path / "a.mp4", clip_frames[:3])
    b = write_video(tmp_path / "b.mp4", clip_frames[2:5])
    params = {"frames": {"train": 3, "eval": 0}}
    node, _ = make_node("capture.video", tmp_path / "s.zarr", {"path": str(a), **params}, chunk_frames=4)
    first = await run(node)
    done = {o.key: [{"port": o.port, "chunk": o.item.to_dict()}] for o in first}
    from facesynth.capture.video.nodes import VideoSource
    from facesynth.nodes.base import NodeContext

    ctx = NodeContext(node_id="camera", kind="capture.video", store_path=str(tmp_path / "s.zarr"), chunk_frames=4,
                      done=done, reporter=lambda *_: None)
    again = VideoSource(VideoSource.Params(path=str(b), **params), ctx)
    with pytest.raises(SourceMismatchError, match="a different recording"):
        await run(again)
    other_scale = VideoSource(VideoSource.Params(path=str(a), ipd_mm=70.0, **params), ctx)
    with pytest.raises(SourceMismatchError, match="face size"):  # depth of two scales in one store
        await run(other_scale)
    same = VideoSource(VideoSource.Params(path=str(a), **params), ctx)
    assert [o.item for o in await run(same)] == [o.item for o in first]  # the same video resumes


async def test_a_damaged_frame_is_skipped_and_counted(tmp_path, clip_frames):
    avi = write_video(tmp_path / "c.avi", clip_frames, codec="mjpeg", fmt="avi")
    bad = damage_jpeg(avi, 3, tmp_path / "bad.avi")
    node, events = make_node("capture.video", tmp_path / "s.zarr",
                             {"path": str(bad), "frames": {"train": 7, "eval": 0}})
    await run(node)
    store = FrameStore.open(tmp_path / "s.zarr", "r")
    assert store.read("raw/source_index")[store.read("raw/ok")].tolist() == [0, 1, 2, 4, 5, 6]
    damaged = [d for n, d in events if n == "capture.damaged"]
    assert [(d["frame"], d["tally"], d["policy"]) for d in damaged] == [(3, "undecodable", "skip")]
    assert [d for n, d in events if n == "capture.rejects"][-1]["damaged"] == {"undecodable": 1}


def test_without_a_webcam_or_with_both_sources_the_cli_says_so(tmp_path, capsys):
    from facesynth.cli import main

    graph = tmp_path / "cam.yaml"
    body = "version: 1\nname: cam\nstore: {path: %s}\nnodes:\n  - id: camera\n    kind: capture.video\n    params: %s\n"
    graph.write_text(body % (tmp_path / "s.zarr", "{device: 7, frames: {train: 2, eval: 0}}"))
    assert main(["graph", "run", str(graph), "--local", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "no camera at index 7" in err and "give a video file with `path`" in err and "Traceback" not in err
    graph.write_text(body % (tmp_path / "s.zarr", "{device: 0, path: x.mp4}"))
    assert main(["graph", "validate", str(graph)]) == 2
    assert "exactly one of `path`" in capsys.readouterr().err


async def test_webcam_node_logic_with_a_stand_in_camera(tmp_path, clip, monkeypatch):
    """No webcam here: OpenCV itself reading the clip file stands in for camera 0 (the node only sees
    VideoCapture's read/isOpened/get/set/release)."""
    import cv2

    from facesynth.capture.video import webcam

    real_capture = cv2.VideoCapture
    monkeypatch.setattr(webcam.cv2, "VideoCapture", lambda index: real_capture(str(clip)) if index == 0 else None)
    node, events = make_node("capture.video", tmp_path / "s.zarr", {"device": 0, "frames": {"train": 4, "eval": 0},
                                                                     "scale_frames": 2})
    await run(node)
    store = FrameStore.open(tmp_path / "s.zarr", "r")
    # the camera's first frames went to the scale (two with a face: frames 0 and 2), the capture took the next four
    assert store.read("raw/ok").tolist() == [True] * 4
    assert store.attrs["capture"]["device"] == 0 and store.attrs["capture"]["face_scale"]["samples"] == 2
    depth = store.read("raw/depth")
    assert [bool(d.max() > 0) for d in depth] == [True, False, True, True]  # clip frames 3..6: 4 is hidden


async def test_a_video_without_any_face_is_a_clear_error(tmp_path, clip_frames):
    from facesynth.errors import InputDataError

    empty = write_video(tmp_path / "empty.mp4", [hide_face(f) for f in clip_frames[:3]])
    node, _ = make_node("capture.video", tmp_path / "s.zarr", {"path": str(empty)})
    with pytest.raises(InputDataError, match="finds no single face in the frames sampled"):
        await run(node)
