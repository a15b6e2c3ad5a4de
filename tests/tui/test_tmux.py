"""Tried as a person would: `graph run --tui` in a real terminal (tmux), panes captured over time.

Slow: starts the CLI in tmux (tests/tui/tmux_capture.sh). The capture_to_model run also starts
Ray; it is shrunk (few small frames, a tiny model, 2 epochs) through --set overrides found from
its node kinds, and more `graph run` arguments can be given in FACESYNTH_TUI_GRAPH_ARGS.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("tmux_capture.sh")

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed (apt-get install -y tmux)")]

ROW = re.compile(r"│ (\S+)\s+(waiting|running|finishing|done|failed)\s+(\d+)\s+(\d+)(?:/~?(\d+))?")


def capture(tmp_path: Path, graph: str, *args: str, max_s: int = 300, cols: int = 100, rows: int = 30,
            mode: str = "--tui") -> tuple[list[str], str, str]:
    out = tmp_path / "cap"
    env = {**os.environ, "COLS": str(cols), "ROWS": str(rows), "INTERVAL": "0.4", "MAX_S": str(max_s), "MODE": mode}
    subprocess.run([str(SCRIPT), str(out), graph, *args], cwd=REPO, env=env, check=True, timeout=max_s + 60)
    panes = [p.read_text() for p in sorted(out.glob("pane_*.txt"))]
    return panes, (out / "final.txt").read_text(), (out / "exit").read_text().strip()


def node_rows(pane: str) -> dict[str, tuple[str, int]]:
    """node id -> (state, items) as the node table shows them."""
    return {m.group(1): (m.group(2), int(m.group(4))) for m in ROW.finditer(pane)}


def check_progress_and_finish(panes: list[str], final: str, code: str, nodes: set[str] | None = None) -> None:
    assert code == "EXIT=0", final
    shown = [node_rows(p) for p in panes if " nodes done " in p]
    assert shown, "the dashboard never appeared:\n" + "\n".join(panes[-3:])
    running = [rows for rows in shown if any(s == "running" for s, _ in rows.values())]
    assert running, "no capture shows a running node"
    last = shown[-1]
    if nodes is not None:
        assert set(last) == nodes
    assert last and all(state == "done" for state, _ in last.values()), last
    assert any(" ok " in p and " nodes done " in p for p in panes)
    # items only grow between captures (nodes progressing)
    for nid in last:
        seq = [rows[nid][1] for rows in shown if nid in rows]
        assert seq == sorted(seq) and seq[-1] > 0, (nid, seq)
    assert "run ok in" in final


def test_passthrough_graph_in_tmux(tmp_path):
    panes, final, code = capture(
        tmp_path, "tests/graphs/passthrough.yaml", "--local", "--restart", "--set", f"store.path={tmp_path}/pt.zarr",
        "--set", "nodes.src.params.frames=128", "--set", "nodes.src.params.height=16",
        "--set", "nodes.src.params.width=16", "--set", "nodes.blur.params.delay_ms=120",
        "--set", "nodes.blur2.params.delay_ms=80", max_s=120)
    check_progress_and_finish(panes, final, code, {"src", "blur", "blur2"})
    done = [node_rows(p) for p in panes if " nodes done " in p][-1]
    assert done["blur2"] == ("done", 16)


SMALL = {"capture.synthetic": {"frames": "{train: 48, eval: 8}", "width": "320", "height": "240"},
         "model.pix2pix": {"ngf": "4", "ndf": "4", "epochs": "2", "decay_epochs": "0", "lpips": "false",
                           "onnx": "false", "size": "64", "eval_every_steps": "12", "eval_every_s": "0"}}
# 48 frames at the graph's batch 4: 12 steps an epoch, so one evaluation per epoch


# the main job's width at 128 px: 24 steps of ~0.2 s, long enough for the training bar to show a
# rate and the time left in a pane (the 64 px, ngf 4 net trains in about a second)
LONG_ENOUGH = ["--set", "nodes.train.params.size=128", "--set", "nodes.train.params.ngf=16",
               "--set", "nodes.train.params.ndf=16"]


def shrink(graph: Path) -> list[str]:
    """--set overrides that make a graph's synthetic capture and training tiny."""
    out = []
    for node in yaml.safe_load(graph.read_text()).get("nodes", []):
        for key, value in SMALL.get(node.get("kind"), {}).items():
            out += ["--set", f"nodes.{node['id']}.params.{key}={value}"]
    return out


@pytest.mark.ray
@pytest.mark.skipif(not (REPO / "graphs" / "capture_to_model.yaml").exists(),
                    reason="graphs/capture_to_model.yaml is not written yet")
def test_capture_to_model_in_tmux(tmp_path):
    graph = REPO / "graphs" / "capture_to_model.yaml"
    extra = shrink(graph) + shlex.split(os.environ.get("FACESYNTH_TUI_GRAPH_ARGS", ""))
    panes, final, code = capture(tmp_path, "graphs/capture_to_model.yaml", "--restart",
                                 "--set", f"store.path={tmp_path}/ctm.zarr", *extra, max_s=540)
    check_progress_and_finish(panes, final, code)
    assert any("epoch 2/2" in p for p in panes), "the training panel never showed"


BAR = re.compile(r"^(\S+)\s+[━╸╺]+\s+(.*)$", re.M)


@pytest.mark.ray
def test_main_job_console_in_tmux(tmp_path):
    """The README's main job, as typed (no --tui), in a 120x40 terminal: bars for the stages and for
    training while it runs, one line per epoch, and at the end the summary."""
    graph = REPO / "graphs" / "capture_to_model.yaml"
    panes, final, code = capture(tmp_path, "graphs/capture_to_model.yaml", "--restart",
                                 "--set", f"store.path={tmp_path}/ctm.zarr", *shrink(graph), *LONG_ENOUGH,
                                 max_s=300, cols=120, rows=40, mode="")
    assert code == "EXIT=0", final
    bars = [dict((m.group(1), m.group(2)) for m in BAR.finditer(p)) for p in panes]
    stages = {"camera", "landmarks", "crop", "fill"}
    assert any(stages <= set(b) for b in bars), "no pane shows a bar for every stage:\n" + "\n".join(panes[-3:])
    assert any(re.match(r"\d+/\d+ [\d.]+/s ~[\dms. ]+ left", b.get(n, "")) for b in bars for n in stages), \
        "no stage bar shows items/total, a rate and the time left"
    assert any(re.match(r"step \d+/\d+ ~[\dms. ]+ left", b.get("training", "")) for b in bars), \
        "no training bar with step/steps and the time left"
    epochs = re.findall(r"^epoch (\d)/2  step \d+/24  depth [\d.]+ mm  face SSIM [\d.]+ +mean image [\d.]+ / [\d.]+", final, re.M)
    assert epochs == ["1", "2"], final  # one line per epoch, in the scrollback above the summary
    for text in ("run ok in", "held-out metrics of the export", "depth MAE", "mean image", "warnings: 0", "next:",
                 "graphs/live_demo.yaml", "graphs/live_inference.yaml"):
        assert text in final, (text, final)
    assert not any(x in p for p in panes + [final] for x in ("{'", "np.", "Traceback"))
