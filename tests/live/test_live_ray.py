"""The live graph on a real embedded Ray: nodes in actor processes, frames still exact."""
from __future__ import annotations

import textwrap
import threading

import numpy as np
import pytest
from live_helpers import FrameClient, events, expected_rgbd, export_tiny_model, free_port, landmark_sets

from facesynth.runtime.api import run_graph

pytestmark = pytest.mark.ray


def test_live_graph_on_ray_streams_exact_frames(tmp_path, monkeypatch):
    # `block` edges here (the local tests cover `latest`): actors start in seconds on a busy machine,
    # and backpressure makes every landmark set reach the output however long that takes
    pytest.importorskip("ray")
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    monkeypatch.chdir(tmp_path)
    model = export_tiny_model(tmp_path / "model")
    sets = landmark_sets(6, seed=11)
    np.save(tmp_path / "lm.npy", sets)
    port = free_port()
    graph = tmp_path / "live_ray.yaml"
    graph.write_text(textwrap.dedent(f"""\
        version: 1
        name: live_ray
        defaults: {{queue: 2, policy: block}}
        nodes:
          - id: src
            kind: live.landmarks_file
            params: {{npy: {tmp_path / 'lm.npy'}, rate_hz: 30, frames: 60, loop: true}}
          - id: gen
            kind: live.generator
            params: {{model: {model}, threads: 1, warmup: 1}}
            inputs: {{landmarks: src/landmarks}}
          - id: out
            kind: live.msgpack_out
            params: {{port: {port}, report_every_s: 0.5}}
            inputs: {{rgbd: gen/rgbd}}
        """))
    client = FrameClient(port, connect_timeout_s=120)
    client.start()
    result: dict = {}
    runner = threading.Thread(target=lambda: result.update(r=run_graph(str(graph), backend="ray")), daemon=True)
    runner.start()
    runner.join(timeout=240)
    client.join(timeout=30)
    assert "r" in result and result["r"].status == "ok"
    assert client.error is None and len(client.frames) >= 5, (client.error, len(client.frames))
    for f in client.frames:
        idx = (int(f["seq"]) - 1) % len(sets)
        np.testing.assert_array_equal(f["landmarks"], sets[idx])
        rgb, depth = expected_rgbd(model, sets[idx])
        np.testing.assert_array_equal(f["rgb"], rgb)
        np.testing.assert_array_equal(f["depth"], depth)
    final = [e for e in events(result["r"].run_log, "live.stats") if e.get("final")][0]
    assert final["frames"] == 60 and final["skipped"] == 0 and final["frames"] >= len(client.frames)
