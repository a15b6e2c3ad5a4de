"""capture.synthetic: the embedded default camera, so a graph runs end to end without a Kinect.

It renders a procedural talking head (head.py beside it) into raw/color, raw/depth
(uint16 mm, registered to colour by construction), raw/split, raw/ok, raw/timestamp_us and the
true landmarks raw/landmarks_true, one chunk of `chunk_frames` frames at a time, and emits
ChunkRef("raw", start, stop) on `rgbd`. Every frame is kept; the split follows the original
capture (every 7th frame to eval until eval holds its count). Frames depend only on the seed
and their index, so a resumed run re-yields finished chunks without rendering them again.
"""
from __future__ import annotations

import time
from typing import AsyncIterator

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from facesynth.errors import StoreError
from facesynth.nodes.base import ChunkRef, Node, Output, Params
from facesynth.nodes.registry import register
from facesynth.capture.capture_gate import CaptureGate
from facesynth.capture.synthetic.head import FaceParams, Intrinsics, render_frame, sample_sequence


class SyntheticFrames(BaseModel):
    model_config = ConfigDict(extra="forbid")
    train: int = Field(240, ge=1, le=1_000_000)
    eval: int = Field(40, ge=0, le=1_000_000)


class SyntheticParams(Params):
    frames: SyntheticFrames = SyntheticFrames()
    width: int = Field(640, ge=64, le=4096, description="colour/depth image width in px")
    height: int = Field(480, ge=64, le=4096, description="colour/depth image height in px")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="the performance, the person and the sensor noise")
    hole_fraction: float = Field(0.03, ge=0.0, le=0.5, description="share of head pixels without a depth reading")
    fps: float = Field(30.0, gt=0, le=240)
    eval_every: int = Field(7, ge=1, le=1000, description="every n-th frame goes to eval until eval is full")


def split_plan(train: int, eval: int, eval_every: int = 7) -> np.ndarray:
    """The split (0 train, 1 eval) of each of the train + eval frames, as the original capture assigned it."""
    gate = CaptureGate(train=train, eval=eval, eval_every=eval_every, gate_faces=False)
    return np.array([gate.decide().split for _ in range(train + eval)], np.uint8)


def render_chunk(params: list[FaceParams], cam: Intrinsics, identity: int, hole_fraction: float):
    """Colour (n,H,W,3) u8, depth (n,H,W) u16 and landmarks (n,70,2) f32 of consecutive frames."""
    frames = [render_frame(p, cam, identity=identity, hole_fraction=hole_fraction) for p in params]
    return (np.stack([f.color for f in frames]), np.stack([f.depth for f in frames]),
            np.stack([f.landmarks for f in frames]))


@register
class SyntheticSource(Node):
    kind = "capture.synthetic"
    summary = "Embedded synthetic RGB-D camera: a procedural talking head with true landmarks (no device needed)"
    Params = SyntheticParams
    outputs = {"rgbd": "ChunkRef of group 'raw' (color, depth registered to colour, split, ok, landmarks_true)"}
    max_replicas = 1

    async def produce(self) -> AsyncIterator[Output]:
        p = self.params
        total = p.frames.train + p.frames.eval
        cf = self.ctx.chunk_frames
        cam = Intrinsics.default(p.width, p.height)
        splits = split_plan(p.frames.train, p.frames.eval, p.eval_every)
        store = self.ctx.store()
        capture = {"source": "synthetic", "node": self.ctx.node_id, "seed": p.seed, "fps": p.fps,
                   "frames": {"train": p.frames.train, "eval": p.frames.eval}, "frames_planned": total,
                   "hole_fraction": p.hole_fraction, "eval_every": p.eval_every,
                   "counts": {"train": int((splits == 0).sum()), "eval": int((splits == 1).sum())}}
        self._check_resumable(store.attrs, capture, cam)
        h, w = cam.height, cam.width
        store.ensure_array("raw/color", total, (h, w, 3), np.uint8)
        store.ensure_array("raw/depth", total, (h, w), np.uint16)
        store.ensure_array("raw/split", total, (), np.uint8)
        store.ensure_array("raw/ok", total, (), bool, fill_value=False)
        store.ensure_array("raw/timestamp_us", total, (), np.int64)
        store.ensure_array("raw/landmarks_true", total, (70, 2), np.float32, fill_value=np.nan)
        store.update_attrs(intrinsics=cam.to_dict(), capture=capture, depth_source="synthetic")
        self.ctx.report("plan", total=-(-total // cf))
        sequence = sample_sequence(p.seed, total, p.fps)
        last_report = 0.0
        for start in range(0, total, cf):
            ref = ChunkRef("raw", start, min(start + cf, total))
            if ref.key in self.ctx.done:
                yield Output("rgbd", self._recorded(ref), key=ref.key)
                continue
            color, depth, landmarks = await self.run_blocking(
                render_chunk, sequence[ref.start:ref.stop], cam, p.seed, p.hole_fraction)
            await self.run_blocking(self._write, store, ref, color, depth, landmarks, splits, p.fps)
            if time.monotonic() - last_report > 1.0 or ref.stop == total:
                self.ctx.report("capture.progress", frames=ref.stop, total=total)
                last_report = time.monotonic()
            yield Output("rgbd", ref, key=ref.key)

    def _check_resumable(self, attrs: dict, capture: dict, cam: Intrinsics) -> None:
        """Finished chunks are only reused when they were rendered with these very settings."""
        if not self.ctx.done:
            return
        old = attrs.get("capture") or {}
        keys = ("source", "seed", "fps", "frames", "hole_fraction", "eval_every")
        changed = [k for k in keys if old.get(k) != capture[k]]
        if attrs.get("intrinsics") not in (None, cam.to_dict()):
            changed.append("width/height")
        if changed:
            raise StoreError(f"{self.kind} '{self.ctx.node_id}': the store's frames were rendered with other "
                             f"settings (changed: {', '.join(changed)}); rerun with --restart or use a new store")

    def _recorded(self, ref: ChunkRef) -> ChunkRef:
        """The ChunkRef a previous run emitted for this key (what the progress log recorded)."""
        for out in self.ctx.done.get(ref.key) or []:
            d = (out.get("chunk") or out.get("item")) if isinstance(out, dict) else None
            if isinstance(d, dict):
                return ChunkRef.from_dict(d)
        return ref

    @staticmethod
    def _write(store, ref: ChunkRef, color, depth, landmarks, splits: np.ndarray, fps: float) -> None:
        n = ref.frames
        store.write("raw/color", ref.start, color)
        store.write("raw/depth", ref.start, depth)
        store.write("raw/landmarks_true", ref.start, landmarks)
        store.write("raw/split", ref.start, splits[ref.start:ref.stop])
        store.write("raw/timestamp_us", ref.start, np.round(np.arange(ref.start, ref.stop) * 1e6 / fps).astype(np.int64))
        store.write("raw/ok", ref.start, np.ones(n, bool))
