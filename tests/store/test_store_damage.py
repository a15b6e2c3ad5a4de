"""Issue 14, stores: damaged data is detected on read, named (array, chunk, frames), and not retried."""
import json

import numpy as np
import pytest
from store_helpers import bench_graph, chunk_path

from facesynth.cli import main
from facesynth.errors import RunError, StoreDamaged
from facesynth.runtime.api import run_graph
from facesynth.store.frame_store import FrameStore


def _store(tmp_path):
    st = FrameStore.create(tmp_path / "s.zarr", chunk_frames=4)
    st.ensure_array("fill/depth", 12, (6, 5), np.uint16)
    st.ensure_array("fill/ok", 12, (), bool, fill_value=False)
    depth = np.arange(12 * 30, dtype=np.uint16).reshape(12, 6, 5) + 500
    st.write("fill/depth", 0, depth)
    st.write("fill/ok", 0, np.ones(12, bool))
    return st, depth


def test_a_deleted_chunk_flagged_ok_is_an_error_not_zeros(tmp_path):
    st, depth = _store(tmp_path)
    np.testing.assert_array_equal(st.read("fill/depth"), depth)
    chunk_path(st.path, "fill/depth", 1, 3).unlink()
    with pytest.raises(StoreDamaged) as exc:
        FrameStore.open(st.path, "r").read("fill/depth", 0, 12)
    e = exc.value
    assert (e.array, e.chunk, e.frames) == ("fill/depth", 1, (4, 8))
    assert "'fill/depth' chunk 1 (frames 4-8)" in str(e) and "facesynth store check" in str(e)
    np.testing.assert_array_equal(FrameStore.open(st.path, "r").read("fill/depth", 8, 12), depth[8:])


def test_a_chunk_of_fill_values_is_written_and_reads_fine(tmp_path):
    st = FrameStore.create(tmp_path / "s.zarr", chunk_frames=4)
    st.ensure_array("raw/split", 8, (), np.uint8)  # all train: every value equals the fill value 0
    st.ensure_array("raw/ok", 8, (), bool, fill_value=False)
    st.write("raw/split", 0, np.zeros(8, np.uint8))
    st.write("raw/ok", 0, np.ones(8, bool))
    assert chunk_path(st.path, "raw/split", 1, 1).exists()
    np.testing.assert_array_equal(FrameStore.open(st.path, "r").read("raw/split"), np.zeros(8))


def test_a_corrupt_chunk_names_array_chunk_and_frames(tmp_path):
    st, _ = _store(tmp_path)
    chunk_path(st.path, "fill/depth", 2, 3).write_bytes(b"\x28\xb5\x2f\xfd garbage")
    with pytest.raises(StoreDamaged) as exc:
        FrameStore.open(st.path, "r").read("fill/depth")
    assert (exc.value.array, exc.value.chunk, exc.value.frames) == ("fill/depth", 2, (8, 12))
    assert "does not decode" in str(exc.value)


@pytest.mark.parametrize("damage", [b"{not json", b"\xff\xfe\x00", b"[1, 2]"])
def test_a_corrupt_root_zarr_json_is_a_clear_error_also_in_store_info(tmp_path, capsys, damage):
    st, _ = _store(tmp_path)
    (st.path / "zarr.json").write_bytes(damage)
    rc = main(["store", "info", str(st.path)])
    err = capsys.readouterr().err
    assert rc == 1 and "root metadata" in err and "zarr.json is damaged" in err and "Traceback" not in err
    with pytest.raises(StoreDamaged):
        FrameStore.open(st.path, "a")


def test_store_info_survives_a_corrupt_progress_file(tmp_path, capsys):
    st, _ = _store(tmp_path)
    (st.path / "_progress").mkdir()
    (st.path / "_progress" / "fill.jsonl").write_bytes(b'{"key":"crop:0-4","outputs":[]}\n\xff\xd8garbage\x00\n')
    assert main(["store", "info", str(st.path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["progress_chunks"] == {"fill": 1}


def test_store_damage_is_not_retried_by_the_runtime(tmp_path):
    store = tmp_path / "store.zarr"
    graph = bench_graph(tmp_path, store, max_restarts=3)
    assert run_graph(graph, backend="local").status == "ok"
    chunk_path(store, "bench/frames", 1, 3).write_bytes(b"garbage")
    progress = store / "_progress" / "blur.jsonl"  # make blur read chunk 1 again
    progress.write_text("".join(ln + "\n" for ln in progress.read_text().splitlines() if '"src:4-8"' not in ln
                                and '"bench:4-8"' not in ln))
    records = []
    with pytest.raises(RunError) as exc:
        run_graph(graph, backend="local", on_record=records.append)
    errors = [r for r in records if r.get("type") == "error"]
    assert len(errors) == 1 and errors[0]["fatal"]  # no restart for bytes that stay bad
    assert "StoreDamaged" in exc.value.cause and "'bench/frames' chunk 1 (frames 4-8)" in exc.value.cause
