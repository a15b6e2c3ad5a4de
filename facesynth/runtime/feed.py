"""Feed one consumer replica from its node's inbox: batched calls, two calls in flight.

A call to a Ray actor costs about a millisecond of CPU on each side here, as much as the
work of a light node on a small chunk. So when items wait in the queue, one call carries
several of them (enough for about CALL_WORK_S of the node's work, at most MAX_BATCH), and the
next call is sent before the last one is back (PIPELINE_DEPTH) so the replica never waits for
the round trip. Heavy nodes (over ~70 ms per item) get one item per call; live nodes get one
item and one call at a time, so no frame waits behind another. Results are recorded and
routed in the order the items came.
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from facesynth.nodes.base import ChunkRef
from facesynth.runtime.calls import ReplicaCalls

PIPELINE_DEPTH = 2   # calls a batch replica has in flight
MAX_BATCH = 8        # items per call at most
CALL_WORK_S = 0.1    # aim: a call carries about this much of the node's work

Item = tuple[str, Any, "str | None"]  # (port, item, progress key)


def batch_size(per_item_s: float | None, queued: int, replicas: int, live: bool,
               call_work_s: float = CALL_WORK_S) -> int:
    """Items for the next call: enough work to amortise the call, what the queue holds,
    and no more than this replica's share of it."""
    if live or not per_item_s or per_item_s <= 0:
        return 1
    want = min(MAX_BATCH, max(1, round(call_work_s / per_item_s)))
    share = max(1, -(-queued // max(1, replicas)))
    return max(1, min(want, share))


def chunk_label(items: list[Item]) -> str:
    return ",".join(key or type(item).__name__ for _port, item, key in items)


@dataclass
class Sent:
    items: list[Item]
    epoch: int
    at: float
    result: asyncio.Future


class ReplicaFeeder:
    """Takes items from `pn.inbox` and sends them to replica `handle` until end of stream.

    `done(key, outputs)` records and routes one finished item; `skip(key)` routes an item the
    progress log says was done in an earlier run."""

    def __init__(self, pn: Any, handle: Any, calls: ReplicaCalls,
                 done: Callable[[str | None, list], Awaitable[None]],
                 skip: Callable[[str], Awaitable[None]], call_work_s: float = CALL_WORK_S):
        self.pn, self.handle, self.calls = pn, handle, calls
        self.call_work_s = call_work_s
        self.done, self.skip = done, skip
        self.depth = 1 if pn.cls.live else PIPELINE_DEPTH
        self.pending: deque[Sent] = deque()
        self._last_back = 0.0

    def _per_item_s(self) -> float | None:
        s = self.pn.stats
        worked = s.items - s.skipped
        return s.busy_s / worked if worked > 0 else None

    async def run(self) -> None:
        pn = self.pn
        try:
            while True:
                n = batch_size(self._per_item_s(), pn.inbox.queued, pn.replicas, pn.cls.live, self.call_work_s)
                got = await pn.inbox.get_batch(n)
                if not got:
                    break
                items: list[Item] = []
                for port, item in got:
                    key = item.key if isinstance(item, ChunkRef) else None
                    if key is not None and pn.recorded and key in pn.done:
                        await self._drain()  # keep the order: what was sent before goes first
                        await self.skip(key)
                    else:
                        items.append((port, item, key))
                if items:
                    self._send(items)
                    if len(self.pending) >= self.depth:
                        await self._settle_oldest()
            await self._drain()
        finally:
            for sent in self.pending:
                sent.result.cancel()

    def _send(self, items: list[Item]) -> None:
        self.pn.stats.calls += 1
        fut = asyncio.ensure_future(self.calls.send(self.handle, "process_batch", pairs(items)))
        self.pending.append(Sent(items, self.calls.epoch(self.handle), time.perf_counter(), fut))

    async def _drain(self) -> None:
        while self.pending:
            await self._settle_oldest()

    async def _settle_oldest(self) -> None:
        sent = self.pending.popleft()
        res = await sent.result
        now = time.perf_counter()
        self.pn.stats.busy_s += now - max(sent.at, self._last_back)  # time with a call out
        self._last_back = now
        await self._settle(sent.items, res, sent.epoch)

    async def _settle(self, items: list[Item], res: dict, epoch: int) -> None:
        """Record what succeeded; retry what failed, charged to the item that failed."""
        pn, handle, calls = self.pn, self.handle, self.calls
        while True:
            results = res.get("results", [])
            for (_port, _item, key), outputs in zip(items, results):
                await self.done(key, outputs)
            if res.get("ok"):
                return
            rest = items[len(results):]
            if res.get("lost") and len(rest) > 1:
                # the worker died holding several items: which one killed it is unknown, so the
                # loss is charged to each of them, and each is then retried on its own with
                # what is left of its budget
                await calls.recover(pn, handle, res, epoch, chunk_label(rest))
                for one in rest:
                    res = await calls.call(pn, handle, "process_batch", pairs([one]), chunk=chunk_label([one]))
                    await self.done(one[2], res["results"][0])
                return
            # rest[0] failed (or was the only one lost): retried alone, charged to it
            one = await calls.settle(pn, handle, res, epoch, "process_batch", (pairs(rest[:1]),), chunk_label(rest[:1]))
            await self.done(rest[0][2], one["results"][0])
            items = rest[1:]  # never ran: sent again together
            if not items:
                return
            pn.stats.calls += 1
            epoch = calls.epoch(handle)
            res = await calls.send(handle, "process_batch", pairs(items))


def pairs(items: list[Item]) -> list[tuple[str, Any]]:
    return [(port, item) for port, item, _key in items]
