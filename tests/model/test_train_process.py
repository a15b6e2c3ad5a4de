"""Training in a child process (model/train_process.py): it uses the threads it was given, its
reports and result reach the run, a stop saves a checkpoint that the rerun resumes, its typed
errors arrive typed, and it never outlives the process that started it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest
import torch
from model_graph_helpers import events, run_end, run_tiny, write_graph

from facesynth.errors import StoreError
from facesynth.model.nodes import Pix2PixParams
from facesynth.model.toy_data import write_toy_store
from facesynth.model.train_process import TrainingProcessError, _raise_child_error, train_in_process

pytestmark = pytest.mark.slow  # each starts a training process (~4 s to import torch there)

CHILD = "facesynth.model.train_process"


def _children_training() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if CHILD in " ".join(p.cmdline())]


def _graph(tmp_path: Path, epochs: int, threads: int) -> Path:
    store = tmp_path / "s.zarr"
    if not store.exists():
        write_toy_store(store, n_train=12, n_eval=4, size=32, seed=0, chunk_frames=4)
    g = write_graph(tmp_path, store, epochs=epochs, eval_every=3)  # 12 frames, batch 4: at each epoch's end
    g.write_text(g.read_text().replace("threads: 1", f"threads: {threads}"))
    return g


def test_training_runs_in_a_child_with_the_threads_asked_for(tmp_path):
    status, rec = run_tiny(_graph(tmp_path, epochs=2, threads=2))
    assert status == "ok", status
    start = events(rec, "train.start")[0]
    assert start["threads"] == 2 and start["train_frames"] == 12 and start["eval_frames"] == 4
    assert [e["epoch"] for e in events(rec, "train.epoch")] == [1, 2]  # reports came through
    assert (tmp_path / "s.zarr.model" / "export" / "generator.pt").is_file()
    assert not _children_training()


def test_threads_0_means_every_core_of_the_machine(tmp_path):
    status, rec = run_tiny(_graph(tmp_path, epochs=1, threads=0))
    assert status == "ok", status
    assert events(rec, "train.start")[0]["threads"] == len(os.sched_getaffinity(0))


def test_ctrl_c_stops_the_child_with_a_checkpoint_and_the_rerun_resumes_it(tmp_path):
    graph = _graph(tmp_path, epochs=30, threads=2)
    ckpts = tmp_path / "s.zarr.model" / "checkpoints"
    # SIGINT's default disposition in the child, as in a terminal: an ignored SIGINT is inherited
    # through exec (an earlier test in the same pytest process may leave it ignored), and Python
    # then never installs its Ctrl-C handler, so the run would not see the Ctrl-C at all
    run = subprocess.Popen([sys.executable, "-m", "facesynth.cli", "graph", "run", str(graph), "--local", "--quiet"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    runs = tmp_path / "s.zarr.runs"

    def past_step_5():  # a kept step file lives only until two newer ones exist; the run log says it too
        if any(int(p.stem.split("_")[1]) >= 6 for p in ckpts.glob("step_*.pt")):
            return True
        for log in runs.glob("*.jsonl"):
            for line in log.read_text().splitlines():
                if '"train.epoch"' in line and json.loads(line).get("step", 0) >= 6:
                    return True
        return False

    while not past_step_5() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    seen = sorted(p.name for p in ckpts.glob("*.pt")) if ckpts.exists() else []
    child = psutil.Process(run.pid).children(recursive=True)
    run.send_signal(signal.SIGINT)  # what Ctrl-C sends (the child ignores it and gets "stop")
    out, err = run.communicate(timeout=120)
    assert run.returncode == 1 and "interrupted" in out + err, (out, err, seen)
    assert child and not [p for p in child if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    stopped = torch.load(ckpts / "latest.pt", weights_only=False)
    assert 2 <= stopped["epoch"] < 30
    status, rec = run_tiny(graph)
    assert status == "ok", status
    start = events(rec, "train.start")[0]
    assert start["resumed"] is True and start["epoch"] == stopped["epoch"]
    assert [e["epoch"] for e in events(rec, "train.epoch")] == list(range(stopped["epoch"] + 1, 31))


def test_a_typed_error_in_the_child_arrives_typed(tmp_path):
    params = Pix2PixParams(size=32, ngf=4, ndf=4, epochs=1, decay_epochs=0, lpips=False, device="cpu", onnx=False)
    with pytest.raises(StoreError, match="no frame store at"):
        train_in_process(str(tmp_path / "absent.zarr"), params, None, tmp_path / "m", lambda *a, **k: None, None, 2)
    with pytest.raises(TrainingProcessError, match="ZeroDivisionError: division by zero"):
        _raise_child_error({"type": "ZeroDivisionError", "message": "division by zero"})


def test_the_child_exits_when_its_parent_is_killed(tmp_path):
    graph = _graph(tmp_path, epochs=200, threads=2)
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from model_graph_helpers import run_tiny
        run_tiny(__import__("pathlib").Path({str(graph)!r}))
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path)
    child = None
    deadline = time.monotonic() + 60
    while child is None and time.monotonic() < deadline:
        kids = [p for p in psutil.Process(parent.pid).children(recursive=True) if CHILD in " ".join(p.cmdline())]
        child = kids[0] if kids else None
        time.sleep(0.2)
    assert child is not None, "no training process started"
    time.sleep(1.0)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    gone, alive = psutil.wait_procs([child], timeout=20)
    assert child in gone and not alive


def test_stop_while_idle_ends_the_forwarding_thread(tmp_path):
    before = {t.name for t in threading.enumerate()}
    status, _ = run_tiny(_graph(tmp_path, epochs=1, threads=2))
    assert status == "ok"
    assert "train-stop" not in {t.name for t in threading.enumerate()} - before
