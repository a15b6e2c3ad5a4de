"""Stores from elsewhere (issue 23): a store is something a user downloads. Decompression bombs,
zarr.json files declaring huge shapes or other chunks, and store files replaced by a link to
/dev/zero, a FIFO or a 20 GB sparse file each get a typed error naming the file and the limit,
never a traceback, in little memory and time (docs/bad_input.md).

The cases that could exhaust memory or block run the real CLI in a child process that reports its
peak RSS (tests/spine/cli_child.py, as the graph-file tests do); the child's CPU seconds are what
is held to the 10 s limit (its wall time is measured too, with a generous bound that catches a
hang: on this shared 2-core machine, at a load of 10, `model eval` spends 15 s of wall time on
3.3 s of CPU before it reads a store). The others call cli.main() here.
"""
from __future__ import annotations

import json
import resource
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from store_helpers import bench_graph, chunk_path, replace_with, zstd_bomb

from facesynth.cli import main

sys.path.insert(0, str(Path(__file__).parents[1] / "spine"))
sys.path.insert(0, str(Path(__file__).parents[1] / "live"))
from cli_child import run_cli  # noqa: E402 - the hostile-input tests' subprocess + peak RSS helper

MAX_RSS_MB = 500
MAX_CPU_S = 10.0
MAX_WALL_S = 60.0  # a hang guard (see the module docstring)
GIB = 1 << 30


