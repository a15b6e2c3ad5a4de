"""The CLI end to end on the in-process backend: run, failure exit code, store info, show, nodes."""
from __future__ import annotations

import json

from facesynth.cli import main


def test_run_then_store_info(tmp_path, make_graph, capsys):
    graph = make_graph(tmp_path, frames=20)
    assert main(["graph", "run", graph, "--local", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["status"] == "ok" and out["store"].endswith("store.zarr")
    assert main(["store", "info", out["store"], "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["arrays"]["blur2/frames"]["shape"] == [20, 16, 16]
    assert info["progress_chunks"] == {"blur": 3, "blur2": 3, "src": 3}
    assert main(["store", "info", out["store"]]) == 0
    text = capsys.readouterr().out
    assert "blur2/frames" in text and "(20, 16, 16)" in text


def test_failed_run_exits_1_with_node_chunk_and_cause(tmp_path, make_graph, capsys):
    graph = make_graph(tmp_path, blur="fail_once_on: [8]", max_restarts=0)
    assert main(["graph", "run", graph, "--local", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "node 'blur' failed on chunk bench:8-16: RuntimeError: injected failure on chunk bench:8-16" in err


def test_set_override_on_run_and_show(tmp_path, make_graph, capsys):
    graph = make_graph(tmp_path, frames=16)
    assert main(["graph", "run", graph, "--local", "--quiet", "--set", "nodes.src.params.frames=8"]) == 0
    capsys.readouterr()
    assert main(["store", "info", str(tmp_path / "store.zarr"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["arrays"]["bench/frames"]["shape"][0] == 8
    assert main(["graph", "run", graph, "--local", "--set", "nodes.src.params.frames=zero"]) == 2
    assert "--set:1:1: param 'frames' of bench.frames" in capsys.readouterr().err
    assert main(["graph", "show", graph, "--format", "mermaid"]) == 0
    assert "src -->|frames:frames| blur" in capsys.readouterr().out


def test_nodes_lists_kinds_with_params(capsys):
    assert main(["nodes"]) == 0
    text = capsys.readouterr().out
    assert "bench.passthrough:" in text and "param delay_ms = 0.0 [ge 0, le 60000]" in text
