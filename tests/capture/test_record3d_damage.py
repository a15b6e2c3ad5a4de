"""Damaged Record3D exports: each damaged frame is found by kind, and on_error skip/stop/fail behave as
for Azure Kinect recordings (one policy: capture/damage_policy.py).

Each export is 6 real frames of the TrueDepth sequence (r3d_fixture_tools.py) with one frame
damaged by hand, so the expected kept and damaged frames are written down from what was damaged.
"""
from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from r3d_fixture_tools import DH, DW, SEQUENCE, export_members, write_r3d  # noqa: E402
from test_capture_nodes import make_node, run  # noqa: E402

from facesynth.errors import InputDataError  # noqa: E402
from facesynth.store.frame_store import FrameStore  # noqa: E402

pytestmark = pytest.mark.skipif(not (SEQUENCE / "info.json").exists(), reason=f"real sequence not found at {SEQUENCE}")
N = 6


@pytest.fixture(scope="module")
def members():
    return export_members(count=N, numbers=list(range(N)), conf=False)


def damaged(path: Path) -> tuple[list[int], list[tuple[int, str]]]:
    """(numbers of intact frames, [(number, kind)] of damaged ones), every frame read."""
    from facesynth.capture.record3d.export import DamagedFrame, Record3dExport

    frames = list(Record3dExport(path).frames())
    return ([f.index for f in frames if not isinstance(f, DamagedFrame)],
            [(f.index, f.kind) for f in frames if isinstance(f, DamagedFrame)])


def flip_inside_member(path: Path, name: str, at: int) -> None:
    """Flip one byte of a stored member's data in the file (its CRC-32 no longer matches)."""
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(name)
    data = bytearray(path.read_bytes())
    header = info.header_offset
    start = header + 30 + int.from_bytes(data[header + 26:header + 28], "little") \
        + int.from_bytes(data[header + 28:header + 30], "little")
    data[start + at] ^= 0x40
    path.write_bytes(bytes(data))


def test_corrupt_zip_member_is_a_zip_damage(tmp_path, members):
    path = write_r3d(tmp_path / "crc.r3d", members)
    flip_inside_member(path, "rgbd/2.depth", 1000)
    assert damaged(path) == ([0, 1, 3, 4, 5], [(2, "zip")])