def run_measured(args: list[str]) -> tuple[int, str, float, float, float]:
    """(exit code, output, wall seconds, CPU seconds, peak RSS MB) of the CLI in a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    code, out, wall, rss = run_cli(args)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return code, out, wall, cpu, rss


def assert_bounded(out: str, wall: float, cpu: float, rss: float, max_wall: float = MAX_WALL_S) -> None:
    assert "Traceback" not in out and "MemoryError" not in out, out
    assert rss < MAX_RSS_MB, (rss, out)
    assert cpu < MAX_CPU_S, (cpu, out)
    assert wall < max_wall, (wall, out)


# ---- stores made here ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def bench_store(tmp_path_factory) -> Path:
    """A real store of the bench graph (bench/ and blur/, chunks of 4 frames of 128x128 uint8), made once."""
    d = tmp_path_factory.mktemp("bench")
    store = d / "store.zarr"
    assert main(["graph", "run", bench_graph(d, store, side=128), "--local", "--quiet"]) == 0
    return store


def copy_of(store: Path, tmp_path: Path) -> tuple[Path, str]:
    """A copy of `store` under tmp_path, and the bench graph pointing at it."""
    dst = tmp_path / "store.zarr"
    shutil.copytree(store, dst, symlinks=True)
    return dst, bench_graph(tmp_path, dst, side=128)


def toy_store(path: Path) -> Path:
    """crop/* arrays of 8 frames of 64 px in chunks of 4 (4 train, 4 eval), as face.crop writes them."""
    from facesynth.model.toy_data import write_toy_store

    store = write_toy_store(path, n_train=4, n_eval=4, size=64, chunk_frames=4)
    store.update_attrs(normalisation={**store.attrs["normalisation"], "crop_mm": 200.0})
    return path


def edit_meta(store: Path, name: str, change) -> None:
    f = store / name / "zarr.json"
    meta = json.loads(f.read_text())
    change(meta)
    f.write_text(json.dumps(meta))


# ---- decompression bombs ------------------------------------------------------------------
def test_the_bomb_is_small_and_really_explodes():
    """The crafted chunk is what the issue describes: kilobytes that numcodecs (as Zarr calls it)
    decompresses to whatever the header declares, or, declaring nothing, for as long as it goes."""
    import numcodecs

    from facesynth.store.zstd_frames import ChunkSizeError, check_declared_size

    for declare in (True, False):
        bomb = zstd_bomb(32 << 20, declare)
        assert len(bomb) < 1100
        assert numcodecs.Zstd().decode(bomb) == bytes(32 << 20)  # 32 MB here; 1 GiB in the tests below
        with pytest.raises(ChunkSizeError, match="refused before decompressing"):
            check_declared_size(bomb, 49_152)
    assert len(zstd_bomb(GIB)) < 33 << 10


def test_store_check_on_bombs_a_huge_shape_and_one_frame_chunks(tmp_path):
    """Acceptance: one store with a bomb declaring 1 GiB, a bomb declaring no size, an array
    declaring 10^12 frames, one re-chunked to 1 frame over the real data and one declaring a
    million frames (within the limits) over 2 chunks of data: < 30 s, < 500 MB, each named."""
    store = toy_store(tmp_path / "store.zarr")
    chunk_path(store, "crop/color", 1, 4).write_bytes(zstd_bomb(GIB))  # 32 KB, under the file limit
    chunk_path(store, "crop/depth", 0, 3).write_bytes(zstd_bomb(GIB, declare_size=False))
    edit_meta(store, "crop/landmarks", lambda m: m["shape"].__setitem__(0, 10 ** 12))
    edit_meta(store, "crop/mask", lambda m: m["chunk_grid"]["configuration"]["chunk_shape"].__setitem__(0, 1))
    edit_meta(store, "raw/split", lambda m: m["shape"].__setitem__(0, 1_000_000))

    code, out, wall, cpu, rss = run_measured(["store", "check", str(store)])
    assert code == 1, out
    assert_bounded(out, wall, cpu, rss, max_wall=30.0)
    assert "array 'crop/color' chunk 1 (frames 4-8) does not decode (ChunkSizeError: its zstd stream declares " \
           "1,073,741,824 bytes decompressed, but a chunk of this array holds 49,152 bytes" in out
    assert "array 'crop/depth' chunk 0 (frames 0-4) does not decode (ChunkSizeError: its zstd stream does not " \
           "declare its decompressed size" in out
    assert f"array 'crop/landmarks' not checked: {store}/crop/landmarks/zarr.json: it declares " \
           "1,000,000,000,000 frames, more than the limit of 1,000,000 frames" in out
    assert f"array 'crop/mask' not checked: {store}/crop/mask/zarr.json: its chunks are (1, 64, 64); facesynth " \
           "writes chunks of the store's chunk_frames (4)" in out
    assert "4 problem(s)" in out and "raw/split" not in out.split("problem(s)")[1]
    # progress: 4 arrays checked (color, depth, ok, split) x their 2 chunks on disk (raw/split declares 250,000)
    assert "checking 8 chunks in 4 arrays" in out and "4 arrays, 8 chunks checked" in out
    assert not chunk_path(store, "crop/color", 1, 4).exists()  # repaired: the bomb is gone
    assert chunk_path(store, "crop/color", 0, 4).exists()


@pytest.mark.parametrize("command", ["face ply", "model eval", "graph run"])
def test_a_bomb_chunk_is_refused_before_it_is_decompressed(tmp_path, bench_store, command):
    if command == "graph run":  # blur reads every chunk of bench/frames again
        store, graph = copy_of(bench_store, tmp_path)
        chunk_path(store, "bench/frames", 1, 3).write_bytes(zstd_bomb(GIB))
        (store / "_progress" / "blur.jsonl").unlink()
        args = ["graph", "run", graph, "--local", "--quiet"]
        array, holds = "bench/frames", "65,536"
    else:
        from live_helpers import export_tiny_model

        store = toy_store(tmp_path / "store.zarr")
        chunk_path(store, "crop/color", 1, 4).write_bytes(zstd_bomb(GIB))
        array, holds = "crop/color", "49,152"
        args = (["face", "ply", str(store), "--frame", "5", "--out", str(tmp_path / "f.ply")]
                if command == "face ply" else
                ["model", "eval", "--model", str(export_tiny_model(tmp_path / "export")), "--store", str(store),
                 "--no-lpips"])
    code, out, wall, cpu, rss = run_measured(args)
    assert code == 1, out
    assert_bounded(out, wall, cpu, rss)
    assert f"array '{array}' chunk 1 (frames 4-8) does not decode (ChunkSizeError: its zstd stream declares " \
           f"1,073,741,824 bytes decompressed, but a chunk of this array holds {holds} bytes" in out, out


# ---- store files replaced by a link to /dev/zero, a FIFO, a 20 GB sparse file -------------------
KINDS = {"dev_zero": "is a device, not a regular file", "fifo": "is a FIFO, not a regular file",
         "sparse": "is 20.0 GB, more than the limit of"}
ROTATIONS = [("dev_zero", "fifo", "sparse"), ("fifo", "sparse", "dev_zero"), ("sparse", "dev_zero", "fifo")]
# runs append to progress files: a link there (to /dev/zero or anything) is refused as a link
PROGRESS_KINDS = {**KINDS, "dev_zero": "is reached through the link"}


@pytest.mark.parametrize("marker_lock, src, blur", ROTATIONS, ids=[r[0] for r in ROTATIONS])
def test_store_check_names_each_hostile_store_file(tmp_path, bench_store, marker_lock, src, blur):
    """The marker, the lock and two progress files, each of the three kinds over the three runs."""
    store, _ = copy_of(bench_store, tmp_path)
    replace_with(store / "facesynth_store.json", marker_lock)
    replace_with(store / "facesynth_run.lock", marker_lock)
    replace_with(store / "_progress" / "src.jsonl", src)
    replace_with(store / "_progress" / "blur.jsonl", blur)
    code, out, wall, cpu, rss = run_measured(["store", "check", str(store)])
    assert code == 1, out
    assert_bounded(out, wall, cpu, rss)
    assert f"store marker {store}/facesynth_store.json: the store marker {KINDS[marker_lock]}" in out
    assert f"store lock {store}/facesynth_run.lock: the lock file {KINDS[marker_lock]}" in out
    assert f"progress of node 'src' not checked: {store}/_progress/src.jsonl: the progress file {PROGRESS_KINDS[src]}" \
           in out
    assert f"progress of node 'blur' not checked: {store}/_progress/blur.jsonl: the progress file " \
           f"{PROGRESS_KINDS[blur]}" in out
    assert "not repaired" in out  # a lock no run wrote is never taken over: nothing is changed
    for name, kind in [("facesynth_store.json", marker_lock), ("_progress/src.jsonl", src), ("_progress/blur.jsonl", blur)]:
        assert still(store / name, kind), name


def still(path: Path, kind: str) -> bool:
    """Whether `path` is still the hostile thing replace_with put there."""
    import stat

    if kind == "dev_zero":
        return path.is_symlink() and str(path.readlink()) == "/dev/zero"
    st = path.lstat()
    return stat.S_ISFIFO(st.st_mode) if kind == "fifo" else stat.S_ISREG(st.st_mode) and st.st_size == 20 << 30


@pytest.mark.parametrize("kind, command", [("dev_zero", "store info"), ("fifo", "graph run"),
                                           ("sparse", "store check")])
def test_a_hostile_root_zarr_json_is_named(tmp_path, bench_store, kind, command):
    store, graph = copy_of(bench_store, tmp_path)
    replace_with(store / "zarr.json", kind)
    args = {"store info": ["store", "info", str(store)], "store check": ["store", "check", str(store)],
            "graph run": ["graph", "run", graph, "--local", "--quiet"]}[command]
    code, out, wall, cpu, rss = run_measured(args)
    assert code == 1, out
    assert_bounded(out, wall, cpu, rss)
    assert f"{store}/zarr.json: the Zarr metadata (zarr.json) {KINDS[kind]}" in out, out


@pytest.mark.parametrize("what, command, code, words", [
    ("facesynth_store.json", "graph run", 2, "is not a facesynth store: store marker {f}: the store marker is a device"),
    ("facesynth_store.json", "store info", 0, "warning: store marker {f}: the store marker is a device"),
    ("facesynth_run.lock", "graph run", 1, "store lock {f}: the lock file is a device, not a regular file; refused; "
                                           "facesynth neither reads nor takes over such a lock"),
    ("_progress/blur.jsonl", "graph run", 1, "{f}: the progress file is reached through the link {f} (facesynth "
                                             "writes no links in a store); refused"),
    ("_progress/blur.jsonl", "store info", 1, "{f}: the progress file is reached through the link"),
])
def test_hostile_store_files_in_runs_and_info(tmp_path, capsys, bench_store, what, command, code, words):
    store, graph = copy_of(bench_store, tmp_path)
    replace_with(store / what, "dev_zero")
    args = ["graph", "run", graph, "--local", "--quiet"] if command == "graph run" else ["store", "info", str(store)]
    assert main(args) == code
    cap = capsys.readouterr()
    out = cap.out + cap.err
    assert words.format(f=store / what) in out and "Traceback" not in out, out


# ---- metadata that is not what facesynth writes --------------------------------------------
def _nested(meta):
    meta["attributes"] = {"a": json.loads("[" * 40 + "]" * 40)}


def _sparse_meta(store):
    with open(store / "bench" / "frames" / "zarr.json", "r+b") as f:
        f.truncate(2 << 20)


META_CASES = {
    "huge_shape": (lambda m: m["shape"].__setitem__(0, 10 ** 12), "declares 1,000,000,000,000 frames, more than "
                   "the limit of 1,000,000 frames"),
    "huge_frame": (lambda m: (m["shape"].__setitem__(1, 100_000), m["chunk_grid"]["configuration"]["chunk_shape"]
                              .__setitem__(1, 100_000)), "its frames are (100000, 128): each axis must hold 1 to 16,384"),
    "huge_chunk": (lambda m: (m["shape"].__setitem__(0, 1 << 19), m["chunk_grid"]["configuration"]["chunk_shape"]
                              .__setitem__(0, 4096)), "its chunks are (4096, 128, 128)"),
    "gzip": (lambda m: m["codecs"].__setitem__(1, {"name": "gzip", "configuration": {"level": 5}}),
             "its compressor is {'name': 'gzip'"),
    "blosc": (lambda m: m["codecs"].__setitem__(1, {"name": "blosc", "configuration": {"cname": "zstd"}}),
              "its compressor is {'name': 'blosc'"),
    "sharding": (lambda m: m.__setitem__("codecs", [{"name": "sharding_indexed", "configuration": {}}]),
                 "its codecs are [{'name': 'sharding_indexed'"),
    "string_dtype": (lambda m: m.__setitem__("data_type", "string"), "its data type 'string' is not one facesynth"),
    "v2_keys": (lambda m: m.__setitem__("chunk_key_encoding", {"name": "v2", "configuration": {"separator": "."}}),
                "its chunk key encoding"),
    "nested": (_nested, "nests 42 levels deep, more than the limit of 32"),
    "sparse_2mb": (None, "is 2.0 MB, more than the limit of 1.0 MB"),
}


@pytest.mark.parametrize("case", list(META_CASES))
def test_array_metadata_not_as_facesynth_writes_it_is_refused(tmp_path, capsys, bench_store, case):
    change, words = META_CASES[case]
    store, _ = copy_of(bench_store, tmp_path)
    if change is None:
        _sparse_meta(store)
    else:
        edit_meta(store, "bench/frames", change)
    assert main(["store", "info", str(store)]) == 1
    err = capsys.readouterr().err
    assert f"{store}/bench/frames/zarr.json: " in err and words in err and "Traceback" not in err, err
    assert main(["store", "check", str(store), "--dry-run"]) == 1
    out = capsys.readouterr().out
    assert "array 'bench/frames' not checked" in out or "'bench/frames' not checked" in out, out
    assert words in out


def test_consolidated_metadata_is_refused(tmp_path, capsys, bench_store):
    """Zarr would take every array's metadata from the root's consolidated copy, unchecked."""
    import warnings

    import zarr

    store, _ = copy_of(bench_store, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(str(store))
    assert "consolidated_metadata" in json.loads((store / "zarr.json").read_text())
    assert main(["store", "info", str(store)]) == 1
    err = capsys.readouterr().err
    assert f"{store}/zarr.json: it holds consolidated metadata, which facesynth never writes" in err, err


def test_a_million_declared_frames_over_two_chunks_are_read_from_the_disk(tmp_path):
    """Within the limits, a huge declared shape costs a directory listing: `store info` counts the
    ok frames of a 1,000,000-frame, 1-frame-chunk array (Zarr would ask for 10^6 chunks) quickly."""
    store = toy_store(tmp_path / "store.zarr")
    root = json.loads((store / "zarr.json").read_text())
    root["attributes"]["chunk_frames"] = 1
    (store / "zarr.json").write_text(json.dumps(root))
    edit_meta(store, "crop/ok", lambda m: (m["shape"].__setitem__(0, 1_000_000),
                                           m["chunk_grid"]["configuration"]["chunk_shape"].__setitem__(0, 1)))
    shutil.rmtree(store / "crop" / "ok" / "c")
    for i in (3, 999_998):  # two 1-frame chunks of True, written by Zarr at those keys
        import zarr

        tmp = zarr.create_array(str(tmp_path / "one.zarr"), shape=(1,), chunks=(1,), dtype=bool, overwrite=True)
        tmp[:] = True
        (store / "crop" / "ok" / "c").mkdir(exist_ok=True)
        shutil.copy(tmp_path / "one.zarr" / "c" / "0", store / "crop" / "ok" / "c" / str(i))
    for name in ("crop/color", "crop/depth", "crop/mask", "crop/landmarks", "raw/split"):
        shutil.rmtree(store / name)  # arrays chunked by 4 frames would be refused with chunk_frames 1
    code, out, wall, cpu, rss = run_measured(["store", "info", str(store), "--json"])
    assert code == 0, out
    assert_bounded(out, wall, cpu, rss)
    info = json.loads(out[:out.rindex("}") + 1])
    assert info["arrays"]["crop/ok"]["frames_ok"] == 2 and info["arrays"]["crop/ok"]["shape"] == [1_000_000]


def test_a_sparse_read_equals_zarr(tmp_path):
    """A read of many chunks, some of them absent, gives what Zarr gives for it (fill values there)."""
    import zarr

    from facesynth.store.frame_store import SPARSE_READ_CHUNKS, FrameStore

    store = FrameStore.create(tmp_path / "s.zarr", chunk_frames=2)
    n = 2 * (SPARSE_READ_CHUNKS + 20)
    store.ensure_array("g/v", n, (3,), np.int16, fill_value=-7)
    data = np.arange(n * 3, dtype=np.int16).reshape(n, 3)
    for start in range(0, n, 2):
        if start % 6:  # every third chunk never written
            store.write("g/v", start, data[start:start + 2])
    want = np.asarray(zarr.open_array(str(tmp_path / "s.zarr" / "g" / "v"), mode="r")[3:n - 1])
    assert (want == -7).any()
    np.testing.assert_array_equal(FrameStore.open(tmp_path / "s.zarr", "r").read("g/v", 3, n - 1), want)


# ---- around stores ------------------------------------------------------------------------------
def test_a_runs_file_beside_the_store_is_a_clear_error(tmp_path, capsys):
    store = tmp_path / "store.zarr"
    graph = bench_graph(tmp_path, store)
    Path(f"{store}.runs").write_text("not a folder")
    for args in (["graph", "validate", graph], ["graph", "run", graph, "--local", "--quiet"]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert f"{store}.runs, where its run logs go, is a file, not a directory" in err and "Traceback" not in err
    assert Path(f"{store}.runs").read_text() == "not a folder"


def test_nothing_outside_the_store_is_written_or_removed_through_a_link(tmp_path, capsys, bench_store):
    """A downloaded store may hold links (facesynth writes none): a progress file linked to a user's
    file is refused by runs (which append to progress files) and only the link is removed by
    `store check`; a linked folder is reported and only the link removed, never what it leads to."""
    store, graph = copy_of(bench_store, tmp_path)
    outside = tmp_path / "out\x1b]0;pwned\x07side"  # the link's target is shown: escaped, never raw
    outside.mkdir()
    notes = outside / "notes.jsonl"
    notes.write_text('{"mine": 1}\nnot json\n')
    (store / "_progress" / "blur.jsonl").unlink()
    (store / "_progress" / "blur.jsonl").symlink_to(notes)
    shutil.move(store / "bench", outside / "bench")
    (store / "bench").symlink_to(outside / "bench")
    chunk_path(outside, "bench/frames", 1, 3).write_bytes(b"damaged")
    assert main(["graph", "run", graph, "--local", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"{store}/_progress/blur.jsonl: the progress file is reached through the link" in err, err
    assert main(["store", "check", str(store)]) == 1
    out = capsys.readouterr().out
    shown = str(outside).replace("\x1b", "\\x1b").replace("\x07", "\\x07")
    assert f"array or group 'bench' not checked: it is a link to {shown}/bench, not a folder" in out, out
    assert "\x1b" not in out and "\x07" not in out
    assert notes.read_text() == '{"mine": 1}\nnot json\n'  # neither appended to nor rewritten
    assert chunk_path(outside, "bench/frames", 1, 3).read_bytes() == b"damaged"  # only the link was removed
    assert not (store / "bench").is_symlink() and (outside / "bench" / "frames" / "zarr.json").is_file()
    assert not (store / "_progress" / "blur.jsonl").exists() and not (store / "_progress" / "blur.jsonl").is_symlink()


def test_a_forged_marker_does_not_make_a_store(tmp_path, capsys, bench_store):
    """A two-key marker (all a forger sees) in someone's folder, or a marker copied from another
    store: runs and --restart refuse the folder, nothing in it is deleted."""
    victim = tmp_path / "home"
    victim.mkdir()
    (victim / "thesis.tex").write_text("years of work")
    (victim / "facesynth_store.json").write_text(json.dumps({"format": "facesynth-store", "store_id": "x"}))
    graph = bench_graph(tmp_path, victim)
    assert main(["graph", "run", graph, "--local", "--quiet", "--restart"]) == 2
    err = capsys.readouterr().err
    assert "has a store marker facesynth_store.json but no Zarr root (zarr.json) holding its store id" in err
    assert sorted(p.name for p in victim.iterdir()) == ["facesynth_store.json", "thesis.tex"]

    shutil.copy(bench_store / "zarr.json", victim / "zarr.json")  # a real root, another store's id
    assert main(["graph", "run", graph, "--local", "--quiet", "--restart"]) == 2
    err = capsys.readouterr().err
    assert "is not the one in its Zarr root" in err and "Traceback" not in err
    assert (victim / "thesis.tex").read_text() == "years of work"
