"""Runtime semantics on the in-process backend: backpressure, retries, failure, resume."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from spine_helpers import expected_blur2

from facesynth.errors import RunError
from facesynth.runtime.api import run_graph
from facesynth.runtime.feed import MAX_BATCH, PIPELINE_DEPTH
from facesynth.store.frame_store import FrameStore
from facesynth.store.progress import Progress


def read_out(tmp_path: Path, frames: int) -> np.ndarray:
    return np.asarray(FrameStore.open(tmp_path / "store.zarr", "r").read("blur2/frames", 0, frames))


def test_local_run_produces_expected_frames(tmp_path, make_graph):
    res = run_graph(make_graph(tmp_path, frames=44), backend="local")
    assert res.status == "ok"
    np.testing.assert_array_equal(read_out(tmp_path, 44), expected_blur2(44))
    nodes = res.stats["nodes"]
    assert [nodes[n]["items"] for n in ("src", "blur", "blur2")] == [6, 6, 6]  # 5 full chunks + 1 of 4 frames
    assert all(nodes[n]["state"] == "done" for n in nodes)
    records = [json.loads(line) for line in res.run_log.read_text().splitlines()]
    assert records[0]["type"] == "run_start" and records[-1] == {**records[-1], "type": "run_end", "status": "ok"}
    assert any(r["type"] == "stats" for r in records)


def test_backpressure_bounds_in_flight_items(tmp_path, make_graph):
    bound = 2
    seen: list[dict] = []
    res = run_graph(make_graph(tmp_path, frames=8 * 24, queue=bound, blur="delay_ms: 40"),
                    backend="local", on_record=lambda r: seen.append(r) if r["type"] == "stats" else None)
    edge = res.stats["edges"]["src/frames->blur/frames"]
    assert edge["max_depth"] == bound          # the queue filled up to its bound ...
    assert edge["blocked_s"] > 0.2             # ... and the producer waited there
    assert len(seen) >= 3
    in_hands = PIPELINE_DEPTH * min(MAX_BATCH, bound)  # calls in flight, each a batch of queued items
    for rec in seen:  # never more than the queue + the one the source is routing + the consumer's
        ahead = rec["nodes"]["src"]["items"] - rec["nodes"]["blur"]["items"]
        assert ahead <= bound + 1 + in_hands, rec["nodes"]
        assert rec["edges"]["src/frames->blur/frames"]["depth"] <= bound


def test_failing_chunk_is_retried_on_a_restarted_replica(tmp_path, make_graph):
    res = run_graph(make_graph(tmp_path, blur="fail_once_on: [16]"), backend="local")
    blur = res.stats["nodes"]["blur"]
    assert (blur["errors"], blur["restarts"], blur["items"]) == (1, 1, 6)
    np.testing.assert_array_equal(read_out(tmp_path, 48), expected_blur2(48))
    errors = [json.loads(x) for x in res.run_log.read_text().splitlines() if '"type":"error"' in x]
    assert errors[0]["chunk"] == "bench:16-24" and "injected failure" in errors[0]["error"]


def test_exhausted_restarts_fail_the_run_naming_node_chunk_and_cause(tmp_path, make_graph):
    with pytest.raises(RunError) as ei:
        run_graph(make_graph(tmp_path, blur="fail_once_on: [24]", max_restarts=0), backend="local")
    assert (ei.value.node, ei.value.chunk) == ("blur", "bench:24-32")
    assert "injected failure on chunk bench:24-32" in ei.value.cause
    assert "Traceback" in ei.value.traceback
    end = json.loads((tmp_path / "store.zarr.runs").glob("*.jsonl").__next__().read_text().splitlines()[-1])
    assert end["status"] == "failed"


def test_failed_run_continues_where_it_stopped(tmp_path, make_graph):
    with pytest.raises(RunError):
        run_graph(make_graph(tmp_path, blur="fail_once_on: [24]", max_restarts=0), backend="local")
    done_before = Progress(tmp_path / "store.zarr").load("blur")
    assert 0 < len(done_before) < 6
    res = run_graph(make_graph(tmp_path, blur="fail_once_on: [24]", max_restarts=0), backend="local")
    assert res.stats["nodes"]["blur"]["skipped"] == len(done_before)
    assert res.stats["nodes"]["src"]["items"] == 6
    np.testing.assert_array_equal(read_out(tmp_path, 48), expected_blur2(48))
    assert set(Progress(tmp_path / "store.zarr").load("blur2")) == {f"blur:{s}-{s + 8}" for s in range(0, 48, 8)}


def test_killed_process_resumes_to_the_same_store(tmp_path, make_graph):
    graph = make_graph(tmp_path, frames=8 * 30, blur="delay_ms: 60")
    cmd = [sys.executable, "-m", "facesynth.cli", "graph", "run", graph, "--local", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    progress = Progress(tmp_path / "store.zarr")
    deadline = time.time() + 60
    while time.time() < deadline and len(progress.load("blur2")) < 5:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # no clean-up at all
    proc.wait()
    partial = len(progress.load("blur2"))
    assert 5 <= partial < 30
    res = run_graph(graph, backend="local")
    assert res.stats["nodes"]["blur2"]["skipped"] >= partial
    np.testing.assert_array_equal(read_out(tmp_path, 240), expected_blur2(240))
    # restart from scratch gives the same content
    res2 = run_graph(graph, backend="local", restart=True)
    assert res2.stats["nodes"]["blur2"]["skipped"] == 0
    np.testing.assert_array_equal(read_out(tmp_path, 240), expected_blur2(240))


def test_input_data_errors_are_not_retried():
    """A corrupt input gives the same error on every try: the host marks it not retryable."""
    import asyncio

    from facesynth.errors import InputDataError
    from facesynth.nodes.base import NodeContext
    from facesynth.runtime.host import NodeHost

    class Broken:
        async def process(self, port, item):
            raise InputDataError("recording.mkv: frame 3 is truncated")

    host = NodeHost("bench.passthrough", {}, NodeContext("n", "bench.passthrough"))
    host.node = Broken()
    res = asyncio.run(host.process_batch([("frames", None)]))
    assert res["ok"] is False and res["retryable"] is False and res["results"] == []
    assert res["error"] == "InputDataError: recording.mkv: frame 3 is truncated"
