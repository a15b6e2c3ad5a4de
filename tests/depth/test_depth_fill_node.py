"""depth.fill and store.chunks through the real runtime: fill/depth written per chunk, reruns skip,
and (Ray) a replica killed mid-run loses nothing and writes nothing twice."""
from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import numpy as np
import pytest

from facesynth.graph.checks import load_graph
from facesynth.depth.nodes import DepthFillParams, fill_chunk
from facesynth.nodes.store_source import chunks_with_frames
from facesynth.runtime.api import run_graph
from facesynth.store.frame_store import FrameStore
from facesynth.depth.testdata_realdepth import face_like_crops, load_open3d, realdata_root

REPO = Path(__file__).resolve().parents[2]
REAL = realdata_root()
GRAPH = REPO / "graphs" / "fill_cluster.yaml"
pytestmark = pytest.mark.skipif(not (REAL / "nyu_tum_sun_redwood_open3d").is_dir(),
                                reason=f"real sensor data not found at {REAL.resolve()}")


def make_store(path: Path, frames: int = 24, size: int = 128, chunk: int = 4, skip_chunk: int | None = 1):
    """A store holding crop/* like face.crop writes, cut from real depth frames."""
    c = face_like_crops(load_open3d(REAL), frames, size, 0.04, seed=5)
    ok = np.ones(frames, bool)
    if skip_chunk is not None:
        ok[skip_chunk * chunk:(skip_chunk + 1) * chunk] = False  # a chunk where no face was found
    store = FrameStore.create(path, chunk_frames=chunk)
    for name, data, shape, dtype in (("crop/color", c.color, (size, size, 3), np.uint8),
                                     ("crop/depth", c.depth, (size, size), np.uint16),
                                     ("crop/mask", c.mask, (size, size), bool),
                                     ("crop/ok", ok, (), bool)):
        store.ensure_array(name, frames, shape, dtype)
        store.write(name, 0, data)
    return c, ok


def expected_fill(c, ok) -> np.ndarray:
    out, _ = fill_chunk(c.color, c.depth, c.mask, ok, DepthFillParams())
    return out


def overrides(store: Path, chunk: int = 4, replicas: int = 2) -> list[str]:
    return [f"store.path={store}", f"store.chunk_frames={chunk}", f"nodes.fill.replicas={replicas}"]


def test_chunks_with_frames_skips_empty_chunks():
    ok = np.array([0, 0, 1, 0, 0, 0, 0, 0, 1, 1], bool)
    refs = chunks_with_frames(ok, 4, "crop")
    assert [(r.start, r.stop) for r in refs] == [(0, 4), (8, 10)]


def test_node_writes_fill_depth_for_every_chunk_and_rerun_skips(tmp_path):
    store_path = tmp_path / "ds.zarr"
    c, ok = make_store(store_path)
    res = run_graph(str(GRAPH), overrides=overrides(store_path), backend="local")
    assert res.status == "ok"
    assert res.stats["nodes"]["fill"]["items"] == 5  # 6 chunks, one without faces
    s = FrameStore.open(store_path, "r")
    got = s.read("fill/depth")
    np.testing.assert_array_equal(got, expected_fill(c, ok))
    np.testing.assert_array_equal(s.read("fill/ok"), ok)
    # filled: removed pixels got depth back; measured pixels kept; nothing outside the face
    assert (got[ok][c.removed[ok]] > 0).mean() > 0.9
    np.testing.assert_array_equal(got[ok][c.mask[ok]], c.depth[ok][c.mask[ok]])
    assert not (got[ok] & ~c.silhouette[ok]).any()
    # the chunk without faces stays empty
    assert not got[4:8].any()
    res2 = run_graph(str(GRAPH), overrides=overrides(store_path), backend="local")
    assert res2.stats["nodes"]["fill"]["skipped"] == 5


def test_missing_group_is_a_clear_error(tmp_path):
    store_path = tmp_path / "empty.zarr"
    FrameStore.create(store_path, chunk_frames=4)
    from facesynth.errors import RunError

    with pytest.raises(RunError, match="no 'crop/ok'"):
        run_graph(str(GRAPH), overrides=overrides(store_path) + ["defaults.max_restarts=0"], backend="local")


@pytest.mark.ray
def test_killed_replica_loses_nothing_and_writes_nothing_twice(tmp_path):
    ray = pytest.importorskip("ray")
    from facesynth.runtime.backends import RayBackend
    from facesynth.runtime.supervisor import Supervisor

    store_path = tmp_path / "ds.zarr"
    c, ok = make_store(store_path, frames=32, size=96, chunk=2, skip_chunk=None)
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    backend = RayBackend()
    try:
        sup = Supervisor(load_graph(str(GRAPH), overrides(store_path, chunk=2)), backend)
        killed: list[int] = []

        async def killer():
            fill = sup.plan.nodes["fill"]
            while fill.stats.items < 1:
                await asyncio.sleep(0.005)
            ray.kill(fill.handles[0], no_restart=False)  # the worker process dies; Ray restarts it
            killed.append(fill.stats.items)

        async def both():
            task = asyncio.create_task(killer())
            res = await sup.run()
            await asyncio.wait_for(task, 5)
            return res

        res = asyncio.run(both())
    finally:
        backend.shutdown()
    assert killed and killed[0] < 16, "the replica was not killed mid-run"
    fill = res.stats["nodes"]["fill"]
    assert fill["restarts"] >= 1 and fill["items"] == 16
    np.testing.assert_array_equal(FrameStore.open(store_path, "r").read("fill/depth"), expected_fill(c, ok))
    keys = [json.loads(x)["key"] for x in (store_path / "_progress" / "fill.jsonl").read_text().splitlines()]
    assert len(keys) == 16 and len(set(keys)) == 16  # each chunk recorded exactly once
