"""`store.chunks`: a source that replays the chunks of an existing store's group.

Lets a graph work on a store another graph filled (e.g. graphs/fill_cluster.yaml fills the
depth of a store that capture_to_model.yaml cropped): it yields ChunkRef(group, start, stop)
for every chunk of `<group>/ok` that holds at least one frame, and nothing else.
"""
from __future__ import annotations

from typing import AsyncIterator

import numpy as np
from pydantic import Field

from facesynth.errors import StoreError
from facesynth.nodes.base import ChunkRef, Node, Output, Params
from facesynth.nodes.registry import register


class StoreChunksParams(Params):
    group: str = Field("crop", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$",
                       description="store group whose chunks to emit (needs <group>/ok)")


def chunks_with_frames(ok: np.ndarray, chunk_frames: int, group: str) -> list[ChunkRef]:
    """Chunk-aligned frame ranges of `ok` that hold at least one True frame."""
    n = len(ok)
    return [ChunkRef(group, s, min(s + chunk_frames, n)) for s in range(0, n, chunk_frames)
            if bool(np.any(ok[s:s + chunk_frames]))]


@register
class StoreChunks(Node):
    kind = "store.chunks"
    summary = "Emit a ChunkRef for every chunk of an existing store group that holds frames"
    Params = StoreChunksParams
    outputs = {"chunks": "ChunkRef(<group>, start, stop) per chunk whose <group>/ok has a frame"}
    max_replicas = 1

    async def produce(self) -> AsyncIterator[Output]:
        group = self.params.group
        store = self.ctx.store("r")
        if not store.has(f"{group}/ok"):
            raise StoreError(f"store.chunks: store {store.path} has no '{group}/ok' "
                             f"(arrays: {', '.join(store.names()) or 'none'}); run the graph that writes "
                             f"group '{group}' first, or set params.group")
        ok = store.read(f"{group}/ok")
        refs = chunks_with_frames(ok, store.chunk_frames, group)
        self.ctx.report("plan", total=len(refs))
        for ref in refs:
            yield Output("chunks", ref, key=ref.key)
