"""The main job's output into a pipe, as a script or a log file gets it: plain lines, no control
codes, no Python or numpy reprs, one line per epoch, the summary at the end; `--json` gives
JSON lines only, the summary last. The real graph file, shrunk with --set (a few small frames,
a tiny model, 2 epochs), run in-process (`--local`): the Ray path is tests/tui/test_tmux.py's.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
GRAPH = REPO / "graphs" / "capture_to_model.yaml"
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
REPRS = re.compile(r"np\.|numpy\.|\{'|PydanticUndefined|float64")
SMALL = {"capture.synthetic": {"frames": "{train: 40, eval: 8}", "width": "320", "height": "240"},
         "model.pix2pix": {"size": "32", "ngf": "4", "ndf": "4", "epochs": "2", "decay_epochs": "0",
                           "batch_size": "8", "threads": "1", "eval_every_steps": "5", "eval_every_s": "0"}}
# 40 frames at batch 8: 5 steps an epoch, so one evaluation per epoch

pytestmark = pytest.mark.slow


def _small_sets() -> list[str]:
    out = []
    for node in yaml.safe_load(GRAPH.read_text())["nodes"]:
        for key, value in SMALL.get(node["kind"], {}).items():
            out += ["--set", f"nodes.{node['id']}.params.{key}={value}"]
    return out


def _run(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "facesynth.cli", "graph", "run", str(GRAPH), "--local",
           "--set", f"store.path={tmp_path}/ctm.zarr", *_small_sets(), *extra]
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)


def test_main_job_into_a_pipe_then_json(tmp_path):
    proc = _run(tmp_path)
    both = proc.stdout + proc.stderr
    assert proc.returncode == 0, both[-3000:]
    assert not CONTROL.search(both), repr(CONTROL.search(both))
    assert not REPRS.search(both), REPRS.search(both)
    err, out = proc.stderr.splitlines(), proc.stdout.splitlines()
    epochs = [x for x in err if x.startswith("epoch ")]
    assert [x.split()[1] for x in epochs] == ["1/2", "2/2"], err
    assert all(re.match(r"epoch \d/2  step \d+/10  depth [\d.]+ mm  face SSIM [\d.]+  LPIPS [\d.]+   mean image "
                        r"[\d.]+ / [\d.]+ / [\d.]+ ", x) for x in epochs), epochs
    status = [x for x in err if x.startswith("[")]
    assert re.fullmatch(r"\[[\dms. ]+\] camera (\d+)/\1 done \| landmarks (\d+)/\2 done \| crop (\d+)/\3 done \| "
                        r"fill (\d+)/\4 done \| training step (\d+)/\5", status[-1]), status[-1]
    assert out[0].startswith("run ok in ")
    model_dir = f"{tmp_path}/ctm.zarr.model/export"
    assert any(re.fullmatch(rf"    model      {re.escape(model_dir)}  \(32 px, ngf 4, \d+ steps\)", x) for x in out), out
    assert any(re.match(r"\s+depth MAE\s+[\d.]+ mm\s+[\d.]+ mm$", x) for x in out), out
    assert "warnings: 0" in out and "next:" in out
    assert any("graphs/live_demo.yaml --local --set" in x and f"nodes.generator.params.model={model_dir}" in x for x in out)

    again = _run(tmp_path, "--json")  # a rerun: everything is done; scripts get JSON lines only
    assert again.returncode == 0, again.stderr[-3000:]
    lines = [json.loads(x) for x in again.stdout.splitlines()]
    summary = lines[-1]
    assert summary["type"] == "summary" and summary["status"] == "ok"
    first = json.loads((Path(model_dir) / "generator.json").read_text())  # what the export says of itself
    assert summary["model"]["eval"] == first["eval"] and summary["model"]["baseline"] == first["baseline"]
    assert not CONTROL.search(again.stderr)