def test_cut_lzfse_stream_is_an_lzfse_damage(tmp_path, members):
    bad = dict(members)
    bad["rgbd/4.depth"] = members["rgbd/4.depth"][: len(members["rgbd/4.depth"]) // 2]  # the member cut short
    assert damaged(write_r3d(tmp_path / "cut.r3d", bad)) == ([0, 1, 2, 3, 5], [(4, "lzfse")])


def test_impossible_member_size_is_refused_from_the_zip_directory(tmp_path, members):
    """A deflated member declaring 40 MB (a depth map here is 0.9 MB) is damage before a byte is inflated."""
    bad = dict(members)
    bad["rgbd/1.depth"] = bytes(40 << 20)
    path = write_r3d(tmp_path / "big.r3d", bad, compression=zipfile.ZIP_DEFLATED)
    assert damaged(path) == ([0, 2, 3, 4, 5], [(1, "zip")])
    from facesynth.capture.record3d.export import Record3dExport

    frame1 = [f for f in Record3dExport(path).frames() if f.index == 1][0]
    assert f"declares {40 << 20} bytes" in frame1.error


def test_wrong_length_depth_is_a_size_damage(tmp_path, members):
    import lzfse

    bad = dict(members)
    bad["rgbd/3.depth"] = lzfse.compress(np.ones((DH, DW - 1), "<f4").tobytes())
    path = write_r3d(tmp_path / "short.r3d", bad)
    assert damaged(path) == ([0, 1, 2, 4, 5], [(3, "size")])
    from facesynth.capture.record3d.export import Record3dExport

    err = [f for f in Record3dExport(path).frames() if f.index == 3][0].error
    assert f"decodes to {4 * DH * (DW - 1)} bytes" in err and "frame 3" in err and "short.r3d" in err


def test_bad_jpeg_and_missing_depth(tmp_path, members):
    bad = dict(members)
    jpeg = bytearray(members["rgbd/1.jpg"])
    jpeg[40_000:40_300] = bytes(300)  # zeros inside the scan: OpenCV would still "decode" it
    bad["rgbd/1.jpg"] = bytes(jpeg)
    del bad["rgbd/5.depth"]
    assert damaged(write_r3d(tmp_path / "jpeg.r3d", bad)) == ([0, 2, 3, 4], [(1, "jpeg"), (5, "missing")])


def two_damages(tmp_path: Path, members: dict) -> Path:
    """Frame 1: a bad JPEG; frame 4: a depth map of the wrong length."""
    import lzfse

    bad = dict(members)
    bad["rgbd/1.jpg"] = members["rgbd/1.jpg"][:-5000]  # cut: no end marker
    bad["rgbd/4.depth"] = lzfse.compress(np.ones(100, "<f4").tobytes())
    return write_r3d(tmp_path / "two.r3d", bad)


async def test_skip_stop_fail_as_for_recordings(tmp_path, members):
    path = two_damages(tmp_path, members)
    expected = {"skip": ([0, 2, 3, 5], [(1, "jpeg"), (4, "size")]), "stop": ([0], [(1, "jpeg")])}
    for policy, (kept, dmg) in expected.items():
        node, events = make_node("capture.record3d", tmp_path / f"{policy}.zarr", {"path": str(path), "on_error": policy})
        await run(node)
        st = FrameStore.open(tmp_path / f"{policy}.zarr", "r")
        assert st.read("raw/source_index")[st.read("raw/ok")].tolist() == kept
        events_dmg = [d for n, d in events if n == "capture.damaged"]
        assert [(d["frame"], d["kind"], d["tally"], d["policy"]) for d in events_dmg] == \
            [(f, k, k, policy) for f, k in dmg]
        rejects = [d for n, d in events if n == "capture.rejects"][-1]
        assert rejects["kept"] == len(kept) and rejects["damaged"] == {k: 1 for _, k in dmg}
    node, events = make_node("capture.record3d", tmp_path / "fail.zarr", {"path": str(path), "on_error": "fail"})
    with pytest.raises(InputDataError, match="frame 1: rgbd/1.jpg"):
        await run(node)
    assert not [d for n, d in events if n == "capture.damaged"]


def test_damaged_export_through_the_cli(tmp_path, members, capsys):
    """As for MKV: exit 0 under skip with the damage counted by kind in the summary; exit 1 under
    fail, naming the frame, without a traceback."""
    from facesynth.cli import main

    path = two_damages(tmp_path, members)
    graph = tmp_path / "g.yaml"
    graph.write_text(f"version: 1\nname: r3d\nstore: {{path: {tmp_path / 's.zarr'}, chunk_frames: 4}}\n"
                     f"nodes:\n  - id: camera\n    kind: capture.record3d\n    params: {{path: {path}}}\n")
    assert main(["graph", "run", str(graph), "--local", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["status"] == "ok"
    assert summary["warnings"] == {"camera": {"capture.damaged": {"jpeg": 1, "size": 1}}}
    graph.write_text(graph.read_text().replace(f"{{path: {path}}}", f"{{path: {path}, on_error: fail}}")
                     .replace("s.zarr", "s2.zarr"))
    assert main(["graph", "run", str(graph), "--local", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "frame 1" in err and "no end marker" in err and "Traceback" not in err


def test_lzfse_output_is_bounded():
    """A 2.5 KB stream of 4 MB of zeros (1600:1), where a 0.9 MB depth map is expected, is refused on the
    bounded path and on the checked fallback; a normal stream decodes as the binding decodes it."""
    import lzfse

    from facesynth.capture.record3d import lzfse_bounded as lb

    expected = 4 * DH * DW
    bomb = lzfse.compress(bytes(4_000_000))  # (the reference encoder takes seconds on long runs of zeros)
    assert len(bomb) < 10_000
    with pytest.raises(lb.LzfseDamage, match="more than"):
        lb.decode(bomb, expected)
    with pytest.raises(lb.LzfseDamage, match="declares a"):
        lb._decode_checked(bomb, expected)
    data = np.random.default_rng(0).random(DH * DW).astype("<f4").tobytes()
    stream = lzfse.compress(data)
    assert lb.decode(stream, expected) == lzfse.decompress(stream) == data
    assert lb._decode_checked(stream, expected) == data
    assert lb._bounded_decoder() is not None  # this platform's binding exports the bounded decoder
    with pytest.raises(lb.LzfseDamage, match="not an LZFSE stream"):
        lb.decode(b"PK\x03\x04" + bytes(100), expected)


def test_a_file_that_is_no_export_is_an_input_error(tmp_path, members):
    """Whole-file problems are not frame damage: the export cannot be read, and the error says why."""
    from facesynth.capture.record3d.export import Record3dExport

    def export_with(metadata: bytes) -> Path:
        return write_r3d(tmp_path / "m.r3d", dict(members, metadata=metadata))

    meta = json.loads(members["metadata"])
    cases = {
        b"not json": "not valid JSON",
        b"[" * 100 + b"]" * 100: "nests 100 levels",
        json.dumps(dict(meta, K=meta["K"][:8])).encode(): "`K` must be the 9 numbers",
        json.dumps({k: v for k, v in meta.items() if k != "w"}).encode(): "`w` is None",
        json.dumps(dict(meta, K=[0] * 9)).encode(): "are not a camera",
    }
    for metadata, why in cases.items():
        with pytest.raises(InputDataError, match=why):
            Record3dExport(export_with(metadata))
    (tmp_path / "x.r3d").write_bytes(b"PK\x03\x04" + bytes(200))
    with pytest.raises(InputDataError, match="not a readable Record3D export"):
        Record3dExport(tmp_path / "x.r3d")
    with pytest.raises(InputDataError, match="no such Record3D export"):
        Record3dExport(tmp_path / "missing.r3d")
    write_r3d(tmp_path / "nometa.r3d", {k: v for k, v in members.items() if k != "metadata"})
    with pytest.raises(InputDataError, match="no `metadata` member"):
        Record3dExport(tmp_path / "nometa.r3d")
