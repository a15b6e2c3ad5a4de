"""What `graph run` prints for a person (runtime/console_text.py, runtime/console.py), checked on
hand-written records and on the recorded run logs of tests/tui: the lines read as the issue asks,
no Python or numpy repr, no control codes where they should not be, text from files escaped."""
from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

from facesynth.runtime import console_text as ct
from facesynth.runtime.console import BarsConsole, ConsoleProgress, JsonConsole, training
from facesynth.tui.state import RunState

RUNLOGS = Path(__file__).resolve().parents[1] / "tui" / "runlogs"
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # anything but \t and \n
REPRS = re.compile(r"np\.|numpy\.|\{'|PydanticUndefined|float64|\w+\(\w+=")

EPOCH = {"type": "event", "name": "train.epoch", "node": "train", "replica": 0, "epoch": 5, "epochs": 17,
         "eval": {"frames": 40, "depth_mae_mm": 2.3456, "face_psnr": 24.91, "face_ssim": 0.87012,
                  "face_lpips": 0.0571, "depth_roughness_ratio": 0.31, "crop_psnr": 20.1, "crop_ssim": 0.8},
         "baseline": {"frames": 40, "depth_mae_mm": 5.3312, "face_psnr": 21.4, "face_ssim": 0.72449,
                      "face_lpips": 0.17251, "depth_roughness_ratio": 0.28},
         "preview": "p.png", "checkpoint": "c.pt", "epoch_s": 6.512, "steps_per_s": 9.2, "t": 100.0}


def test_epoch_line_reads_as_the_issue_shows():
    assert ct.epoch_line(EPOCH) == ("epoch 5/17  depth 2.35 mm  face SSIM 0.870  LPIPS 0.057   "
                                    "mean image 5.33 / 0.724 / 0.173   6.5 s")


def test_epoch_line_with_steps_and_with_fields_missing():
    with_steps = {**EPOCH, "step": 300, "steps": 1020}  # evaluation every N steps (issue 21)
    assert ct.epoch_line(with_steps).startswith("epoch 5/17  step 300/1020  depth 2.35 mm")
    no_lpips = {**EPOCH, "eval": {"depth_mae_mm": 2.0, "face_ssim": 0.9}, "baseline": {}}
    assert ct.epoch_line(no_lpips) == "epoch 5/17  depth 2.00 mm  face SSIM 0.900   6.5 s"
    assert ct.epoch_line({"name": "train.epoch", "epoch": 1}) == "epoch 1  (no eval frames)"


def test_live_stats_line_has_no_numpy_reprs():
    rec = {"type": "event", "name": "live.stats", "node": "viewer", "fps": np.float64(89.64),
           "latency_ms": {"min": np.float64(7.1), "p50": np.float64(11.24), "p99": 18.0},
           "generator_ms": np.float64(4.93), "frames": 1200, "drops": 0, "clients": 1}
    line = ct.live_stats_line(rec)
    assert line == "viewer  89.6 fps  latency 11.2 / 18.0 ms (p50 / p99)  generator 4.93 ms  frames 1200  drops 0  1 client"


def test_terminal_safe_escapes_what_could_steer_a_terminal():
    hostile = "cam\x1b[2J\x1b]0;owned\x07era\u202eevil\nline\x9b"
    safe = ct.terminal_safe(hostile)
    assert not CONTROL.search(safe) and "\u202e" not in safe and "\n" not in safe
    assert safe == "cam\\x1b[2J\\x1b]0;owned\\x07era\\u202eevil\\nline\\x9b"
    # a node named with escapes in a graph file reaches the screen escaped
    line = ct.stage_text("bad\x1b[31mnode", {"state": "running", "items": 3, "total": 9, "estimated": True,
                                              "rate": 1.5, "remaining_s": 4.0})
    assert line == "bad\\x1b[31mnode 3/~9 1.5/s ~4.0 s left"


def _replay(console, name: str) -> None:
    for line in (RUNLOGS / f"{name}.jsonl").read_text().splitlines():
        console(json.loads(line))


@pytest.mark.parametrize("name", ["normal", "training", "failing", "live"])
def test_plain_lines_from_recorded_runs(name):
    out = io.StringIO()
    console = ConsoleProgress(out, period_s=0.0)
    _replay(console, name)
    text = out.getvalue()
    assert text and not CONTROL.search(text) and not REPRS.search(text), text
    epochs = [json.loads(x) for x in (RUNLOGS / f"{name}.jsonl").read_text().splitlines() if '"train.epoch"' in x]
    assert len([x for x in text.splitlines() if x.startswith("epoch ")]) == len(epochs)
    if name == "training":  # the progress line says where training is and how long is left
        assert re.search(r"training step \d+/90 ~[\d.]+ s left", text), text
    if name == "failing":
        assert "error in crop on raw:96-104: ValueError: nose depth 0 mm outside the sensor range (restart 1)" in text
        assert text.rstrip().endswith("run failed after 5.0 s")


