"""Acceptance: a second process sends OSC and msgpack landmarks (and fuzz) to the live graph;
the RGBD frames received over TCP equal the traced generator's output for those landmarks, and
every bad message is dropped and counted without stopping anything."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
from live_helpers import FrameClient, events, expected_rgbd, export_tiny_model, free_port, landmark_sets

from facesynth.runtime.api import run_graph

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def live_graph(tmp_path: Path, model: Path, osc: int, tcp_in: int, tcp_out: int) -> Path:
    text = f"""\
    version: 1
    name: live_test
    defaults: {{queue: 1, policy: latest, max_restarts: 0}}
    nodes:
      - id: osc
        kind: live.osc_in
        params: {{port: {osc}, size: 64, idle_timeout_s: 2.0, report_every_s: 0.2}}
      - id: net
        kind: live.msgpack_in
        params: {{port: {tcp_in}, size: 64, idle_timeout_s: 2.0, report_every_s: 0.2}}
      - id: generator
        kind: live.generator
        params: {{model: {model}, size: 64, threads: 1}}
        inputs:
          landmarks:
            - {{from: osc/landmarks, policy: latest, queue: 1}}
            - {{from: net/landmarks, policy: latest, queue: 1}}
      - id: out
        kind: live.msgpack_out
        params: {{port: {tcp_out}, points: true, report_every_s: 0.2}}
        inputs:
          rgbd: {{from: generator/rgbd, policy: latest, queue: 1}}
    """
    p = tmp_path / "live_test.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_second_process_osc_and_msgpack_give_generator_frames(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the run log of a store-less graph goes to ./data_store/runs
    model = export_tiny_model(tmp_path / "model")
    sets = landmark_sets(14, seed=3)
    np.save(tmp_path / "sets.npy", sets)
    osc, tcp_in, tcp_out = free_port(socket.SOCK_DGRAM), free_port(), free_port()
    graph = live_graph(tmp_path, model, osc, tcp_in, tcp_out)

    result: dict = {}
    runner = threading.Thread(target=lambda: result.update(r=run_graph(str(graph), backend="local")), daemon=True)
    runner.start()
    client = FrameClient(tcp_out)
    client.start()
    sender = subprocess.Popen([sys.executable, str(HERE / "live_sender.py"), "--osc", str(osc), "--tcp", str(tcp_in),
                               "--sets", str(tmp_path / "sets.npy")], cwd=REPO, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while client.sources() != {"osc", "net"}:
            assert sender.poll() is None and runner.is_alive(), "sender or graph ended during warm-up"
            assert time.monotonic() < deadline, f"no frames from both inputs (got {client.sources()}, {client.error})"
            time.sleep(0.05)
        # a viewer that connects and drops out mid-stream must not disturb anything
        for _ in range(3):
            socket.create_connection(("127.0.0.1", tcp_out)).close()
        out, _ = sender.communicate("go\n", timeout=60)
    finally:
        if sender.poll() is None:
            sender.kill()
    assert sender.returncode == 0
    sent_bad = json.loads(out.strip().splitlines()[-1])
    runner.join(timeout=60)
    client.join(timeout=30)
    assert not runner.is_alive() and "r" in result, "the graph did not end after the inputs went idle"
    assert client.error is None, client.error
    run = result["r"]
    assert run.status == "ok"

    # every frame equals the traced generator's output for the landmarks it was made from
    cache: dict[bytes, tuple] = {}
    by_source: dict[str, list[int]] = {"osc": [], "net": []}
    for f in client.frames:
        idx = int(np.flatnonzero(np.all(np.abs(sets - f["landmarks"]) == 0, axis=(1, 2)))[0])
        by_source[f["source"]].append(idx)
        key = f["landmarks"].tobytes()
        if key not in cache:
            cache[key] = expected_rgbd(model, sets[idx])
        rgb, depth = cache[key]
        assert f["rgb"].shape == (64, 64, 3) and f["depth"].shape == (64, 64)
        np.testing.assert_array_equal(f["rgb"], rgb)
        np.testing.assert_array_equal(f["depth"], depth)
        assert 0 < (f["depth"] > 0).sum() < 64 * 64  # the tiny model leaves real background
        assert f["points"].shape == (int((depth > 0).sum()), 6)
        np.testing.assert_allclose(f["points"][:, 2], depth[depth > 0] * 0.1, rtol=0, atol=1e-3)
        assert f["t_sent"] >= f["t_recv"]
    assert set(by_source["osc"]) <= {0, *range(2, 14, 2)} and set(by_source["net"]) <= {1, *range(3, 14, 2)}
    # the newest set on each input is never lost (latest policy keeps the last item)
    assert 12 in by_source["osc"] and 13 in by_source["net"]

    # bad messages: every one dropped and counted, by input
    finals = {e["node"]: e for e in events(run.run_log, "live.input") if e.get("final")}
    assert finals["osc"]["drops"] == sent_bad["bad_osc"]
    assert finals["net"]["drops"] == sent_bad["bad_tcp"]
    assert {"wrong_address", "wrong_length", "wrong_type", "non_finite", "out_of_range", "oversized",
            "bad_osc"} <= set(finals["osc"]["reasons"])
    assert {"bad_msgpack", "wrong_length", "wrong_type", "wrong_version", "non_finite",
            "oversized"} <= set(finals["net"]["reasons"])
    stats = [e for e in events(run.run_log, "live.stats") if e.get("final")][0]
    assert stats["frames"] >= len(client.frames) > 0
    assert stats["latency_ms"]["min"] > 0 and stats["latency_ms"]["p99"] >= stats["latency_ms"]["p50"]
    assert stats["bad_messages"] == {"osc": sent_bad["bad_osc"], "net": sent_bad["bad_tcp"]}

