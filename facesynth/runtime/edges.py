"""Bounded edges between nodes, with backpressure and drop policies.

Each edge is a FIFO of at most `bound` items in the consumer's inbox. `block` makes the
producer wait for room (backpressure all the way up to the source); `drop_oldest` evicts
the oldest queued item; `latest` keeps only the newest item (live graphs never queue stale
frames). End-of-stream is never dropped and always arrives after the items before it.
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

EOS = object()  # end-of-stream marker inside an inbox


@dataclass
class EdgeStats:
    sent: int = 0
    drops: int = 0
    blocked_s: float = 0.0
    max_depth: int = 0


@dataclass
class Edge:
    """One producer-port -> consumer-port connection."""

    id: str
    src: str          # "node/port"
    dst: str          # "node/port"
    bound: int
    policy: str
    items: deque = field(default_factory=deque)
    open_producers: int = 1
    stats: EdgeStats = field(default_factory=EdgeStats)

    @property
    def depth(self) -> int:
        return len(self.items)

    @property
    def port(self) -> str:
        return self.dst.split("/", 1)[1]

    @property
    def src_node(self) -> str:
        return self.src.split("/", 1)[0]

    @property
    def dst_node(self) -> str:
        return self.dst.split("/", 1)[0]


class NodeInbox:
    """All edges into one node; replicas of the node take items from it in turn."""

    def __init__(self, edges: list[Edge]):
        self.edges = edges
        self._cond = asyncio.Condition()
        self._rr = 0

    async def put(self, edge: Edge, item: Any) -> None:
        async with self._cond:
            if edge.policy == "block":
                if len(edge.items) >= edge.bound:
                    t0 = time.perf_counter()
                    await self._cond.wait_for(lambda: len(edge.items) < edge.bound)
                    edge.stats.blocked_s += time.perf_counter() - t0
            elif edge.policy == "latest":
                edge.stats.drops += len(edge.items)
                edge.items.clear()
            else:  # drop_oldest
                while len(edge.items) >= edge.bound:
                    edge.items.popleft()
                    edge.stats.drops += 1
            edge.items.append(item)
            edge.stats.sent += 1
            edge.stats.max_depth = max(edge.stats.max_depth, len(edge.items))
            self._cond.notify_all()

    async def close(self, edge: Edge) -> None:
        """One producer of `edge` ended; when all have, the edge ends."""
        async with self._cond:
            edge.open_producers -= 1
            self._cond.notify_all()

    def _ready(self) -> bool:
        return any(e.items for e in self.edges) or all(e.open_producers <= 0 for e in self.edges)

    @property
    def queued(self) -> int:
        return sum(len(e.items) for e in self.edges)

    async def get(self) -> tuple[str, Any]:
        """Next (port, item), fair across edges; ("", EOS) once every edge has ended and drained."""
        batch = await self.get_batch(1)
        return batch[0] if batch else ("", EOS)

    async def get_batch(self, max_items: int) -> list[tuple[str, Any]]:
        """Up to `max_items` (port, item) that are queued now (waits for one), taken in turn
        across edges; [] once every edge has ended and drained."""
        async with self._cond:
            await self._cond.wait_for(self._ready)
            batch: list[tuple[str, Any]] = []
            n = len(self.edges)
            while len(batch) < max(1, max_items) and any(e.items for e in self.edges):
                for k in range(n):
                    edge = self.edges[(self._rr + k) % n]
                    if edge.items:
                        self._rr = (self._rr + k + 1) % n
                        batch.append((edge.port, edge.items.popleft()))
                        break
            if batch:
                self._cond.notify_all()
            return batch
