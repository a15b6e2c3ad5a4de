"""Issue 14 acceptance: `facesynth store check` finds a deleted chunk, a corrupt chunk and a corrupt
progress file, and the rerun it suggests repairs them (the store checks clean and equals an undamaged run)."""
import json
import shlex
import shutil

import numpy as np
import zarr
from store_helpers import bench_graph, chunk_path, pipeline_graph

from facesynth.cli import main


def _arrays(path):
    root = zarr.open_group(str(path), mode="r")
    out = {}
    for name in ("raw/color", "raw/depth", "raw/ok", "raw/split", "landmarks/points", "landmarks/ok",
                 "crop/color", "crop/depth", "crop/mask", "crop/ok", "fill/depth", "fill/ok"):
        out[name] = np.asarray(root[name][:])
    return out


def _run(argv, capsys):
    rc = main(argv)
    capsys.readouterr()
    return rc


def _check(path, capsys, *extra):
    rc = main(["store", "check", str(path), "--json", *extra])
    return rc, json.loads(capsys.readouterr().out)


def test_store_check_finds_damage_and_the_suggested_rerun_repairs_it(tmp_path, capsys):
    store = tmp_path / "store.zarr"
    graph = pipeline_graph(tmp_path, store)
    assert _run(["graph", "run", graph, "--local", "--quiet"], capsys) == 0
    reference = _arrays(store)
    assert reference["fill/ok"].all() and reference["fill/depth"][reference["fill/ok"]].max() > 0
    rc, report = _check(store, capsys)
    assert rc == 0 and report["clean"] and report["chunks_checked"] > 40

    chunk_path(store, "fill/depth", 1, 3).unlink()                               # deleted chunk
    chunk_path(store, "crop/color", 2, 4).write_bytes(b"\x28\xb5\x2f\xfd\x00zz")  # corrupt chunk
    prog = store / "_progress" / "landmarks.jsonl"                               # corrupt progress file
    lines = prog.read_bytes().split(b"\n")
    lines[1] = b"\xff\xfe" + lines[1][5:]
    prog.write_bytes(b"\n".join(lines))

    rc, dry = _check(store, capsys, "--dry-run")
    found = {(p["kind"], p.get("array"), p.get("chunk")) for p in dry["problems"]}
    assert rc == 1 and found == {("missing_chunk", "fill/depth", 1), ("corrupt_chunk", "crop/color", 2),
                                 ("corrupt_progress", None, None)}
    bad_progress = [p for p in dry["problems"] if p["kind"] == "corrupt_progress"][0]
    assert bad_progress["lines"] == [2] and bad_progress["file"].endswith("landmarks.jsonl")
    missing = [p for p in dry["problems"] if p["kind"] == "missing_chunk"][0]
    assert missing["frames"] == [4, 8]
    assert not dry["repaired"] and not chunk_path(store, "fill/depth", 1, 3).exists()

    rc, report = _check(store, capsys)
    assert rc == 1 and report["repaired"]
    assert "fill" in report["cleared"] and "crop" in report["cleared"]
    command = shlex.split(report["repair_command"])
    assert command[:4] == ["facesynth", "graph", "run", graph]
    assert _run(command[1:] + ["--local", "--quiet"], capsys) == 0

    rc, after = _check(store, capsys)
    assert rc == 0 and after["clean"], after["problems"]
    repaired = _arrays(store)
    for name, want in reference.items():
        np.testing.assert_array_equal(repaired[name], want, err_msg=name)


def test_store_check_sees_a_missing_chunk_through_the_progress_log(tmp_path, capsys):
    """Groups without ok flags (bench): the progress log says which chunks must exist."""
    store = tmp_path / "store.zarr"
    graph = bench_graph(tmp_path, store)
    assert _run(["graph", "run", graph, "--local", "--quiet"], capsys) == 0
    want = np.asarray(zarr.open_group(str(store), mode="r")["blur/frames"][:])
    chunk_path(store, "blur/frames", 3, 3).unlink()
    rc, report = _check(store, capsys)
    assert rc == 1 and [(p["kind"], p["array"], p["frames"]) for p in report["problems"]] == [
        ("missing_chunk", "blur/frames", [12, 16])]
    assert report["cleared"] == {"blur": ["bench:12-16"]}
    assert _run(["graph", "run", graph, "--local", "--quiet"], capsys) == 0
    assert _check(store, capsys)[0] == 0
    np.testing.assert_array_equal(np.asarray(zarr.open_group(str(store), mode="r")["blur/frames"][:]), want)


