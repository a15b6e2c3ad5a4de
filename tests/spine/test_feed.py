"""Batched, pipelined calls to a replica: batch sizes, order, failure attribution, run-ahead."""
from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from facesynth.errors import RunError
from facesynth.graph.spec import NodeSpec
from facesynth.nodes.base import ChunkRef, NodeContext
from facesynth.nodes.bench import BenchPassthrough, bench_frames, bench_work
from facesynth.runtime.backends import LocalBackend
from facesynth.runtime.calls import ReplicaCalls
from facesynth.runtime.edges import Edge, NodeInbox
from facesynth.runtime.feed import MAX_BATCH, ReplicaFeeder, batch_size
from facesynth.runtime.plan import PlannedNode
from facesynth.runtime.run_ahead import RunAhead
from facesynth.store.frame_store import FrameStore


def test_batch_size_amortises_light_nodes_only():
    assert batch_size(None, 8, 1, live=False) == 1          # nothing measured yet
    assert batch_size(0.200, 8, 1, live=False) == 1         # a heavy node: one item per call
    assert batch_size(0.001, 8, 1, live=False) == MAX_BATCH  # a light one: as many as allowed
    assert batch_size(0.020, 8, 1, live=False) == 2         # ~50 ms of work per call
    assert batch_size(0.001, 3, 1, live=False) == 3         # no more than is queued ...
    assert batch_size(0.001, 4, 2, live=False) == 2         # ... and only this replica's share
    assert batch_size(0.001, 8, 1, live=True) == 1          # live: never a frame behind another


class CountingBackend(LocalBackend):
    """The in-process backend, counting the calls made per method."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    async def call(self, host, method, *args):
        self.calls[method] = self.calls.get(method, 0) + 1
        return await super().call(host, method, *args)


def fed_node(tmp_path: Path, chunks: int, params: dict, max_restarts: int = 3):
    """A bench.passthrough replica in this process with `chunks` chunks of 8 frames queued."""
    store = FrameStore.create(tmp_path / "s.zarr", chunk_frames=8)
    store.ensure_array("bench/frames", 8 * chunks, (16, 16), np.uint8)
    store.write("bench/frames", 0, bench_frames(0, 8 * chunks, 16, 16, 0))
    spec = NodeSpec.model_validate({"id": "blur", "kind": "bench.passthrough", "params": params,
                                    "inputs": {"frames": "src/frames"}})
    pn = PlannedNode(spec, BenchPassthrough, replicas=1, max_restarts=max_restarts)
    edge = Edge(id="src/frames->blur/frames", src="src/frames", dst="blur/frames", bound=chunks, policy="block")
    pn.inbox = NodeInbox([edge])
    ctx = NodeContext(node_id="blur", kind=pn.spec.kind, replica=0, replicas=1, store_path=str(tmp_path / "s.zarr"),
                      chunk_frames=8, run_dir=str(tmp_path), graph_name="t", restart=False, done={})
    backend = CountingBackend()
    host = backend.create(pn.spec.kind, params, ctx, None, 0, max_restarts, False)
    return pn, edge, backend, host


async def feed(tmp_path: Path, chunks: int, params: dict, max_restarts: int = 3):
    pn, edge, backend, host = fed_node(tmp_path, chunks, params, max_restarts)
    for c in range(chunks):
        await pn.inbox.put(edge, ChunkRef("bench", 8 * c, 8 * c + 8))
    await pn.inbox.close(edge)
    pn.stats.items, pn.stats.busy_s = 1, 0.001  # as if measured at 1 ms per item
    finished: list[str | None] = []
    errors: list[dict] = []

    async def done(key, outputs):
        finished.append(key)
        assert outputs[0][1] == ChunkRef("blur", *map(int, key.split(":")[1].split("-")))

    async def skip(key):
        raise AssertionError("nothing was done before")

    calls = ReplicaCalls(backend, errors.append)
    try:
        await ReplicaFeeder(pn, host, calls, done, skip, call_work_s=1e3).run()  # batches of MAX_BATCH
    finally:
        await backend.call(host, "close")
    return pn, backend, finished, errors


async def test_items_go_in_batches_and_come_back_in_order(tmp_path):
    pn, backend, finished, errors = await feed(tmp_path, 12, {})
    assert finished == [f"bench:{8 * c}-{8 * c + 8}" for c in range(12)]
    assert backend.calls == {"process_batch": 12 // MAX_BATCH, "close": 1} and errors == []
    out = FrameStore.open(tmp_path / "s.zarr", "r").read("blur/frames")
    np.testing.assert_array_equal(out, bench_work(bench_frames(0, 96, 16, 16, 0)))


async def test_a_failure_inside_a_batch_is_charged_to_its_own_chunk(tmp_path):
    pn, backend, finished, errors = await feed(tmp_path, 8, {"fail_once_on": [16]})
    assert finished == [f"bench:{8 * c}-{8 * c + 8}" for c in range(8)]  # order kept through the retry
    assert [e["chunk"] for e in errors] == ["bench:16-24"] and "injected failure" in errors[0]["error"]
    assert (pn.stats.errors, pn.stats.restarts) == (1, 1)
    assert backend.calls["restart"] == 1
    # 16-24 retried on its own; 24-32, never run in the failed batch, sent again on its own
    assert backend.calls["process"] == 2


async def test_spent_retries_inside_a_batch_fail_the_run_naming_the_chunk(tmp_path):
    with pytest.raises(RunError) as ei:
        await feed(tmp_path, 8, {"fail_once_on": [40]}, max_restarts=0)
    assert (ei.value.node, ei.value.chunk) == ("blur", "bench:40-48")


async def test_run_ahead_is_bounded_hands_over_what_is_ready_and_raises_after_the_items():
    produced: list[int] = []

    async def source(n: int, fail_at: int | None = None):
        for i in range(n):
            if i == fail_at:
                raise ValueError(f"broken at {i}")
            produced.append(i)
            yield i

    ahead = RunAhead(source(10).__aiter__(), limit=3)
    await asyncio.sleep(0.05)
    assert produced == [0, 1, 2]                      # stopped at the limit: backpressure holds
    assert await ahead.take(2) == [0, 1]
    await asyncio.sleep(0.05)
    assert await ahead.take(10) == [2, 3, 4]           # at most `limit` were waiting
    got = []
    while batch := await ahead.take(4):
        got += batch
    assert got == [5, 6, 7, 8, 9] and await ahead.take(4) == []
    failing = RunAhead(source(5, fail_at=2).__aiter__(), limit=4)
    await asyncio.sleep(0.05)
    assert await failing.take(4) == [0, 1]            # the items before the failure come first ...
    with pytest.raises(ValueError, match="broken at 2"):
        await failing.take(4)                         # ... then the failure itself
