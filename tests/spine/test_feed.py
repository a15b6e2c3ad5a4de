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
from facesynth.runtime.backends import LocalBackend, WorkerLost
from facesynth.runtime.calls import ReplicaCalls
from facesynth.runtime.edges import Edge, NodeInbox
from facesynth.runtime.feed import CALL_WORK_S, MAX_BATCH, ReplicaFeeder, batch_size
from facesynth.runtime.plan import PlannedNode
from facesynth.runtime.run_ahead import RunAhead
from facesynth.store.frame_store import FrameStore


def test_batch_size_amortises_light_nodes_only():
    assert batch_size(None, 8, 1, live=False) == 1          # nothing measured yet
    assert batch_size(CALL_WORK_S * 2, 8, 1, live=False) == 1  # a heavy node: one item per call
    assert batch_size(0.001, 8, 1, live=False) == MAX_BATCH  # a light one: as many as allowed
    assert batch_size(CALL_WORK_S / 2, 8, 1, live=False) == 2  # about CALL_WORK_S of work per call
    assert batch_size(0.001, 3, 1, live=False) == 3         # no more than is queued ...
    assert batch_size(0.001, 6, 2, live=False) == 3         # ... and only this replica's share
    assert batch_size(0.001, 8, 1, live=True) == 1          # live: never a frame behind another


class CountingBackend(LocalBackend):
    """The in-process backend, counting the calls made per method and the items of each
    batch call; `lose_first` makes the first batch call fail as if the worker process had
    died holding it."""

    def __init__(self, lose_first: bool = False, lose_on: int | None = None) -> None:
        self.calls: dict[str, int] = {}
        self.sizes: list[int] = []
        self.lose_first = lose_first
        self.lose_on = lose_on  # a chunk start whose every delivery kills the worker
        self.deliveries: dict[int, int] = {}  # chunk start -> process_batch calls that carried it

    async def call(self, host, method, *args):
        self.calls[method] = self.calls.get(method, 0) + 1
        if method == "process_batch":
            self.sizes.append(len(args[0]))
            for _port, item in args[0]:
                self.deliveries[item.start] = self.deliveries.get(item.start, 0) + 1
            if any(item.start == self.lose_on for _port, item in args[0]):
                raise WorkerLost("the worker died")
        if method == "process_batch" and self.lose_first:
            self.lose_first = False
            raise WorkerLost("the worker died")
        return await super().call(host, method, *args)


def fed_node(tmp_path: Path, chunks: int, params: dict, max_restarts: int = 3, lose_first: bool = False,
             lose_on: int | None = None):
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
    backend = CountingBackend(lose_first, lose_on)
    host = backend.create(pn.spec.kind, params, ctx, None, 0, max_restarts, False)
    return pn, edge, backend, host


async def feed(tmp_path: Path, chunks: int, params: dict, max_restarts: int = 3, lose_first: bool = False):
    pn, edge, backend, host = fed_node(tmp_path, chunks, params, max_restarts, lose_first)
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
    chunks = 3 * MAX_BATCH
    pn, backend, finished, errors = await feed(tmp_path, chunks, {})
    assert finished == [f"bench:{8 * c}-{8 * c + 8}" for c in range(chunks)]
    assert backend.calls == {"process_batch": 3, "close": 1} and errors == []
    assert pn.stats.calls == 3
    out = FrameStore.open(tmp_path / "s.zarr", "r").read("blur/frames")
    np.testing.assert_array_equal(out, bench_work(bench_frames(0, 8 * chunks, 16, 16, 0)))


async def test_a_failure_inside_a_batch_is_charged_to_its_own_chunk(tmp_path):
    pn, backend, finished, errors = await feed(tmp_path, 8, {"fail_once_on": [16]})
    assert finished == [f"bench:{8 * c}-{8 * c + 8}" for c in range(8)]  # order kept through the retry
    assert [e["chunk"] for e in errors] == ["bench:16-24"] and "injected failure" in errors[0]["error"]
    assert (pn.stats.errors, pn.stats.restarts) == (1, 1)
    assert backend.calls["restart"] == 1
    # all 8 in one call; 16-24 retried on its own; the 5 after it, never run, sent again together
    assert backend.sizes == [8, 1, 5]


