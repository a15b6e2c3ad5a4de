"""The embedded main job, shrunk: capture.synthetic -> mediapipe landmarks -> crop -> fill -> train.

Acceptance of issue 6: the trained generator beats the trivial baseline (the mean eval image) on
depth MAE inside the face and on colour PSNR, measured on the eval split by the training node.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from facesynth.runtime.api import run_graph

GRAPH = Path(__file__).resolve().parents[2] / "graphs" / "capture_to_model.yaml"


@pytest.mark.slow
def test_tiny_capture_to_model_beats_the_mean_image(tmp_path):
    store = tmp_path / "cm.zarr"
    res = run_graph(str(GRAPH), backend="local", overrides=[
        f"store.path={store}",
        "nodes.camera.params.frames={train: 96, eval: 16}",
        "nodes.camera.params.width=320", "nodes.camera.params.height=240",
        "nodes.train.params.epochs=10", "nodes.train.params.decay_epochs=4",
        "nodes.train.params.onnx=false",
    ])
    assert res.status == "ok"
    assert res.stats["nodes"]["landmarks"]["items"] == 14  # 112 frames in chunks of 8
    records = [json.loads(line) for line in res.run_log.read_text().splitlines()]
    epochs = [r for r in records if r.get("name") == "train.epoch"]
    assert len(epochs) == 14
    last = epochs[-1]
    assert last["eval"]["frames"] == 16 == last["baseline"]["frames"]
    assert last["eval"]["depth_mae_mm"] < last["baseline"]["depth_mae_mm"]
    assert last["eval"]["psnr"] > last["baseline"]["psnr"]
    exported = Path(res.sink["train"][0]["path"])
    meta = json.loads((exported.parent / "generator.json").read_text())
    assert meta["d0_mm"] > 500 and meta["size"] == 128  # the synthetic head sits about 0.6 m away
