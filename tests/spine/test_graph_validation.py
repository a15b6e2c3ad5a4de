"""Every invalid-graph case gives the expected diagnostics: file:line:col, message and hint."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from facesynth.cli import main
from facesynth.errors import GraphError
from facesynth.graph.checks import load_graph

GOOD = """\
version: 1
name: t
store:
  path: {store}
  chunk_frames: 4
nodes:
  - id: src
    kind: bench.frames
    params: {{frames: 16}}
  - id: blur
    kind: bench.passthrough
    inputs: {{frames: src/frames}}
"""


def write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "g.yaml"
    p.write_text(textwrap.dedent(text))
    return str(p)


def problems(tmp_path: Path, text: str, overrides: list[str] | None = None):
    with pytest.raises(GraphError) as ei:
        load_graph(write(tmp_path, text), overrides)
    return ei.value.problems


def test_good_graph_loads(tmp_path):
    g = load_graph(write(tmp_path, GOOD.format(store=tmp_path / "s.zarr")))
    assert [n.id for n in g.spec.nodes] == ["src", "blur"]
    assert g.spec.store.chunk_frames == 4


def test_unknown_kind_suggests_closest(tmp_path):
    text = GOOD.format(store="s.zarr").replace("kind: bench.passthrough", "kind: bench.passthru")
    (p,) = problems(tmp_path, text)
    assert (p.line, p.col) == (11, 11)
    assert "unknown node kind 'bench.passthru'" in p.message
    assert p.hint == "did you mean 'bench.passthrough'?"


def test_unknown_input_port_lists_real_ports(tmp_path):
    text = GOOD.format(store="s.zarr").replace("inputs: {frames: src/frames}", "inputs: {frame: src/frames}")
    ps = problems(tmp_path, text)
    msgs = [p.message for p in ps]
    assert "bench.passthrough has no input port 'frame'" in msgs
    bad = next(p for p in ps if "no input port" in p.message)
    assert (bad.line, bad.col) == (12, 14)
    assert bad.hint == "its input ports: frames"
    assert any("input port 'frames' of bench.passthrough is not connected" in m for m in msgs)


def test_unknown_source_node_and_port(tmp_path):
    text = GOOD.format(store="s.zarr").replace("src/frames}", "scr/frames}")
    (p,) = problems(tmp_path, text)
    assert "unknown node 'scr'" in p.message and p.hint == "did you mean 'src'?"
    text = GOOD.format(store="s.zarr").replace("src/frames}", "src/rgbd}")
    (p,) = problems(tmp_path, text)
    assert p.message == "node 'src' (bench.frames) has no output port 'rgbd'"
    assert p.hint == "its output ports: frames"
    assert (p.line, p.col) == (12, 22)


def test_bad_param_reports_valid_range(tmp_path):
    text = GOOD.format(store="s.zarr").replace("{frames: 16}", "{frames: 0}")
    (p,) = problems(tmp_path, text)
    assert (p.line, p.col) == (9, 22)
    assert "param 'frames' of bench.frames" in p.message
    assert "range 1..10000000" in p.hint


def test_unknown_param_suggests(tmp_path):
    text = GOOD.format(store="s.zarr").replace("{frames: 16}", "{frame: 16}")
    (p,) = problems(tmp_path, text)
    assert p.message == "unknown param 'frame' for bench.frames" and p.hint == "did you mean 'frames'?"
    assert (p.line, p.col) == (9, 14)


def test_cycle_is_reported(tmp_path):
    text = """\
    version: 1
    name: loop
    store:
      path: s.zarr
    nodes:
      - id: a
        kind: bench.passthrough
        inputs: {frames: b/frames}
      - id: b
        kind: bench.passthrough
        inputs: {frames: a/frames}
    """
    ps = problems(tmp_path, text)
    assert len(ps) == 1 and ps[0].message.startswith("cycle: ")
    assert set(ps[0].message[len("cycle: "):].split(" -> ")) == {"a", "b"}


def test_structure_errors_all_at_once(tmp_path):
    text = """\
    version: 2
    name: t
    stor: {}
    defaults: {queue: 0, policy: newest}
    nodes:
      - id: src
        kind: bench.frames
        replicas: 0
      - id: src
        kind: bench.frames
        kind: bench.frames
    """
    ps = problems(tmp_path, text)
    text_all = "\n".join(str(p) for p in ps)
    assert "unknown key 'stor'" in text_all and "did you mean 'store'?" in text_all
    assert "version" in text_all and "queue" in text_all and "policy" in text_all
    assert "replicas must be between 1 and 1024" in text_all
    assert "duplicate node id 'src'" in text_all
    assert "duplicate key 'kind'" in text_all
    assert len(ps) >= 7
    # sorted by position, each with a line
    assert [p.line for p in ps] == sorted(p.line for p in ps)


def test_yaml_syntax_error_has_position(tmp_path):
    (p,) = problems(tmp_path, "version: 1\nname: [unclosed\nnodes: []\n")
    assert p.line == 3 and "YAML syntax" in p.message


def test_overrides_are_validated_like_the_file(tmp_path):
    path = write(tmp_path, GOOD.format(store="s.zarr"))
    g = load_graph(path, ["nodes.src.params.frames=32", "store.chunk_frames=8"])
    assert g.spec.nodes[0].params["frames"] == 32 and g.spec.store.chunk_frames == 8
    with pytest.raises(GraphError) as ei:
        load_graph(path, ["nodes.src.params.frames=-1", "nodes.nope.replicas=2"])
    ps = ei.value.problems
    assert [(p.file, p.line) for p in ps] == [("--set", 1), ("--set", 2)]
    assert "range 1..10000000" in ps[0].hint
    assert ps[1].message == "no node with id 'nope'" and "src, blur" in ps[1].hint


def test_cli_exit_codes_and_output(tmp_path, capsys):
    good = write(tmp_path, GOOD.format(store="s.zarr"))
    assert main(["graph", "validate", good]) == 0
    assert "ok (2 nodes)" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.format(store="s.zarr").replace("bench.frames", "bench.frame"))
    assert main(["graph", "validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:8:11: unknown node kind 'bench.frame'" in err
    assert "hint: did you mean 'bench.frames'?" in err
    assert main(["graph", "validate", str(tmp_path / "missing.yaml")]) == 2
    assert main(["graph", "bogus"]) == 2


def test_shipped_graphs_are_valid():
    root = Path(__file__).resolve().parents[2] / "graphs"
    files = sorted(root.glob("*.yaml"))
    assert files, "graphs/ holds the product's graph files"
    for f in files:
        load_graph(f)
