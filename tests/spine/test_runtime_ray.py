"""The same graphs on a real embedded Ray: same result as the local backend; killed workers recover."""
from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from spine_helpers import expected_blur2

from facesynth.nodes.base import ChunkRef, NodeContext
from facesynth.runtime.api import run_graph
from facesynth.runtime.backends import WorkerLost, wait_alive
from facesynth.store.frame_store import FrameStore

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_session():
    pytest.importorskip("ray")
    from facesynth.runtime.backends import RayBackend

    backend = RayBackend()  # embedded, on loopback, as `facesynth graph run` starts it
    yield backend
    backend.shutdown()


def test_ray_and_local_give_the_same_store(tmp_path, make_graph, ray_session):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    run_graph(make_graph(tmp_path / "a", frames=40, replicas=2), backend="local")
    res = run_graph(make_graph(tmp_path / "b", frames=40, replicas=2), backend="ray", shutdown=False)
    assert res.status == "ok"
    a = FrameStore.open(tmp_path / "a" / "store.zarr", "r")
    b = FrameStore.open(tmp_path / "b" / "store.zarr", "r")
    assert a.names() == b.names() == ["bench/frames", "blur/frames", "blur2/frames"]
    for name in a.names():
        np.testing.assert_array_equal(a.read(name), b.read(name))
    np.testing.assert_array_equal(b.read("blur2/frames"), expected_blur2(40))
    assert res.stats["nodes"]["blur"]["replicas"] == 2
    # the cluster's metrics actor mirrors the run log
    actor = ray_session.ray.get_actor("facesynth_metrics", namespace="facesynth")
    records = ray_session.ray.get(actor.snapshot.remote())
    assert records[0]["type"] == "run_start" and records[-1]["type"] == "run_end"


def test_killed_worker_is_restarted_and_nothing_is_lost_or_duplicated(tmp_path, make_graph, ray_session):
    res = run_graph(make_graph(tmp_path, frames=48, replicas=2, blur="die_once_on: [16]"), backend="ray",
                    shutdown=False)
    blur = res.stats["nodes"]["blur"]
    assert blur["restarts"] == 1 and blur["items"] == 6
    errors = [json.loads(x) for x in res.run_log.read_text().splitlines() if '"type":"error"' in x]
    # a worker that dies holding a batch charges the loss to the batch's chunks together
    assert len(errors) == 1 and "bench:16-24" in errors[0]["chunk"].split(",") and "worker lost" in errors[0]["error"]
    np.testing.assert_array_equal(FrameStore.open(tmp_path / "store.zarr", "r").read("blur2/frames"),
                                  expected_blur2(48))
    lines = (tmp_path / "store.zarr" / "_progress" / "blur.jsonl").read_text().splitlines()
    keys = [json.loads(x)["key"] for x in lines]
    assert sorted(keys) == sorted(set(keys)) and len(keys) == 6  # each chunk recorded exactly once


def test_a_replica_outlives_any_number_of_worker_deaths_each_retry_fixes(tmp_path, make_graph, ray_session):
    """Four deaths of one replica's worker, each on another chunk, with max_restarts 3: the
    budget is per item, so Ray restarts the actor every time and the run completes."""
    res = run_graph(make_graph(tmp_path, frames=48, blur="die_once_on: [0, 8, 16, 24]", max_restarts=3),
                    backend="ray", shutdown=False)
    assert res.status == "ok" and res.stats["nodes"]["blur"]["restarts"] == 4
    np.testing.assert_array_equal(FrameStore.open(tmp_path / "store.zarr", "r").read("blur2/frames"),
                                  expected_blur2(48))


def test_a_restarted_source_skips_the_chunks_it_emitted_in_this_run(tmp_path, make_graph, ray_session):
    """The source's worker dies before chunk 40: Ray rebuilds it from its start-up arguments,
    and the supervisor tells it what was already emitted, so no chunk is rendered twice."""
    res = run_graph(make_graph(tmp_path, frames=64, src="die_once_on: [40]"), backend="ray", shutdown=False)
    assert res.status == "ok" and res.stats["nodes"]["src"]["restarts"] == 1
    renders = (tmp_path / "store.zarr" / "_faults" / "src-renders.log").read_text().split()
    assert sorted(renders) == sorted(f"bench:{s}-{s + 8}" for s in range(0, 64, 8))  # each exactly once
    np.testing.assert_array_equal(FrameStore.open(tmp_path / "store.zarr", "r").read("blur2/frames"),
                                  expected_blur2(64))


def test_a_rebuilt_worker_refuses_work_until_it_is_told_the_runs_progress(tmp_path, ray_session):
    """A call sent after a worker died reaches the worker Ray rebuilt: it must not run there
    before the supervisor has brought that worker up to date (else its death is charged to
    nobody, and a source redoes what it emitted)."""
    FrameStore.create(tmp_path / "store.zarr")
    ctx = NodeContext(node_id="blur", kind="bench.passthrough", store_path=str(tmp_path / "store.zarr"))
    handle = ray_session.create("bench.passthrough", {"die_once_on": [0, 8]}, ctx, None, 0, 3, spread=False)

    async def calls() -> tuple:
        one = ChunkRef("bench", 0, 8), ChunkRef("bench", 8, 16)
        with pytest.raises(WorkerLost):
            await ray_session.call(handle, "process_batch", [("frames", one[0])])
        refused = await ray_session.call(handle, "process_batch", [("frames", one[1])])
        await wait_alive(ray_session, handle)
        await ray_session.call(handle, "set_progress", {})
        with pytest.raises(WorkerLost):  # now it runs, and chunk 8 kills the worker as it should
            await ray_session.call(handle, "process_batch", [("frames", one[1])])
        return refused

    refused = asyncio.run(calls())
    assert refused["ok"] is False and refused["stale"] is True and "progress" in refused["error"]
    markers = sorted(p.name for p in (tmp_path / "store.zarr" / "_faults").iterdir())
    assert markers == ["blur-die-0", "blur-die-8"]
    ray_session.ray.kill(handle)
