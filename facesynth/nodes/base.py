"""The contract between the runtime and every node kind.

A node is a thin adapter around pure functions of its stage package (capture/, face/, depth/, model/, live/). The runtime
(runtime/) hosts one instance per replica, in a Ray actor or in-process, and calls:

  setup()                       once, before any item
  produce()                     sources only (no inputs): async iterator of Output
  process(port, item)           one input item -> list of Output (the item's unit of work)
  finish()                      after end-of-stream on every input -> list of Output
  close()                       always, last

Batch graphs pass ChunkRef items (a frame range of a store group); the pixels live in
the Zarr frame store (ctx.store()). Live graphs pass small payloads (dicts of arrays).
Heavy compute inside async methods should go through `await asyncio.to_thread(...)` so
the in-process backend keeps nodes concurrent.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, ClassVar

from pydantic import BaseModel, ConfigDict


class NoParams(BaseModel):
    """Parameters of a node kind that takes none."""

    model_config = ConfigDict(extra="forbid")


class Params(BaseModel):
    """Base for node parameter models: unknown keys are errors, ranges via Field(ge=..., le=...)."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class ChunkRef:
    """A frame range [start, stop) of one store group: what flows along a batch edge."""

    group: str
    start: int
    stop: int

    @property
    def key(self) -> str:
        return f"{self.group}:{self.start}-{self.stop}"

    @property
    def frames(self) -> int:
        return self.stop - self.start

    def to_dict(self) -> dict:
        return {"group": self.group, "start": self.start, "stop": self.stop}

    @classmethod
    def from_dict(cls, d: dict) -> "ChunkRef":
        return cls(str(d["group"]), int(d["start"]), int(d["stop"]))


@dataclass
class Output:
    """One item a node emits on one of its output ports.

    `key` names the unit of work it completes (defaults to the item's key); the runtime
    records finished keys in the store's progress so a rerun skips them.
    """

    port: str
    item: Any
    key: str | None = None


@dataclass
class NodeContext:
    """What a node may know about its run. Picklable: it travels to Ray actors."""

    node_id: str
    kind: str
    replica: int = 0
    replicas: int = 1
    store_path: str | None = None
    chunk_frames: int = 8
    run_dir: str | None = None
    graph_name: str = ""
    restart: bool = False
    # outputs already recorded for this node in a previous run: key -> [Output-like dicts]
    done: dict[str, list[dict]] = field(default_factory=dict)
    reporter: Callable[[str, dict], None] | None = None

    def report(self, name: str, **data: Any) -> None:
        """Send a named metrics event (training losses, latency, rejects...) to the run log."""
        if self.reporter is not None:
            self.reporter(name, {"node": self.node_id, "replica": self.replica, **data})

    def store(self, mode: str = "a"):
        """Open the run's frame store (read-only with mode='r')."""
        from facesynth.store.frame_store import FrameStore

        if self.store_path is None:
            from facesynth.errors import StoreError

            raise StoreError(f"node '{self.node_id}' needs a store but the graph declares none")
        return FrameStore.open(self.store_path, mode=mode)


class Node:
    """Base class of every node kind. Subclasses set the class attributes below."""

    kind: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    Params: ClassVar[type[BaseModel]] = NoParams
    inputs: ClassVar[dict[str, str]] = {}   # port name -> what arrives there
    outputs: ClassVar[dict[str, str]] = {}  # port name -> what leaves there
    live: ClassVar[bool] = False            # live nodes pass payloads, not ChunkRefs
    max_replicas: ClassVar[int | None] = None  # e.g. 1 for a camera or a trainer

    def __init__(self, params: BaseModel, ctx: NodeContext):
        self.params = params
        self.ctx = ctx

    @classmethod
    def is_source(cls) -> bool:
        return not cls.inputs

    async def setup(self) -> None:
        """Open devices, load models. Called once per (re)start of the replica."""

    async def produce(self) -> AsyncIterator[Output]:
        """Sources: yield outputs until the stream ends."""
        raise NotImplementedError(f"{self.kind} is not a source")
        yield  # pragma: no cover

    async def process(self, port: str, item: Any) -> list[Output]:
        """Handle one item from input `port`; return what to send on."""
        raise NotImplementedError(f"{self.kind} takes no input")

    async def finish(self) -> list[Output]:
        """All inputs ended: flush, train, summarise."""
        return []

    async def close(self) -> None:
        """Release devices and sockets."""

    @staticmethod
    async def run_blocking(fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        """Run CPU-heavy pure code off the event loop."""
        return await asyncio.to_thread(fn, *args, **kw)
