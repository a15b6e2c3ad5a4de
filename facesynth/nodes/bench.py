"""Synthetic pass-through nodes: measure the runtime itself and inject faults in its tests.

`bench.frames` writes deterministic frames; `bench.passthrough` reads a chunk, does a small
amount of real work (a blur), and writes its own group. The fault parameters make a replica
raise, or kill its own process, the first time it meets a given chunk (a marker file in the
store remembers that it already happened, so the retry succeeds). A `bench.frames` told to die
also logs each chunk it renders (`_faults/<node>-renders.log`), so a test can tell whether a
restarted source redid work it had already handed over.
"""
from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import AsyncIterator

import numpy as np
from pydantic import Field

from facesynth.nodes.base import ChunkRef, Node, Output, Params
from facesynth.nodes.registry import register


def bench_frames(start: int, stop: int, height: int, width: int, seed: int) -> np.ndarray:
    """Frames [start, stop) of the deterministic test pattern (independent of chunking)."""
    idx = np.arange(start, stop, dtype=np.uint32)[:, None, None]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.uint32)
    return ((idx * 2654435761 + yy * 40503 + xx * 977 + seed * 7919) % 251).astype(np.uint8)


def bench_work(frames: np.ndarray, passes: int = 1) -> np.ndarray:
    """The pass-through's work: a 3x3 box blur, `passes` times (pure, deterministic)."""
    out = frames.astype(np.float32)
    for _ in range(passes):
        p = np.pad(out, ((0, 0), (1, 1), (1, 1)), mode="edge")
        out = sum(p[:, dy:dy + out.shape[1], dx:dx + out.shape[2]] for dy in range(3) for dx in range(3)) / 9.0
    return np.round(out).astype(np.uint8)


def fault_once(ctx, kind: str, start: int) -> bool:
    """True the first time this node meets fault `kind` at chunk `start` (a marker file remembers)."""
    marker = Path(ctx.store_path or ".") / "_faults" / f"{ctx.node_id}-{kind}-{start}"
    if marker.exists():
        return False
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(str(os.getpid()))
    return True


class FramesParams(Params):
    frames: int = Field(64, ge=1, le=10_000_000)
    height: int = Field(64, ge=1, le=4096)
    width: int = Field(64, ge=1, le=4096)
    seed: int = Field(0, ge=0)
    die_once_on: list[int] = Field(default_factory=list)  # kill the process before rendering these chunks


@register
class BenchFrames(Node):
    kind = "bench.frames"
    summary = "Deterministic test frames into the store (runtime benchmarks and tests)"
    Params = FramesParams
    outputs = {"frames": "ChunkRef of group 'bench'"}
    max_replicas = 1

    def _render(self, store, ref: ChunkRef) -> None:
        p = self.params
        store.write("bench/frames", ref.start, bench_frames(ref.start, ref.stop, p.height, p.width, p.seed))

    async def produce(self) -> AsyncIterator[Output]:
        p = self.params
        store = self.ctx.store()
        store.ensure_array("bench/frames", p.frames, (p.height, p.width), np.uint8)
        cf = self.ctx.chunk_frames
        self.ctx.report("plan", total=(p.frames + cf - 1) // cf)
        for start in range(0, p.frames, cf):
            ref = ChunkRef("bench", start, min(start + cf, p.frames))
            if ref.key not in self.ctx.done:
                if start in p.die_once_on and fault_once(self.ctx, "die", start):
                    await asyncio.sleep(0.5)  # the supervisor takes what was produced before ...
                    os._exit(1)               # ... then the worker dies, with no clean-up
                await self.run_blocking(self._render, store, ref)
                if p.die_once_on:
                    faults = Path(self.ctx.store_path or ".") / "_faults"
                    faults.mkdir(parents=True, exist_ok=True)
                    with open(faults / f"{self.ctx.node_id}-renders.log", "a") as fh:
                        fh.write(ref.key + "\n")
            yield Output("frames", ref, key=ref.key)


class PassParams(Params):
    passes: int = Field(1, ge=0, le=100)
    delay_ms: float = Field(0.0, ge=0, le=60_000)
    fail_once_on: list[int] = Field(default_factory=list)
    die_once_on: list[int] = Field(default_factory=list)


@register
class BenchPassthrough(Node):
    kind = "bench.passthrough"
    summary = "Read a chunk, blur it, write it to a group named after the node (runtime benchmarks and tests)"
    Params = PassParams
    inputs = {"frames": "ChunkRef of a group with a 'frames' array"}
    outputs = {"frames": "ChunkRef of the group named after this node"}

    async def setup(self) -> None:
        self.store = self.ctx.store()

    def _work(self, item: ChunkRef) -> None:
        """Read, blur, write: all store I/O off the event loop, like the compute."""
        store, group = self.store, self.ctx.node_id
        src = store.read(f"{item.group}/frames", item.start, item.stop)
        cap = store.array(f"{item.group}/frames").shape
        store.ensure_array(f"{group}/frames", cap[0], cap[1:], np.uint8)
        store.write(f"{group}/frames", item.start, bench_work(src, self.params.passes))

    async def process(self, port: str, item: ChunkRef) -> list[Output]:
        p = self.params
        if item.start in p.fail_once_on and fault_once(self.ctx, "fail", item.start):
            raise RuntimeError(f"injected failure on chunk {item.key}")
        if item.start in p.die_once_on and fault_once(self.ctx, "die", item.start):
            os._exit(1)  # a killed worker: no clean-up, no exception
        if p.delay_ms:
            await asyncio.sleep(p.delay_ms / 1000.0)
        await self.run_blocking(self._work, item)
        return [Output("frames", ChunkRef(self.ctx.node_id, item.start, item.stop))]