def test_damaged_array_metadata_is_named_and_repaired_by_the_rerun(tmp_path, capsys):
    store = tmp_path / "store.zarr"
    graph = bench_graph(tmp_path, store)
    assert _run(["graph", "run", graph, "--local", "--quiet"], capsys) == 0
    want = np.asarray(zarr.open_group(str(store), mode="r")["blur/frames"][:])
    (store / "blur" / "frames" / "zarr.json").write_text('{"zarr_format": 3, "node_t')
    assert main(["store", "info", str(store)]) == 1
    assert "metadata (zarr.json) of 'blur/frames' is damaged" in capsys.readouterr().err
    rc, report = _check(store, capsys)
    assert rc == 1 and [(p["kind"], p["array"]) for p in report["problems"]] == [
        ("corrupt_array_metadata", "blur/frames")]
    assert report["cleared"] == {"blur": ["bench:0-4", "bench:12-16", "bench:4-8", "bench:8-12"]}
    assert _run(shlex.split(report["repair_command"])[1:] + ["--local", "--quiet"], capsys) == 0
    assert _check(store, capsys)[0] == 0
    np.testing.assert_array_equal(np.asarray(zarr.open_group(str(store), mode="r")["blur/frames"][:]), want)


def test_a_damaged_marker_is_rewritten_with_the_id_the_zarr_root_holds(tmp_path, capsys):
    """The id is in the marker and in the root's attributes: a damaged marker is restored with it, so
    the store keeps its identity; a store whose root holds no id (made before ids were copied there)
    gets a new one, in both places."""
    store = tmp_path / "store.zarr"
    graph = bench_graph(tmp_path, store)
    assert _run(["graph", "run", graph, "--local", "--quiet"], capsys) == 0
    old_id = json.loads((store / "facesynth_store.json").read_text())["store_id"]
    (store / "facesynth_store.json").write_text("{torn")
    assert main(["graph", "validate", graph]) == 2  # not recognised as a store: nothing may write there
    capsys.readouterr()
    rc, report = _check(store, capsys)
    assert rc == 1 and [p["kind"] for p in report["problems"]] == ["corrupt_marker"]
    assert json.loads((store / "facesynth_store.json").read_text())["store_id"] == old_id
    assert _run(["graph", "run", graph, "--local", "--quiet"], capsys) == 0
    assert _check(store, capsys)[0] == 0

    root = json.loads((store / "zarr.json").read_text())
    del root["attributes"]["store_id"]
    (store / "zarr.json").write_text(json.dumps(root))
    (store / "facesynth_store.json").write_text("{torn")
    rc, report = _check(store, capsys)
    assert rc == 1 and [p["kind"] for p in report["problems"]] == ["corrupt_marker"]
    new_id = json.loads((store / "facesynth_store.json").read_text())["store_id"]
    assert new_id != old_id
    assert json.loads((store / "zarr.json").read_text())["attributes"]["store_id"] == new_id
    assert _run(["graph", "run", graph, "--local", "--quiet"], capsys) == 0
    assert _check(store, capsys)[0] == 0


def test_store_check_changes_nothing_while_a_run_holds_the_store(tmp_path, capsys):
    from facesynth.store.lock import StoreLock

    store = tmp_path / "store.zarr"
    assert _run(["graph", "run", bench_graph(tmp_path, store), "--local", "--quiet"], capsys) == 0
    chunk_path(store, "blur/frames", 0, 3).write_bytes(b"bad")
    before = (store / "_progress" / "blur.jsonl").read_bytes()
    with StoreLock(store, "busy-run"):
        rc, report = _check(store, capsys)
    assert rc == 1 and not report["repaired"] and any("busy-run" in n for n in report["notes"])
    assert (store / "_progress" / "blur.jsonl").read_bytes() == before
    assert chunk_path(store, "blur/frames", 0, 3).read_bytes() == b"bad"


def test_store_check_of_a_store_with_a_corrupt_root_says_so(tmp_path, capsys):
    store = tmp_path / "store.zarr"
    assert _run(["graph", "run", bench_graph(tmp_path, store), "--local", "--quiet"], capsys) == 0
    (store / "zarr.json").write_text("{")
    rc = main(["store", "check", str(store)])
    out = capsys.readouterr()
    assert rc == 1 and "zarr.json is damaged" in out.out and "Traceback" not in out.err + out.out
    shutil.rmtree(store)
