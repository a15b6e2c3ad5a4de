"""Issue 13 item 4: --restart deletes only a facesynth store; a store path is new or a store; names are plain."""
import json

import pytest
from store_helpers import bench_graph

from facesynth.cli import main
from facesynth.errors import NotAStoreError
from facesynth.store.run_store import clear_store


def _precious(d):
    d.mkdir(parents=True, exist_ok=True)
    (d / "thesis.tex").write_text("years of work")
    (d / "sub").mkdir(exist_ok=True)
    (d / "sub" / "data.bin").write_bytes(b"\x00\x01")


def _intact(d):
    return (d / "thesis.tex").read_text() == "years of work" and (d / "sub" / "data.bin").read_bytes() == b"\x00\x01"


def test_restart_on_a_directory_that_is_not_a_store_is_refused_and_deletes_nothing(tmp_path, capsys):
    victim = tmp_path / "home"
    _precious(victim)
    graph = bench_graph(tmp_path, tmp_path / "store.zarr")
    rc = main(["graph", "run", graph, "--local", "--quiet", "--restart", "--set", f"store.path={victim}"])
    err = capsys.readouterr().err
    assert rc == 2 and "not a facesynth store" in err and "Traceback" not in err
    assert _intact(victim) and sorted(p.name for p in victim.iterdir()) == ["sub", "thesis.tex"]


def test_clear_store_refuses_a_non_store_even_when_called_directly(tmp_path):
    victim = tmp_path / "data"
    _precious(victim)
    with pytest.raises(NotAStoreError, match="nothing was deleted"):
        clear_store(victim)
    assert _intact(victim)


def test_restart_empties_a_store_and_keeps_what_is_beside_it(tmp_path, capsys):
    store = tmp_path / "store.zarr"
    graph = bench_graph(tmp_path, store)
    assert main(["graph", "run", graph, "--local", "--quiet"]) == 0
    old_id = json.loads((store / "facesynth_store.json").read_text())["store_id"]
    (store / "blur" / "leftover").write_text("x")
    beside = tmp_path / "notes.txt"
    beside.write_text("keep me")
    (store / "my notes.txt").write_text("mine")
    logs_before = set((tmp_path / "store.zarr.runs").iterdir())
    assert main(["graph", "run", graph, "--local", "--quiet", "--restart"]) == 0
    err = capsys.readouterr().err
    # only what facesynth wrote was removed; the user's own files are kept, and named
    assert (store / "blur" / "leftover").read_text() == "x" and (store / "my notes.txt").read_text() == "mine"
    assert "kept 2 other file(s)" in err and str(store / "blur" / "leftover") in err and "my notes.txt" in err
    assert json.loads((store / "facesynth_store.json").read_text())["store_id"] != old_id  # a new store
    assert beside.read_text() == "keep me"
    assert logs_before < set((tmp_path / "store.zarr.runs").iterdir())  # old run logs kept, a new one added


@pytest.mark.parametrize("where", ["file", "dir"])
def test_validate_refuses_a_store_path_that_is_not_new_nor_a_store(tmp_path, capsys, where):
    target = tmp_path / "etc"
    if where == "dir":
        _precious(target)
    else:
        target.write_text("a file")
    graph = bench_graph(tmp_path, target)
    rc = main(["graph", "validate", graph])
    err = capsys.readouterr().err
    line = [ln for ln in err.splitlines() if "store path" in ln][0]
    # bench_graph writes `path:` on line 4, after 6 columns of indentation and "path: "
    assert rc == 2 and line.startswith(f"{graph}:4:") and str(target) in line
    rc = main(["graph", "validate", bench_graph(tmp_path, tmp_path / "fresh.zarr"), "--set", f"store.path={target}"])
    assert rc == 2 and "--set:1:1: store path" in capsys.readouterr().err
    if where == "dir":
        assert _intact(target)


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", "", "x" * 101, "-x y"])
def test_graph_name_must_be_a_plain_name(tmp_path, capsys, name):
    graph = bench_graph(tmp_path, "data_store/{name}.zarr")
    text = open(graph).read().replace("name: storetest", f"name: {json.dumps(name)}")
    open(graph, "w").write(text)
    rc = main(["graph", "validate", graph])
    err = capsys.readouterr().err
    assert rc == 2 and f"{graph}:2:7:" in err and "plain name" in err


def test_plain_names_and_legacy_stores_are_accepted(tmp_path, capsys):
    legacy = tmp_path / "old.zarr"  # a store made before markers: root group with chunk_frames
    legacy.mkdir()
    (legacy / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group",
                                                  "attributes": {"chunk_frames": 4}}))
    graph = bench_graph(tmp_path, legacy)
    text = open(graph).read().replace("name: storetest", "name: capture_to_model.v2-b")
    open(graph, "w").write(text)
    assert main(["graph", "validate", graph]) == 0
    assert main(["graph", "run", graph, "--local", "--quiet"]) == 0
    marker = json.loads((legacy / "facesynth_store.json").read_text())  # adopted, but its old writes
    assert "chunk_files" not in marker  # may have skipped all-fill chunks: no missing-chunk check there
