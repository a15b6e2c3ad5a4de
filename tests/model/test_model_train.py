"""Training end to end at a tiny size on a synthetic store: the model.pix2pix node beats the
mean-eval-image baseline, exports what it learned, and an interrupted run resumes exactly."""
from __future__ import annotations

import asyncio
import json

import cv2
import numpy as np
import pytest
import torch

from facesynth.errors import InputDataError
from facesynth.model.dataset import EVAL, TRAIN, load_pairs
from facesynth.model.export import load_exported, onnx_session
from facesynth.model.toy_data import write_toy_store
from facesynth.model.train import Trainer, TrainConfig
from facesynth.nodes.base import ChunkRef, NodeContext
from facesynth.nodes.registry import get

pytestmark = pytest.mark.usefixtures("one_thread")


def test_dataset_reads_pairs_from_store(tmp_path):
    store = write_toy_store(tmp_path / "s.zarr", n_train=8, n_eval=3, size=64)
    train, ev = load_pairs(store, TRAIN), load_pairs(store, EVAL)
    assert (len(train), len(ev)) == (8, 3) and list(ev.frames) == [8, 9, 10]
    x, y = train.batch([0, 1])
    assert x.shape == (2, 1, 64, 64) and y.shape == (2, 4, 64, 64)
    assert set(np.unique(x.numpy())) == {-1.0, 1.0}  # white lines on black
    bg = y[:, 3] <= -1.0
    assert bool((y[:, :3][bg.unsqueeze(1).expand(-1, 3, -1, -1)] == -1.0).all())  # background -1 everywhere
    depth = store.read("crop/depth", 0, 1)[0].astype(np.float32)
    face = depth > 0  # toy faces span [600, 670] mm of the [580, 680] range
    expected = (depth[face] - 580.0) / 100.0 * 2 - 1
    assert np.abs(y[0, 3].numpy()[face] - expected).max() < 2e-3  # float16 storage
    assert train.measured.shape == train.face.shape and bool((train.measured <= train.face).all())
    half = load_pairs(store, TRAIN, size=32)
    assert half.drawing.shape == (8, 1, 32, 32)


@pytest.mark.slow
def test_node_trains_beats_baseline_and_exports(tmp_path):
    store_path = tmp_path / "s.zarr"
    write_toy_store(store_path, n_train=32, n_eval=8, size=64)
    cls = get("model.pix2pix")
    params = cls.Params(size=64, ngf=8, ndf=8, epochs=5, decay_epochs=3, lr=1e-3, lpips=False, device="cpu",
                        eval_every_steps=32, eval_every_s=0)  # 32 frames, batch 1: at each epoch's end (never by time: a loaded machine)
    events = []
    ctx = NodeContext(node_id="train", kind="model.pix2pix", store_path=str(store_path),
                      reporter=lambda name, data: events.append((name, data)))
    node = cls(params, ctx)

    async def run():
        await node.setup()
        for start in range(0, 40, 8):
            assert await node.process("pairs", ChunkRef("crop", start, start + 8)) == []
        out = await node.finish()
        await node.close()
        return out

    out = asyncio.run(run())
    assert [o.port for o in out] == ["model"]
    epochs = [d for n, d in events if n == "train.epoch"]
    steps = [d for n, d in events if n == "train.step"]
    assert [e["epoch"] for e in epochs] == list(range(1, 9)) and epochs[-1]["epochs"] == 8
    assert [e["step"] for e in epochs] == list(range(32, 257, 32)) and {e["steps"] for e in epochs} == {256}
    assert steps and {"epoch", "epochs", "step", "steps", "losses"} <= set(steps[-1])
    assert steps[-1]["steps"] == 32 and "g_l1" in steps[-1]["losses"]
    final = epochs[-1]
    assert final["eval"]["depth_mae_mm"] < final["baseline"]["depth_mae_mm"]
    assert final["eval"]["face_psnr"] > final["baseline"]["face_psnr"]
    grid = cv2.imread(final["preview"])
    assert grid.shape == (4 * 64, 5 * 64, 3)
    # the export: TorchScript with the mask inside, ONNX equal to it, metadata to go back to mm
    exported = load_exported(out[0].item["path"])
    meta = json.loads((tmp_path / "s.zarr.model" / "export" / "generator.json").read_text())
    assert meta["d0_mm"] == 600.0 and meta["face_depth_mm"] == 80.0 and meta["size"] == 64
    assert exported.meta["epochs"] == 8
    data = load_pairs(load_store(store_path), EVAL, 64)
    x, _ = data.batch([0, 1])
    ts = exported(x.numpy())
    onnx = onnx_session(tmp_path / "s.zarr.model" / "export").run(None, {"drawing": x.numpy()})[0]
    assert np.abs(ts - onnx).max() < 1e-4
    bg = ts[:, 3] <= -0.995
    assert bg.any() and np.all(ts[:, :3][np.repeat(bg[:, None], 3, 1)] == -1.0)
    # `facesynth model eval` on the export agrees that it beats the baseline
    from facesynth.model.evaluate_exported import evaluate_exported
    res = evaluate_exported(out[0].item["path"], store_path, lpips=False)
    assert res["model_metrics"]["depth_mae_mm"] < res["baseline"]["depth_mae_mm"]
    assert res["model_metrics"]["face_psnr"] > res["baseline"]["face_psnr"] and res["generator_ms"] > 0


