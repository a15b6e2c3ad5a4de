"""Issue 13 item 3: one run per store; a second run stops with a clear message; a stale lock is taken over."""
import json
import socket
import subprocess
import sys
import time

import numpy as np

import pytest
from store_helpers import bench_graph

from facesynth.cli import main
from facesynth.errors import RunError, StoreLockedError
from facesynth.nodes.bench import bench_frames
from facesynth.runtime.api import run_graph
from facesynth.store.lock import LOCK, StoreLock


def _lock_by(store, pid, run_id="other-run", host=None):
    store.mkdir(parents=True, exist_ok=True)
    (store / LOCK).write_text(json.dumps({"run_id": run_id, "pid": pid, "host": host or socket.gethostname(),
                                          "started": "2026-01-01T00:00:00Z"}))


def test_a_second_run_is_refused_while_another_holds_the_store(tmp_path, capsys):
    store = tmp_path / "store.zarr"
    graph = bench_graph(tmp_path, store)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _lock_by(store, holder.pid)
        rc = main(["graph", "run", graph, "--local", "--quiet"])
        err = capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    assert rc == 1
    assert "in use by run other-run" in err and f"pid {holder.pid}" in err and "Traceback" not in err
    assert not (store / "bench").exists()  # it wrote nothing
    assert not list((tmp_path / "store.zarr.runs").glob("*.jsonl"))  # not even an empty run log
    assert json.loads((store / LOCK).read_text())["run_id"] == "other-run"  # and left the lock alone


def test_lock_held_in_this_process_refuses_and_names_its_owner(tmp_path):
    store = tmp_path / "store.zarr"
    with StoreLock(store, "first-run"):
        with pytest.raises(StoreLockedError, match="first-run"):
            StoreLock(store, "second-run").acquire()
    assert not (store / LOCK).exists()


def test_a_stale_lock_is_taken_over_with_a_warning(tmp_path, capsys):
    store = tmp_path / "store.zarr"
    graph = bench_graph(tmp_path, store)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _lock_by(store, dead.pid, run_id="crashed-run")
    rc = main(["graph", "run", graph, "--local", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 0
    assert "warning" in err and "taking over the lock" in err and "crashed-run" in err
    assert not (store / LOCK).exists()  # released at the end


def test_a_lock_whose_pid_was_reused_by_a_younger_process_is_stale(tmp_path, capsys):
    store = tmp_path / "store.zarr"
    store.mkdir()
    younger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.2)
        (store / LOCK).write_text(json.dumps({"run_id": "old-run", "pid": younger.pid, "host": socket.gethostname(),
                                              "started_unix": time.time() - 3600}))  # locked an hour before it began
        with StoreLock(store, "mine"):
            assert json.loads((store / LOCK).read_text())["run_id"] == "mine"
        assert "taking over the lock" in capsys.readouterr().err
    finally:
        younger.kill()
        younger.wait()


def test_a_lock_from_another_host_is_not_taken_over(tmp_path):
    store = tmp_path / "store.zarr"
    _lock_by(store, 1, host="some-other-host")
    with pytest.raises(StoreLockedError, match="another host"):
        StoreLock(store, "mine").acquire()


def test_the_lock_is_released_when_a_run_fails_or_is_interrupted(tmp_path):
    store = tmp_path / "store.zarr"
    failing = bench_graph(tmp_path, store, max_restarts=0, blur="fail_once_on: [4]")
    with pytest.raises(RunError):
        run_graph(failing, backend="local")
    assert not (store / LOCK).exists()

    def interrupt(rec):
        if rec.get("type") == "run_start":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_graph(bench_graph(tmp_path, store), backend="local", on_record=interrupt)
    assert not (store / LOCK).exists()
    assert run_graph(bench_graph(tmp_path, store), backend="local").status == "ok"  # the store is usable again


def test_two_real_runs_on_one_store_the_second_is_refused_and_the_first_wins(tmp_path, capsys):
    store = tmp_path / "store.zarr"
    graph = bench_graph(tmp_path, store, blur="delay_ms: 1200")
    first = subprocess.Popen([sys.executable, "-m", "facesynth.cli", "graph", "run", graph, "--local", "--quiet"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (store / LOCK).exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (store / LOCK).exists(), first.communicate()
    rc = main(["graph", "run", graph, "--local", "--quiet", "--set", "nodes.src.params.seed=1"])
    err = capsys.readouterr().err
    assert first.wait(timeout=120) == 0
    assert rc == 1 and f"pid {first.pid}" in err
    frames = np.asarray(__import__("zarr").open_group(str(store), mode="r")["bench/frames"][:])
    np.testing.assert_array_equal(frames, bench_frames(0, 16, 8, 8, 0))  # all seed 0, nothing of seed 1
    assert not np.array_equal(frames, bench_frames(0, 16, 8, 8, 1))


def test_a_store_caught_being_created_is_reported_in_use_not_as_a_foreign_directory(tmp_path, capsys):
    """The moment between a run taking the lock and writing the marker: lock + a bare Zarr root."""
    store = tmp_path / "store.zarr"
    graph = bench_graph(tmp_path, store)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _lock_by(store, holder.pid, run_id="creating-run")
        (store / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group", "attributes": {}}')
        rc = main(["graph", "run", graph, "--local", "--quiet"])
        err = capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    assert rc == 1 and "in use by run creating-run" in err and "not a facesynth store" not in err
    # the creating run died there: the next run takes the lock over and finishes the store
    rc = main(["graph", "run", graph, "--local", "--quiet"])
    assert rc == 0 and "taking over the lock" in capsys.readouterr().err
    assert (store / "facesynth_store.json").exists()


def test_a_foreign_zarr_root_without_a_facesynth_lock_is_still_refused(tmp_path, capsys):
    store = tmp_path / "store.zarr"
    store.mkdir()
    (store / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group", "attributes": {}}')
    rc = main(["graph", "run", bench_graph(tmp_path, store), "--local", "--quiet"])
    assert rc == 2 and "not a facesynth store" in capsys.readouterr().err
    assert sorted(p.name for p in store.iterdir()) == ["zarr.json"]
