"""benchmarks/real_faces.py's path at a small size on real frames (issue 21): the TrueDepth sequence
through capture.folder -> landmarks -> crop -> fill -> model.pix2pix (both recipes, a few steps) ->
export -> model eval, and the live path on the held-out frames, which must reproduce the held-out
evaluation when it is fed the captured landmarks unchanged."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import zarr

from facesynth.depth.testdata_realdepth import realdata_root

SEQUENCE = realdata_root() / "truedepth_face_sequence"
BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "real_faces.py"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not SEQUENCE.exists(), reason=f"realdata not present ({SEQUENCE})")]


def _load_bench():
    spec = importlib.util.spec_from_file_location("real_faces_bench", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_benchmark_path_on_a_few_real_frames(tmp_path):
    bench = _load_bench()
    report = bench.main(["--sets", "truedepth", "--steps", "4", "--evals", "2", "--frames", "8", "--threads", "1",
                         "--no-lpips", "--samples", "2", "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out")])
    entry = report["sets"]["truedepth"]
    store = Path(entry["store"])
    root = zarr.open_group(str(store), mode="r")  # counted with zarr directly, not through facesynth
    usable = np.asarray(root["crop/ok"][:], bool) & np.asarray(root["fill/ok"][:], bool)
    split = np.asarray(root["raw/split"][:])
    want = (int((usable & (split == 0)).sum()), int((usable & (split == 1)).sum()))
    assert want[0] == 8 and want[1] >= 1
    attrs = json.loads((store / "zarr.json").read_text())["attributes"]
    assert entry["depth_source"] == attrs["depth_source"]
    for name in ("default", "original"):
        res = entry["recipes"][name]
        assert (res["train_frames"], res["eval_frames"]) == want and res["steps"] == 4
        assert [c["step"] for c in res["curve"]] == [2, 4]
        assert res["eval"]["frames"] == want[1] and set(res["beats_baseline"]) >= {"depth_mae_mm", "face_ssim"}
        # the export that `model eval` measured is the one the trainer evaluated last (weights alike)
        assert res["eval"]["face_ssim"] == pytest.approx(res["curve"][-1]["face_ssim"], abs=1e-4)
        assert res["params"]["steps"] + res["params"]["decay_steps"] == 4
    assert entry["recipes"]["original"]["params"]["recipe"] == "original"
    png = cv2.imread(report["png"])
    assert png is not None and png.shape[0] > 300 and png.shape[1] > 600

    # the live path (live.condition -> live.generator) on the captured landmarks draws what training drew
    from real_faces_parts import live_reenactment

    live = live_reenactment(entry["recipes"]["default"]["export"], store, None)
    assert live["frames"] == want[1]
    assert live["as_captured"]["face_ssim"] == pytest.approx(entry["recipes"]["default"]["eval"]["face_ssim"], abs=1e-4)
    assert 0.0 < live["aligned"]["face_ssim"] < 1.0
