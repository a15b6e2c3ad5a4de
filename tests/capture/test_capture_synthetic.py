"""capture.synthetic writes whole chunks of rendered frames into raw/* and resumes without re-rendering."""
from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from facesynth.errors import StoreError
from facesynth.capture.synthetic import nodes as cs
from facesynth.nodes.base import ChunkRef, NodeContext
from facesynth.nodes.registry import get
from facesynth.store.frame_store import FrameStore
from facesynth.capture.synthetic.head import Intrinsics, render_frame, sample_sequence

SMALL = {"frames": {"train": 14, "eval": 3}, "width": 160, "height": 120, "seed": 3, "hole_fraction": 0.05}


def make_node(tmp_path, params: dict, done: dict | None = None, events: list | None = None):
    path = tmp_path / "s.zarr"
    FrameStore.create(path, chunk_frames=8)
    ctx = NodeContext(node_id="camera", kind="capture.synthetic", store_path=str(path), chunk_frames=8,
                      done=done or {}, reporter=(lambda name, data: events.append((name, data))) if events is not None else None)
    cls = get("capture.synthetic")
    return cls(cls.Params(**params), ctx), path


async def run(node) -> list:
    await node.setup()
    try:
        return [out async for out in node.produce()]
    finally:
        await node.close()


def test_registered_with_defaults_and_checked_params():
    cls = get("capture.synthetic")
    assert cls is cs.SyntheticSource and cls.is_source() and list(cls.outputs) == ["rgbd"]
    p = cls.Params()
    assert (p.frames.train, p.frames.eval, p.width, p.height, p.seed, p.fps) == (240, 40, 640, 480, 0, 30)
    assert 0 < p.hole_fraction < 0.1
    for bad in ({"hole_fraction": 0.6}, {"frames": {"train": 0}}, {"frames": {"eval": -1}}, {"fps": 0}, {"colour": 1}):
        with pytest.raises(ValidationError):
            cls.Params(**bad)


def test_split_plan_sends_every_7th_frame_to_eval_until_full():
    s = cs.split_plan(240, 40)
    assert len(s) == 280 and s.sum() == 40
    assert np.flatnonzero(s).tolist() == list(range(6, 280, 7))
    s = cs.split_plan(14, 3)
    assert s.sum() == 3 and s[6] == s[13] == 1


async def test_node_writes_chunks_of_frames_landmarks_and_attrs(tmp_path):
    events: list = []
    node, path = make_node(tmp_path, SMALL, events=events)
    outs = await run(node)
    assert [(o.port, o.item, o.key) for o in outs] == [
        ("rgbd", ChunkRef("raw", a, b), f"raw:{a}-{b}") for a, b in ((0, 8), (8, 16), (16, 17))]
    st = FrameStore.open(path, "r")
    color, depth = st.read("raw/color"), st.read("raw/depth")
    assert color.shape == (17, 120, 160, 3) and color.dtype == np.uint8
    assert depth.shape == (17, 120, 160) and depth.dtype == np.uint16
    assert st.read("raw/ok").all()
    assert st.read("raw/split").tolist() == cs.split_plan(14, 3).tolist()
    assert st.read("raw/timestamp_us")[[0, 1, 16]].tolist() == [0, 33333, 533333]
    lm = st.read("raw/landmarks_true")
    assert lm.shape == (17, 70, 2) and np.isfinite(lm).all()
    # the stored frames are exactly what the renderer gives for this seed and frame index
    cam = Intrinsics.default(160, 120)
    seq = sample_sequence(3, 17)
    for i in (0, 9, 16):
        f = render_frame(seq[i], cam, identity=3, hole_fraction=0.05)
        np.testing.assert_array_equal(color[i], f.color)
        np.testing.assert_array_equal(depth[i], f.depth)
        np.testing.assert_array_equal(lm[i], f.landmarks)
    face = depth[(depth > 0) & (depth < 900)]
    assert 500 < np.median(face) < 700
    assert np.abs(np.diff(lm[:, 30], axis=0)).max() < 3.0  # consecutive frames move a little
    attrs = st.attrs
    assert attrs["intrinsics"] == {"fx": 150.0, "fy": 150.0, "cx": 79.5, "cy": 59.5, "width": 160, "height": 120}
    cap = attrs["capture"]
    assert (cap["source"], cap["seed"], cap["fps"], cap["frames"]) == ("synthetic", 3, 30.0, {"train": 14, "eval": 3})
    names = [n for n, _ in events]
    assert names[0] == "plan" and events[0][1]["total"] == 3
    progress = [d for n, d in events if n == "capture.progress"]
    assert progress and progress[-1]["frames"] == 17 and progress[-1]["total"] == 17


async def test_resume_re_yields_done_chunks_without_rendering(tmp_path, monkeypatch):
    node, path = make_node(tmp_path, SMALL)
    first = await run(node)
    before = FrameStore.open(path, "r").read("raw/color").copy()

    rendered: list[int] = []
    real = cs.render_chunk

    def counting(params, *a, **k):
        rendered.append(len(params))
        return real(params, *a, **k)

    monkeypatch.setattr(cs, "render_chunk", counting)
    done = {o.key: [{"port": "rgbd", "chunk": o.item.to_dict()}] for o in first[:2]}
    node2, _ = make_node(tmp_path, SMALL, done=done)
    second = await run(node2)
    assert rendered == [1]                                   # only the last chunk (one frame) again
    assert [(o.item, o.key) for o in second] == [(o.item, o.key) for o in first]
    np.testing.assert_array_equal(FrameStore.open(path, "r").read("raw/color"), before)


async def test_resume_with_other_settings_is_refused(tmp_path):
    node, _ = make_node(tmp_path, SMALL)
    first = await run(node)
    done = {o.key: [{"port": "rgbd", "chunk": o.item.to_dict()}] for o in first[:1]}
    node2, _ = make_node(tmp_path, {**SMALL, "seed": 4}, done=done)
    with pytest.raises(StoreError, match=r"changed: seed\).*--restart"):
        await run(node2)
