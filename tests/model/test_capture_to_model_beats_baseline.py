"""The embedded main job, shrunk: capture.synthetic -> mediapipe landmarks -> crop -> fill -> train.

Acceptance of issue 6, with issue 15's honest metrics: the trained generator beats the trivial
baseline (the mean eval image) on depth MAE over measured face pixels and on face-only colour
PSNR and SSIM, measured on the eval split by the training node, and says so in generator.json.
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
        "nodes.train.params.eval_every_steps=24", "nodes.train.params.eval_every_s=0",  # 96 frames, batch 4: each epoch
        "nodes.train.params.onnx=false",
    ])
    assert res.status == "ok"
    assert res.stats["nodes"]["landmarks"]["items"] == 14  # 112 frames in chunks of 8
    records = [json.loads(line) for line in res.run_log.read_text().splitlines()]
    epochs = [r for r in records if r.get("name") == "train.epoch"]
    assert len(epochs) == 14
    last = epochs[-1]
    assert last["eval"]["frames"] == 16 == last["baseline"]["frames"]
    names = {"depth_mae_mm", "face_psnr", "face_ssim", "face_lpips", "depth_roughness_ratio",
             "crop_psnr", "crop_ssim"}
    assert names <= set(last["eval"]) and names <= set(last["baseline"])
    assert last["eval"]["depth_mae_mm"] < last["baseline"]["depth_mae_mm"]
    assert last["eval"]["face_psnr"] > last["baseline"]["face_psnr"]
    assert last["eval"]["face_ssim"] > last["baseline"]["face_ssim"]
    assert last["eval"]["face_psnr"] < last["eval"]["crop_psnr"]  # the background flattered it
    exported = Path(res.sink["train"][0]["path"])
    meta = json.loads((exported.parent / "generator.json").read_text())
    assert meta["d0_mm"] > 500 and meta["size"] == 128  # the synthetic head sits about 0.6 m away
    assert meta["recipe"] == "facesynth" and meta["arch"]["upsample"] == "resize"
    assert meta["depth_source"] == "synthetic"  # the store's, as capture.synthetic recorded it
    assert meta["eval"]["face_ssim"] == pytest.approx(last["eval"]["face_ssim"])
    # issue 16: the train split's crop landmarks at network size, what live.condition aligns to
    import numpy as np

    from facesynth.store.frame_store import FrameStore

    fs = FrameStore.open(str(store), mode="r")
    train = (np.asarray(fs.read("raw/split")) == 0) & np.asarray(fs.read("crop/ok"), bool)
    want = np.asarray(fs.read("crop/landmarks"))[train].mean(0) * 128 / fs.array("crop/color").shape[1]
    assert 0 < meta["landmark_stats"]["frames"] <= train.sum()
    np.testing.assert_allclose(meta["landmark_stats"]["mean"], want, atol=1.0)
