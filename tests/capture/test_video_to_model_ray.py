"""Acceptance (issue 20): graphs/video_to_model.yaml on the real expressions video runs the main job end
to end on embedded Ray, shrunk (every 16th frame, a tiny generator): capture.video -> landmarks -> crop ->
fill -> train -> export. Frames without exactly one face are skipped and counted: the count agrees with
mediapipe's own detector run directly on the same frames. (On this video that count is 0, hand-covered
frames included: mediapipe finds the face behind the hand on every frame; docs/capture_video.md.)"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from video_fixture_tools import EXPRESSIONS, HAND_FRAMES, count_faces_directly, read_frames  # noqa: E402

GRAPH = Path(__file__).resolve().parents[2] / "graphs" / "video_to_model.yaml"
pytestmark = [pytest.mark.ray, pytest.mark.slow,
              pytest.mark.skipif(not EXPRESSIONS.exists(), reason=f"real face video not found at {EXPRESSIONS}")]


def test_video_to_model_runs_end_to_end_and_counts_frames_without_one_face(tmp_path):
    from facesynth.runtime.api import run_graph
    from facesynth.store.frame_store import FrameStore

    store = tmp_path / "v.zarr"
    res = run_graph(str(GRAPH), backend="ray", overrides=[
        f"store.path={store}",
        f"nodes.camera.params.path={EXPRESSIONS}",
        "nodes.camera.params.stride=16", "nodes.camera.params.frames={train: 24, eval: 4}",
        "nodes.camera.params.scale_frames=8",
        "nodes.train.params={size: 32, ngf: 4, ndf: 4, epochs: 1, decay_epochs: 0, batch_size: 8, lpips: false,"
        " onnx: false, threads: 1}",
    ])
    assert res.status == "ok"
    fs = FrameStore.open(str(store), mode="r")
    src = np.asarray(fs.read("raw/source_index"))
    assert src.tolist() == list(range(0, 28 * 16, 16))  # every 16th frame of the video, in order
    assert fs.attrs["depth_source"] == "face_mesh"
    assert sum(int(i) in HAND_FRAMES for i in src) == 11  # frames with a hand over the face are in the run

    # frames without exactly one face: skipped by face.landmarks and counted, as mediapipe itself counts them
    frames = read_frames(EXPRESSIONS, src.tolist())
    faces = count_faces_directly([frames[int(i)] for i in src])
    lm_ok = np.asarray(fs.read("landmarks/ok"), bool)
    assert lm_ok.tolist() == [n == 1 for n in faces]
    records = [json.loads(line) for line in res.run_log.read_text().splitlines()]
    skipped = sum(r["skipped"] for r in records if r.get("name") == "landmarks.skipped")
    assert skipped == sum(n != 1 for n in faces)
    rejects = [r for r in records if r.get("name") == "capture.rejects"][-1]
    assert rejects["face_mesh"]["depth_frames"] == sum(n == 1 for n in faces)

    # the rest of the job: crops with the estimated depth, filled, a trained and exported generator
    assert np.asarray(fs.read("crop/ok"), bool).sum() >= 0.9 * lm_ok.sum()
    assert 200 < fs.attrs["normalisation"]["d0_mm"] < 1000
    exported = Path(res.sink["train"][0]["path"])
    assert exported.exists() and (exported.parent / "generator.json").exists()
