"""The same graphs on a real embedded Ray: same result as the local backend; killed workers recover."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from spine_helpers import expected_blur2

from facesynth.runtime.api import run_graph
from facesynth.store.frame_store import FrameStore

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray.init(num_cpus=2, include_dashboard=False, namespace="facesynth", _node_ip_address="127.0.0.1",
             configure_logging=False)
    yield ray
    ray.shutdown()


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
    actor = ray_session.get_actor("facesynth_metrics", namespace="facesynth")
    records = ray_session.get(actor.snapshot.remote())
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
