"""`depth.fill`: fill the holes of the face crops' depth, one chunk of frames per call.

A thin adapter around facesynth/depth/fill.py: reads crop/color, crop/depth and
crop/mask for the chunk, fills every frame flagged in crop/ok (holes inside the face
silhouette only; measured pixels kept exactly), writes fill/depth and fill/ok for the same
frames. Replicas share nothing but the store, so `replicas: auto` fans chunks out over
every core of the machine or of the Ray cluster it joined.
"""
from __future__ import annotations

import time
from typing import Literal

import numpy as np
from pydantic import Field

from facesynth.nodes.base import ChunkRef, Node, Output, Params
from facesynth.nodes.registry import register
from facesynth.depth.fill import fill_depth


class DepthFillParams(Params):
    method: Literal["guided", "pushpull", "nearest"] = Field(
        "guided", description="guided = colour-weighted robust local plane fit (fast, accurate); "
                              "pushpull / nearest = simple baselines")
    radius: int = Field(3, ge=1, le=16, description="guided: base window radius in px (grows per pixel as needed)")
    min_samples: int = Field(8, ge=1, le=289, description="guided: measured pixels needed before the window stops growing")
    sigma_color: float = Field(10.0, gt=0.0, le=255.0, description="guided: colour similarity scale (8-bit units)")
    rel_sigma: float = Field(0.02, gt=0.0, le=1.0, description="guided: depth outlier scale as a share of depth")
    iterations: int = Field(2, ge=0, le=10, description="guided: robust re-weighting rounds")
    plane: bool = Field(True, description="guided: fit a local plane (else a weighted mean)")
    close_px: int = Field(15, ge=0, le=255, description="silhouette closing kernel: gaps at the face outline "
                                                        "narrower than this are filled too")


def fill_chunk(color: np.ndarray, depth: np.ndarray, mask: np.ndarray, ok: np.ndarray,
               p: DepthFillParams) -> tuple[np.ndarray, int]:
    """Filled depth for a chunk (frames not ok stay 0, like chunks without faces) and the pixels filled."""
    out = np.zeros_like(np.asarray(depth))
    kw: dict = {"close_px": p.close_px}
    if p.method == "guided":
        kw.update(radius=p.radius, min_samples=p.min_samples, sigma_color=p.sigma_color,
                  rel_sigma=p.rel_sigma, irls=p.iterations, plane=p.plane)
    for i in np.flatnonzero(ok):
        out[i] = fill_depth(depth[i], color[i], mask[i], method=p.method, **kw)
    filled = int(((out > 0) & (np.asarray(depth) == 0)).sum())  # not-ok frames are all 0 in out
    return out, filled


@register
class DepthFill(Node):
    kind = "depth.fill"
    summary = "Fill depth holes inside the face (colour-guided, keeps measured pixels, never into the background)"
    Params = DepthFillParams
    inputs = {"face": "ChunkRef('crop', ...): reads crop/color, crop/depth, crop/mask, crop/ok"}
    outputs = {"filled": "ChunkRef('fill', ...): fill/depth (uint16 mm), fill/ok"}

    async def setup(self) -> None:
        self.store = self.ctx.store()

    async def process(self, port: str, item: ChunkRef) -> list[Output]:
        store, g, a, b = self.store, item.group, item.start, item.stop
        color = store.read(f"{g}/color", a, b)
        depth = store.read(f"{g}/depth", a, b)
        mask = store.read(f"{g}/mask", a, b)
        ok = store.read(f"{g}/ok", a, b) if store.has(f"{g}/ok") else np.ones(b - a, bool)
        t0 = time.perf_counter()
        out, filled = await self.run_blocking(fill_chunk, color, depth, mask, ok, self.params)
        cap, shape = store.array(f"{g}/depth").shape[0], depth.shape[1:]
        store.ensure_array("fill/depth", cap, shape, np.uint16)
        store.ensure_array("fill/ok", cap, (), bool, fill_value=False)
        store.write("fill/depth", a, out)
        store.write("fill/ok", a, ok)
        self.ctx.report("fill.chunk", chunk=item.key, frames=int(ok.sum()), filled_px=filled,
                        ms_per_frame=round(1000 * (time.perf_counter() - t0) / max(1, int(ok.sum())), 3))
        return [Output("filled", ChunkRef("fill", a, b))]