def test_json_lines_are_strict_json():
    out = io.StringIO()
    console = JsonConsole(out, period_s=0.0)
    _replay(console, "training")
    console({"type": "event", "name": "train.epoch", "node": "t", "epoch": 1, "eval": {"x": float("nan")}})
    lines = out.getvalue().splitlines()
    objs = [json.loads(x) for x in lines]  # strict: NaN would not parse with parse_constant raising
    for x in lines:
        json.loads(x, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert {o["type"] for o in objs} >= {"event", "progress"}
    assert objs[-1]["eval"]["x"] is None
    assert any(o.get("training", {}) and o["training"]["steps"] == 90 for o in objs if o["type"] == "progress")


def test_bars_on_a_terminal_show_stages_training_and_epoch_lines():
    from rich.console import Console

    term = io.StringIO()
    console = BarsConsole(rich_console=Console(file=term, force_terminal=True, width=120, highlight=False,
                                               markup=False))
    _replay(console, "training")
    console.close()
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", term.getvalue())  # what the terminal shows
    assert "━" in screen
    assert re.search(r"training\s+━+\s+step 90/90", screen), screen[-2000:]
    assert "epoch 1/3" in screen and "epoch 2/3" in screen
    assert not REPRS.search(screen)


def test_training_position_over_the_whole_run_and_time_left():
    state = RunState()
    state.apply({"type": "event", "name": "train.step", "node": "train", "epoch": 1, "epochs": 17, "step": 10,
                 "steps": 60, "global_step": 10, "t": 100.0})
    state.apply({"type": "event", "name": "train.step", "node": "train", "epoch": 1, "epochs": 17, "step": 30,
                 "steps": 60, "global_step": 30, "t": 110.0})
    t = training(state)  # 20 steps in 10 s: 990 steps left take 495 s
    assert t == {"step": 30, "steps": 1020, "remaining_s": pytest.approx(495.0)}
    state.apply({"type": "event", "name": "train.epoch", "node": "train", "epoch": 1, "epochs": 17, "t": 130.0})
    state.apply({"type": "event", "name": "train.step", "node": "train", "epoch": 2, "epochs": 17, "step": 5,
                 "steps": 60, "global_step": 65, "t": 132.0})
    assert training(state)["step"] == 65 and training(state)["steps"] == 1020


SUMMARY = {"status": "ok", "store": "data_store/capture_to_model.zarr", "elapsed_s": 161.4,
           "run_log": "data_store/capture_to_model.zarr.runs/1.jsonl", "warning_count": 0, "warning_text": "",
           "model": {"dir": "data_store/capture_to_model.zarr.model/export", "size": 128, "ngf": 16, "steps": 1020,
                     "files": ["generator.json", "generator.onnx", "generator.pt"],
                     "eval": EPOCH["eval"], "baseline": EPOCH["baseline"]},
           "next": ct.next_commands("graphs/capture_to_model.yaml", "data_store/capture_to_model.zarr.model/export",
                                    "data_store/capture_to_model.zarr", ".venv/bin/facesynth")}


def test_summary_says_what_was_made_how_good_and_what_next():
    lines = ct.summary_lines(SUMMARY)
    text = "\n".join(lines)
    assert lines[0] == "run ok in 2m41s"
    assert "    model      data_store/capture_to_model.zarr.model/export  (128 px, ngf 16, 1020 steps)" in lines
    assert "held-out metrics of the export (40 eval frames):" in lines
    assert re.search(r"depth MAE\s+2\.35 mm\s+5\.33 mm", text)
    assert re.search(r"face SSIM\s+0\.870\s+0\.724", text) and re.search(r"face LPIPS\s+0\.057\s+0\.173", text)
    assert "warnings: 0" in lines
    assert "    .venv/bin/facesynth graph run graphs/live_demo.yaml --local" in lines
    assert ("    .venv/bin/facesynth graph run graphs/live_inference.yaml --local --set "
            "nodes.generator.params.model=data_store/capture_to_model.zarr.model/export") in lines
    assert not REPRS.search(text) and not CONTROL.search(text)


def test_next_commands_for_another_store_carry_its_paths():
    nexts = ct.next_commands("graphs/capture_to_model.yaml", "/tmp/x y/s.zarr.model/export", "/tmp/x y/s.zarr")
    demo = nexts[0]["command"]
    assert demo.startswith("facesynth graph run graphs/live_demo.yaml --local --set ")
    assert "'nodes.generator.params.model=/tmp/x y/s.zarr.model/export'" in demo  # quoted for a shell
    assert "'nodes.track.params.store=/tmp/x y/s.zarr'" in demo


def test_nodes_command_prints_defaults_as_graph_files_write_them(capsys):
    from facesynth.cli import main

    assert main(["nodes"]) == 0
    out = capsys.readouterr().out
    assert "param frames = {train: 1500, eval: 250}" in out
    assert "(required)" in out
    assert not REPRS.search(out), REPRS.search(out)
    assert not CONTROL.search(out)