def load_store(path):
    from facesynth.store.frame_store import FrameStore
    return FrameStore.open(path, mode="r")


def _cfg(**kw):  # 8 frames, batch 4: evaluated and saved at each epoch's end (every 2 steps)
    return TrainConfig(size=64, ngf=8, ndf=8, epochs=2, decay_epochs=1, batch_size=4, lpips=False,
                       device="cpu", eval_every_steps=2, eval_every_s=0, checkpoint_every_s=0, **kw)


def test_interrupted_run_resumes_to_the_same_result(tmp_path):
    store = write_toy_store(tmp_path / "s.zarr", n_train=8, n_eval=2, size=64)
    train, ev = load_pairs(store, TRAIN), load_pairs(store, EVAL)

    full = Trainer(_cfg(), tmp_path / "full")
    res_full = full.fit(train, ev)
    assert res_full["status"] == "done" and (full.epoch, full.step) == (3, 6)

    calls = {"n": 0}

    def stop_after_three_steps():
        calls["n"] += 1
        return calls["n"] >= 3  # the middle of epoch 2

    first = Trainer(_cfg(), tmp_path / "cut")
    res1 = first.fit(train, ev, should_stop=stop_after_three_steps)
    assert res1["status"] == "stopped" and (first.epoch, first.step) == (1, 3)
    again = Trainer(_cfg(), tmp_path / "cut")
    assert again.resume() and (again.epoch, again.step, again.epoch_step) == (1, 3, 1)
    res2 = again.fit(train, ev)
    assert res2["status"] == "done" and (again.epoch, again.step) == (3, 6)
    assert [h["epoch"] for h in again.history] == [1, 2, 3]
    # the last 2 step files (keep_last's default) besides latest.pt and best.pt
    assert sorted(p.name for p in (tmp_path / "cut" / "checkpoints").glob("*.pt")) == \
        ["best.pt", "latest.pt", "step_00000004.pt", "step_00000006.pt"]
    for k, v in full.G.state_dict().items():
        assert torch.allclose(v.float(), again.G.state_dict()[k].float(), atol=1e-5), k
    # a finished run, rerun, trains no further; another architecture may not continue it
    done = Trainer(_cfg(), tmp_path / "cut")
    assert done.resume()
    rerun = done.fit(train, ev)
    assert rerun["step"] == 6 and rerun["eval"] == res2["eval"]
    with pytest.raises(InputDataError, match="ngf"):
        Trainer(TrainConfig(size=64, ngf=16, ndf=8, lpips=False, device="cpu"), tmp_path / "cut").resume()


def test_model_cli_export_and_eval(tmp_path, capsys):
    from facesynth.cli import main

    store = write_toy_store(tmp_path / "s.zarr", n_train=4, n_eval=2, size=64)
    tr = Trainer(TrainConfig(size=64, ngf=8, ndf=8, epochs=1, decay_epochs=0, batch_size=4, lpips=False,
                             device="cpu"), tmp_path / "run")
    tr.meta = {"d0_mm": 600.0, "face_depth_mm": 80.0, "near_mm": 20.0}
    tr.fit(load_pairs(store, TRAIN), None)
    assert main(["model", "export", "--checkpoint", str(tmp_path / "run" / "checkpoints"),
                 "--out", str(tmp_path / "exp")]) == 0
    assert json.loads(capsys.readouterr().out)["size"] == 64
    assert {p.name for p in (tmp_path / "exp").iterdir()} == {"generator.pt", "generator.ts.pt", "generator.onnx",
                                                              "generator.json"}
    assert main(["model", "eval", "--model", str(tmp_path / "exp"), "--store", str(tmp_path / "s.zarr"),
                 "--no-lpips", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["frames"] == 2 and set(res["model_metrics"]) >= {"depth_mae_mm", "face_psnr", "face_ssim"}
    assert main(["model", "eval", "--model", str(tmp_path / "nothing"), "--store", str(tmp_path / "s.zarr")]) == 1
    assert "no exported model" in capsys.readouterr().err