async def test_a_worker_lost_with_a_batch_charges_the_batch_once_then_retries_each(tmp_path):
    pn, backend, finished, errors = await feed(tmp_path, 6, {}, lose_first=True)
    assert finished == [f"bench:{8 * c}-{8 * c + 8}" for c in range(6)]
    assert [e["chunk"] for e in errors] == [",".join(f"bench:{8 * c}-{8 * c + 8}" for c in range(6))]
    assert "worker lost" in errors[0]["error"] and (pn.stats.errors, pn.stats.restarts) == (1, 1)
    assert backend.sizes == [6, 1, 1, 1, 1, 1, 1]  # then each alone: a chunk that kills its worker is found out
    out = FrameStore.open(tmp_path / "s.zarr", "r").read("blur/frames")
    np.testing.assert_array_equal(out, bench_work(bench_frames(0, 48, 16, 16, 0)))


async def test_a_batch_lost_with_its_worker_keeps_its_items_budgets(tmp_path):
    """A chunk that kills its worker every time gets max_restarts + 1 deliveries in all, the
    one inside the lost batch included: retrying it alone does not start its count over."""
    pn, edge, backend, host = fed_node(tmp_path, 6, {}, max_restarts=2, lose_on=16)
    for c in range(6):
        await pn.inbox.put(edge, ChunkRef("bench", 8 * c, 8 * c + 8))
    await pn.inbox.close(edge)
    pn.stats.items, pn.stats.busy_s = 1, 0.001  # as if measured at 1 ms per item: one batch of 6
    errors: list[dict] = []

    async def done(key, outputs):
        pass

    with pytest.raises(RunError) as ei:
        await ReplicaFeeder(pn, host, ReplicaCalls(backend, errors.append), done, done, call_work_s=1e3).run()
    assert (ei.value.node, ei.value.chunk) == ("blur", "bench:16-24")
    assert backend.deliveries[16] == 3  # max_restarts + 1: in the batch, then twice alone
    assert [(e["chunk"].count(","), e["restart"], e["fatal"]) for e in errors] == [
        (5, 1, False), (0, 2, False), (0, 3, True)]
    assert errors[1]["chunk"] == errors[2]["chunk"] == "bench:16-24"


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


class RebuildingBackend(LocalBackend):
    """The worker dies holding chunk 0; the call for chunk 8, already sent, comes back late
    (as a call can reach Ray's rebuilt worker after what was sent later). Logs when calls come
    back and when the replica is told the run's progress."""

    def __init__(self) -> None:
        self.log: list[str] = []

    async def call(self, host, method, *args):
        if method == "process_batch":
            start = args[0][0][1].start
            if start == 0 and "lost 0" not in self.log:
                self.log.append("lost 0")
                raise WorkerLost("the worker died")
            if start == 8 and "back 8" not in self.log:
                await asyncio.sleep(0.3)
                self.log.append("back 8")
        elif method == "set_progress":
            self.log.append("told progress")
        return await super().call(host, method, *args)


async def test_a_restarted_replica_is_told_the_progress_only_after_calls_sent_before_are_back(tmp_path):
    pn, edge, _backend, host = fed_node(tmp_path, 3, {})
    for c in range(3):
        await pn.inbox.put(edge, ChunkRef("bench", 8 * c, 8 * c + 8))
    await pn.inbox.close(edge)
    backend, finished, errors = RebuildingBackend(), [], []

    async def told(pn, handle):
        await calls.send(handle, "set_progress", {})

    async def done(key, outputs):
        finished.append(key)

    calls = ReplicaCalls(backend, errors.append, on_restarted=told)
    await ReplicaFeeder(pn, host, calls, done, done).run()  # nothing measured: one chunk per call, two out
    assert backend.log == ["lost 0", "back 8", "told progress"]
    assert [e["chunk"] for e in errors] == ["bench:0-8"] and pn.stats.restarts == 1
    assert finished == ["bench:0-8", "bench:8-16", "bench:16-24"]
