"""The CLI's own file arguments, given hostile or impossible (issue 23, "CLI inputs"): each gets a
clear message and its documented exit code, no traceback, in under 10 s and 500 MB (the real CLI
in a child process). Photos: exit 1 (bad data); paths the OS refuses: exit 2 (bad usage)."""
from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_child import assert_refused, run_cli

LONG = "a" * 300  # one path component over the 255 bytes Linux file systems allow


def jpeg_declaring(width: int, height: int) -> bytes:
    """A 16 x 16 JPEG (a few hundred bytes) whose frame header claims width x height."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 7] = height.to_bytes(2, "big")
    data[sof + 7:sof + 9] = width.to_bytes(2, "big")
    return bytes(data)


def heic_declaring(width: int, height: int) -> bytes:
    """A 64 x 64 HEIC (about 400 bytes) whose 'ispe' box claims width x height."""
    import pillow_heif
    from PIL import Image

    buf = io.BytesIO()
    pillow_heif.from_pillow(Image.fromarray(np.zeros((64, 64, 3), np.uint8))).save(buf, quality=50)
    data = bytearray(buf.getvalue())
    ispe = data.find(b"ispe")
    data[ispe + 8:ispe + 16] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    return bytes(data)


def test_crafted_files_declare_what_the_cases_say():
    """Independent readers (Pillow, libheif) see the sizes the refusals name."""
    import pillow_heif
    from PIL import Image

    with pytest.warns(Image.DecompressionBombWarning):  # Pillow itself calls 176 MP a possible bomb
        assert Image.open(io.BytesIO(jpeg_declaring(16000, 11000))).size == (16000, 11000)
    assert pillow_heif.open_heif(io.BytesIO(heic_declaring(65535, 65535))).size == (65535, 65535)
    assert len(jpeg_declaring(65500, 65500)) < 1000 and len(heic_declaring(65535, 65535)) < 1000


# name -> (file content, words in the message); every one exits 1
PORTRAITS = {
    "text_file": (b"hello, I am text, not a photo\n", "is not a JPEG or HEIC photo"),
    "png_named_heic": (b"\x89PNG\r\n\x1a\n" + bytes(200), "is not a JPEG or HEIC photo"),
    "heic_cut_short": (None, "is not a readable HEIC file"),
    "heic_65535_squared": (None, "its HEIC image declares 65535 x 65535 pixels"),
    "jpeg_65500_squared": (None, "its JPEG declares 65500 x 65500 pixels"),
    "jpeg_176_megapixels": (None, "its JPEG declares 16000 x 11000 pixels (176 MP)"),
}


@pytest.mark.parametrize("case", list(PORTRAITS))
def test_hostile_portrait(tmp_path, case):
    content, words = PORTRAITS[case]
    made = {"heic_cut_short": lambda: heic_declaring(64, 64)[:60], "heic_65535_squared": lambda: heic_declaring(65535, 65535),
            "jpeg_65500_squared": lambda: jpeg_declaring(65500, 65500),
            "jpeg_176_megapixels": lambda: jpeg_declaring(16000, 11000)}
    photo = tmp_path / (f"{case}.heic" if "heic" in case else f"{case}.jpg")
    photo.write_bytes(content if content is not None else made[case]())
    out = assert_refused(run_cli(["face", "portrait", str(photo), "--out", str(tmp_path / "out")]), 1, str(photo), words)
    assert "refused before decoding" in out or "pixels" not in words
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_portrait_that_is_not_a_regular_file(tmp_path):
    for path in (tmp_path, Path("/dev/zero")):
        assert_refused(run_cli(["face", "portrait", str(path), "--out", str(tmp_path / "o")]), 1, str(path),
                       "not a regular file")


def test_ply_out_is_a_directory(tmp_path):
    """Checked before the store is opened: no work is done for an output that cannot be written."""
    assert_refused(run_cli(["face", "ply", str(tmp_path / "no_store.zarr"), "--frame", "0", "--out", str(tmp_path)]),
                   2, f"--out {tmp_path} is a directory; give a file name")
    assert_refused(run_cli(["face", "portrait", "/dev/null", "--out", "/dev/null"]), 2, "is a file; give a directory")


@pytest.mark.parametrize("args", [
    ["store", "info", "{long}"],
    ["face", "ply", "{long}", "--frame", "0", "--out", "{tmp}/f.ply"],
    ["face", "ply", "{tmp}/s.zarr", "--frame", "0", "--out", "{long}.ply"],
    ["graph", "validate", "{graph}", "--set", "store.path={long}/s.zarr"],
], ids=["store_info", "ply_store", "ply_out", "graph_store_path"])
def test_path_with_a_300_character_name(tmp_path, args):
    graph = Path(__file__).parents[1] / "graphs" / "passthrough.yaml"
    argv = [a.format(long=tmp_path / LONG, tmp=tmp_path, graph=graph) for a in args]
    out = assert_refused(run_cli(argv), 2, "a name in this path is 30", "more than the 255 the file system allows")
    if args[0] == "graph":
        assert "--set:1:1: store path" in out, out  # a positioned graph problem, like every other


def _without_file_permission_override() -> tuple[str, ...]:
    """How to run the child so that file permissions apply to it: as root, without the capabilities
    that skip them (root's process is otherwise allowed to read a mode-000 file)."""
    if os.geteuid() != 0:
        return ()
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: permissions cannot be made to apply")
    caps = "-dac_override,-dac_read_search"
    return ("setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}")


def test_permission_denied_is_a_clear_message(tmp_path):
    prefix = _without_file_permission_override()
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(jpeg_declaring(16, 16))
    locked = tmp_path / "locked.zarr"
    locked.mkdir()
    photo.chmod(0)
    locked.chmod(0)
    try:
        assert_refused(run_cli(["face", "portrait", str(photo), "--out", str(tmp_path / "o")], prefix), 2,
                       f"{photo}: permission denied")
        assert_refused(run_cli(["store", "info", str(locked)], prefix), 2, "permission denied")
    finally:
        photo.chmod(0o644)
        locked.chmod(0o755)


def test_dashboard_run_log_arguments(tmp_path):
    """A replay holds every record in memory: a 20 GB (sparse) log is refused from its size; a
    store's runs folder holding only a FIFO (it would block a reader) has no run log to show."""
    big = tmp_path / "big.jsonl"
    with open(big, "wb") as fh:
        fh.truncate(20 << 30)
    assert_refused(run_cli(["dashboard", str(big), "--replay"]), 1, "the run log is 20.0 GB, more than the limit")
    runs = tmp_path / "s.zarr.runs"
    runs.mkdir()
    os.mkfifo(runs / "run.jsonl")
    assert_refused(run_cli(["dashboard", str(tmp_path / "s.zarr")]), 2, "no run log found")


def test_run_log_line_nested_deeply_is_not_a_record():
    from facesynth.tui.sources import parse_line

    assert parse_line(b"[" * 100_000 + b"]" * 100_000) is None
    assert parse_line(b'{"type": "run_end"}') == {"type": "run_end"}


def test_checkpoint_file_is_size_checked_before_torch_reads_it(tmp_path):
    from facesynth.errors import ModelFileError
    from facesynth.model.checkpoint import safe_torch_load

    ckpt = tmp_path / "latest.pt"
    with open(ckpt, "wb") as fh:
        fh.truncate(20 << 30)
    with pytest.raises(ModelFileError, match=r"the checkpoint is 20\.0 GB, more than the limit of 16\.0 GB"):
        safe_torch_load(ckpt)
    with pytest.raises(ModelFileError, match="not a regular file"):
        safe_torch_load("/dev/zero")
