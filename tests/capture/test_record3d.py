"""capture.record3d on the real iPhone TrueDepth sequence packed as a Record3D export (r3d_fixture_tools.py),
and capture.folder on the same sequence as it is published (info.json beside the frames, no conversion).

The reference is the source itself: its 16-bit PNGs x 0.0153 mm (the README's scale) read with
OpenCV, colour pixel (x, y) over depth pixel (x // 2, y // 2) as the README states, and its JPEGs
decoded by OpenCV.
"""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from r3d_fixture_tools import (DH, DW, H, N_FRAMES, SEQUENCE, W, export_members, numbering,  # noqa: E402
                               source_depth_mm, write_folder, write_r3d)
from test_capture_nodes import make_node, run  # noqa: E402

from facesynth.errors import SourceMismatchError  # noqa: E402
from facesynth.store.frame_store import FrameStore  # noqa: E402

pytestmark = pytest.mark.skipif(not (SEQUENCE / "info.json").exists(), reason=f"real sequence not found at {SEQUENCE}")


def reference_depth(i: int) -> np.ndarray:
    """Source frame i's depth (mm, float) at every colour pixel: depth pixel (x // 2, y // 2)."""
    src = source_depth_mm(i)
    return src[np.arange(H)[:, None] // 2, np.arange(W)[None, :] // 2]


def source_rgb(i: int) -> np.ndarray:
    return cv2.imread(str(SEQUENCE / f"color_{i:02d}.jpg"), cv2.IMREAD_COLOR_RGB)


@pytest.fixture(scope="module")
def r3d_store(tmp_path_factory):
    """The whole sequence as an .r3d (numbering with a gap), read by capture.record3d into a store."""
    import asyncio

    root = tmp_path_factory.mktemp("r3d")
    path = write_r3d(root / "sequence.r3d", export_members())
    node, events = make_node("capture.record3d", root / "s.zarr", {"path": str(path)}, chunk_frames=17)
    outs = asyncio.run(run(node))
    return root / "s.zarr", outs, events


def test_record3d_reads_the_real_sequence(r3d_store):
    store_path, outs, events = r3d_store
    assert [(o.item.start, o.item.stop) for o in outs] == [(0, 17), (17, 34)]
    st = FrameStore.open(store_path, "r")
    assert st.read("raw/ok").tolist() == [True] * N_FRAMES
    assert numbering() != list(range(N_FRAMES))  # the export skips numbers
    assert st.read("raw/source_index").tolist() == numbering()
    assert st.read("raw/timestamp_us").tolist() == [n * 1_000_000 for n in numbering()]  # frameTimestamps
    depth, color = st.read("raw/depth"), st.read("raw/color")
    assert depth.shape == (N_FRAMES, H, W) and color.shape == (N_FRAMES, H, W, 3)
    for i in range(N_FRAMES):
        ref = reference_depth(i)
        measured = ref > 0
        assert np.abs(depth[i][measured] - ref[measured]).max() <= 1.0
        assert (depth[i][~measured] == 0).all()
        assert np.array_equal(color[i], source_rgb(i))
    # K is stored column-major: read the right way, the principal point is near the image centre
    k = st.attrs["intrinsics"]
    assert (k["fx"], k["cx"], k["cy"], k["width"], k["height"]) == (957.366, 358.7454, 640.242, W, H)
    assert st.attrs["depth_source"] == "truedepth"
    cap = st.attrs["capture"]
    assert cap["depth_size"] == [DW, DH] and cap["recording"]["size"] > 0
    assert [d for n, d in events if n == "capture.rejects"][-1]["kept"] == N_FRAMES


def test_folder_reads_the_published_sequence_with_no_conversion(r3d_store, tmp_path):
    """capture.folder on the sequence's own folder (info.json: intrinsics per stream, scale 0.0153):
    the same depth as through the Record3D export, and as the source."""
    import asyncio

    node, _ = make_node("capture.folder", tmp_path / "f.zarr", {"path": str(SEQUENCE)}, chunk_frames=17)
    asyncio.run(run(node))
    folder = FrameStore.open(tmp_path / "f.zarr", "r")
    r3d = FrameStore.open(r3d_store[0], "r")
    assert folder.read("raw/ok").tolist() == [True] * N_FRAMES
    assert np.array_equal(folder.read("raw/depth"), r3d.read("raw/depth"))
    assert np.array_equal(folder.read("raw/color"), r3d.read("raw/color"))
    ref = reference_depth(7)
    assert np.abs(folder.read("raw/depth", 7, 8)[0][ref > 0] - ref[ref > 0]).max() <= 1.0
    cap = folder.attrs["capture"]
    assert cap["depth_scale_mm"] == 0.0153 and cap["depth_size"] == [DW, DH]
    assert cap["camera_json"].endswith("info.json")
    assert folder.attrs["intrinsics"]["fx"] == 957.366 and "estimated" not in folder.attrs["intrinsics"]


def test_unzipped_export_without_depth_size_in_metadata(tmp_path):
    """The unzipped folder form, and a metadata without dw/dh: the depth size comes from the decoded
    length and the colour's aspect ratio."""
    from facesynth.capture.record3d.export import Record3dExport

    root = write_folder(tmp_path / "export", export_members(count=2, sizes_in_metadata=False))
    exp = Record3dExport(root)
    assert exp.infer_depth_shape() == (DH, DW)
    frames = list(exp.frames())
    assert [f.index for f in frames] == [0, 1]
    assert np.allclose(frames[1].depth_m * 1000, source_depth_mm(1), atol=1e-3)


def test_low_confidence_depth_can_be_dropped(tmp_path):
    from facesynth.capture.record3d.export import Record3dExport

    members = export_members(count=1)
    import lzfse

    conf = np.frombuffer(lzfse.decompress(members["rgbd/0.conf"]), np.uint8).reshape(DH, DW).copy()
    conf[:, : DW // 2] = 1  # the left half: medium confidence
    members["rgbd/0.conf"] = lzfse.compress(conf.tobytes())
    path = write_r3d(tmp_path / "c.r3d", members)
    kept = Record3dExport(path).read_frame(0, min_confidence=2).depth_m
    everything = Record3dExport(path).read_frame(0, min_confidence=0).depth_m
    src = source_depth_mm(0)
    assert (kept[:, : DW // 2] == 0).all() and np.allclose(kept[:, DW // 2:] * 1000, src[:, DW // 2:], atol=1e-3)
    assert np.allclose(everything * 1000, src, atol=1e-3)


async def test_a_store_is_tied_to_its_export(tmp_path):
    members = export_members(count=3)
    a = write_r3d(tmp_path / "a.r3d", members)
    other = dict(members)
    other["rgbd/1.jpg"] = (SEQUENCE / "color_20.jpg").read_bytes()  # another frame there
    b = write_r3d(tmp_path / "b.r3d", other)
    store = tmp_path / "s.zarr"
    node, _ = make_node("capture.record3d", store, {"path": str(a)})
    await run(node)
    before = FrameStore.open(store, "r").read("raw/color", 1, 2)
    node, _ = _reopen(store, "capture.record3d", {"path": str(b)})
    with pytest.raises(SourceMismatchError, match="different recording"):
        await run(node)
    assert np.array_equal(FrameStore.open(store, "r").read("raw/color", 1, 2), before)
    moved = tmp_path / "elsewhere" / "a.r3d"
    moved.parent.mkdir()
    a.rename(moved)
    node, _ = _reopen(store, "capture.record3d", {"path": str(moved)})
    await run(node)  # the same export, moved: accepted


def _reopen(store: Path, kind: str, params: dict):
    """A node on an existing store (make_node creates a new one)."""
    from facesynth.nodes import registry
    from facesynth.nodes.base import NodeContext

    events: list = []
    ctx = NodeContext(node_id="camera", kind=kind, store_path=str(store), chunk_frames=4, done={},
                      reporter=lambda name, data: events.append((name, data)))
    cls = registry.get(kind)
    return cls(cls.Params(**params), ctx), events


def test_params_need_exactly_one_of_path_or_device():
    from pydantic import ValidationError

    from facesynth.nodes import registry

    params = registry.get("capture.record3d").Params
    for bad in ({}, {"path": "x.r3d", "device": 0}):
        with pytest.raises(ValidationError, match="exactly one of `path`"):
            params(**bad)


@pytest.mark.slow
def test_record3d_then_landmarks_finds_the_face(tmp_path):
    """A real graph run (in-process backend): capture.record3d -> face.landmarks on 3 frames of the
    sequence (head turned to different sides): a face in each, its landmarks on the measured face."""
    from facesynth.runtime.api import run_graph

    chosen = [0, 12, 25]
    members = {"metadata": export_members(count=1)["metadata"]}
    all_members = export_members()
    for i in chosen:
        n = numbering()[i]
        for part in ("jpg", "depth"):
            members[f"rgbd/{n}.{part}"] = all_members[f"rgbd/{n}.{part}"]
    path = write_r3d(tmp_path / "three.r3d", members)
    graph = tmp_path / "g.yaml"
    graph.write_text(f"version: 1\nname: r3d_landmarks\nstore: {{path: {tmp_path / 's.zarr'}, chunk_frames: 3}}\n"
                     "nodes:\n  - id: camera\n    kind: capture.record3d\n"
                     f"    params: {{path: {path}, frames: {{train: 3, eval: 0}}}}\n"
                     "  - id: landmarks\n    kind: face.landmarks\n    inputs: {rgbd: camera/rgbd}\n")
    assert run_graph(str(graph), backend="local", restart=True).status == "ok"
    st = FrameStore.open(tmp_path / "s.zarr", "r")
    assert st.read("landmarks/ok").tolist() == [True, True, True]
    pts = st.read("landmarks/points")
    depth = st.read("raw/depth")
    for k in range(3):
        x, y = np.round(np.nanmedian(pts[k], axis=0)).astype(int)
        assert 0 <= x < W and 0 <= y < H
        # the landmarks' centre is on the face, which the sensor measured at about 370-430 mm
        patch = depth[k, max(y - 20, 0):y + 20, max(x - 20, 0):x + 20]
        assert 330 < np.median(patch[patch > 0]) < 470
