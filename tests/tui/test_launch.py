"""`graph run --tui` (run_with_dashboard) and `facesynth dashboard` argument handling."""
from __future__ import annotations

from pathlib import Path

import pytest

from facesynth.cli import build_parser
from facesynth.commands.dashboard import build_source
from facesynth.errors import RunError, UsageError
from facesynth.graph.checks import load_graph
from facesynth.tui.launch import run_with_dashboard
from facesynth.tui.sources import ReplaySource, TailSource

GRAPH = Path(__file__).resolve().parents[1] / "graphs" / "passthrough.yaml"


def test_graph_runs_in_process_while_the_dashboard_watches(tmp_path):
    loaded = load_graph(str(GRAPH), [f"store.path={tmp_path}/pt.zarr", "nodes.src.params.frames=24",
                                     "nodes.src.params.height=16", "nodes.src.params.width=16"])
    result = run_with_dashboard(loaded, backend="local", linger_s=0.05, poll_s=0.05, headless=True)
    assert result.status == "ok"
    assert result.run_log.parent == Path(f"{tmp_path}/pt.zarr.runs")
    assert result.stats["nodes"]["blur2"]["items"] == 3 and result.stats["nodes"]["blur2"]["state"] == "done"


def test_a_failing_run_is_raised_after_the_dashboard_closes(tmp_path):
    loaded = load_graph(str(GRAPH), [f"store.path={tmp_path}/pt.zarr", "nodes.src.params.frames=16",
                                     "nodes.src.params.height=16", "nodes.src.params.width=16",
                                     "nodes.blur.max_restarts=0", "nodes.blur.params.fail_once_on=[8]"])
    with pytest.raises(RunError) as info:
        run_with_dashboard(loaded, backend="local", linger_s=0.05, poll_s=0.05, headless=True)
    assert info.value.node == "blur"


def parse(*argv: str):
    return build_parser().parse_args(["dashboard", *argv])


def test_dashboard_arguments_pick_the_source(tmp_path, runlogs):
    assert isinstance(build_source(parse(str(runlogs / "normal.jsonl"))), TailSource)
    src = build_source(parse(str(runlogs / "normal.jsonl"), "--replay", "--speed", "0"))
    assert isinstance(src, ReplaySource) and src.speed == 0
    runs = tmp_path / "s.zarr.runs"
    runs.mkdir()
    (runs / "20260101-000000-000.jsonl").write_text("{}\n")
    assert build_source(parse(str(tmp_path / "s.zarr"))).path == runs / "20260101-000000-000.jsonl"
    with pytest.raises(UsageError, match="give a run log"):
        build_source(parse())
    with pytest.raises(UsageError, match="not both"):
        build_source(parse(str(runlogs / "normal.jsonl"), "--address", "127.0.0.1:6379"))
    with pytest.raises(UsageError, match="no run log found"):
        build_source(parse(str(tmp_path / "missing.zarr")))


def test_sigterm_stops_the_run_cleanly_like_ctrl_c(tmp_path):
    import json
    import os
    import signal
    import threading

    loaded = load_graph(str(GRAPH), [f"store.path={tmp_path}/pt.zarr", "nodes.src.params.frames=400",
                                     "nodes.src.params.height=16", "nodes.src.params.width=16",
                                     "nodes.blur2.params.delay_ms=100"])
    before = signal.getsignal(signal.SIGTERM)
    threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
    with pytest.raises(KeyboardInterrupt):
        run_with_dashboard(loaded, backend="local", linger_s=0.05, poll_s=0.05, headless=True)
    assert signal.getsignal(signal.SIGTERM) is before
    log = next(Path(f"{tmp_path}/pt.zarr.runs").glob("*.jsonl"))
    last = json.loads(log.read_text().splitlines()[-1])
    assert last["type"] == "run_end" and last["status"] == "interrupted"


def test_without_a_terminal_tui_falls_back_to_plain_progress(tmp_path):
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-m", "facesynth.cli", "graph", "run", str(GRAPH), "--local", "--tui",
                           "--set", f"store.path={tmp_path}/pt.zarr", "--set", "nodes.src.params.frames=16",
                           "--set", "nodes.src.params.height=16", "--set", "nodes.src.params.width=16"],
                          cwd=repo, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "--tui needs a terminal" in proc.stderr
    assert "src 2/2 done" in proc.stderr  # plain progress lines, the last one when the run ended
    assert proc.stdout.startswith("run ok in")  # then the summary
