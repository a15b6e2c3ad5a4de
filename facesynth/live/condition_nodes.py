"""`live.condition`: live landmarks -> the trained person's frame (align, retarget, clamp, filter).

Sits between any live source and live.generator. The statistics it aligns and retargets to are
the model's own (`landmark_stats` in generator.json). Each source keeps its own state (filter,
calibrated neutral). A msgpack landmark message with "calibrate": true (docs/live_protocol.md)
restarts that source's neutral calibration: sources count such requests in every payload
(`calibrations`), so a request is not lost when its frame is dropped on a `latest` edge.
"""
from __future__ import annotations

from pathlib import Path

from pydantic import Field

from facesynth.errors import InputDataError, MissingDependencyError
from facesynth.live.conditioning import ConditionConfig, Conditioner, TrainedLandmarks
from facesynth.nodes.base import Node, Output, Params
from facesynth.nodes.registry import register


class ConditionParams(Params):
    model: str = Field("data_store/capture_to_model.zarr.model/export",
                       description="exported model (its directory, a model file beside generator.json, or generator.json) whose landmark_stats to use")
    store: str | None = Field(None, description="the training store: its train landmarks stand in when the model "
                              "carries no landmark_stats (exported before they existed)")
    align: bool = Field(True, description="similarity-align on eye corners + nose bridge to the trained mean shape")
    rotation: bool = Field(True, description="let the alignment remove head roll (else scale and shift only)")
    retarget: bool = Field(False, description="driver motion relative to its calibrated neutral, added to the trained neutral")
    calibrate_frames: int = Field(30, ge=1, le=100_000, description="frames averaged into the driver's neutral")
    clamp: bool = Field(False, description="keep every coordinate within the range seen in training")
    clamp_margin: float = Field(0.0, ge=0.0, le=10.0, description="widen the clamp range by this share of it on each side")
    filter: bool = Field(False, description="One Euro filter per coordinate (for jittery trackers; network inputs are usually smooth)")
    min_cutoff: float = Field(1.0, gt=0, le=1000, description="One Euro minimum cutoff, Hz (lower = smoother when still)")
    beta: float = Field(0.2, ge=0, le=100, description="One Euro speed coefficient, 1/px (higher = less lag when moving)")
    d_cutoff: float = Field(1.0, gt=0, le=1000, description="One Euro cutoff of the speed estimate, Hz")
    report_every: int = Field(300, ge=1, description="report a live.condition event every this many frames")


def model_meta_path(model: str) -> Path:
    p = Path(model)
    if p.is_dir() or not p.suffix:  # an export directory (or where one should be)
        p = p / "generator.json"
    elif p.suffix != ".json":  # a model file: its metadata lies beside it
        p = p.with_name("generator.json")
    if not p.exists():  # anything else there (a FIFO, a directory) is refused by read_meta, by name
        raise MissingDependencyError(f"no generator.json at {p}; train a model (graphs/capture_to_model.yaml) "
                                     "or point params.model at an export directory")
    return p


def stats_from_store(store_path: str, size: int) -> dict:
    """landmark_stats of a store's train split (what the export would carry), at network `size`."""
    import numpy as np

    from facesynth.model.landmark_stats import landmark_stats, store_landmarks
    from facesynth.store.frame_store import FrameStore

    st = FrameStore.open(store_path, mode="r")
    ok = np.array(st.read("crop/ok"), bool)  # a copy: store reads are read-only
    if st.has("raw/split"):
        ok &= np.asarray(st.read("raw/split"))[:len(ok)] == 0
    if not ok.any():
        raise InputDataError(f"store {store_path} has no cropped training frames to take landmark statistics from")
    return landmark_stats(store_landmarks(st, np.flatnonzero(ok), size), size)


@register
class Condition(Node):
    kind = "live.condition"
    summary = "Align live landmarks to the trained face (stable points), retarget another person, clamp, One Euro filter"
    Params = ConditionParams
    inputs = {"landmarks": "live landmarks payload"}
    outputs = {"landmarks": "the same payload, landmarks conditioned (+ calibrating: bool)"}
    live = True
    max_replicas = 1  # the filter and the calibration are per-stream state

    async def setup(self) -> None:
        p = self.params
        self.cfg = ConditionConfig(align=p.align, rotation=p.rotation, retarget=p.retarget,
                                   calibrate_frames=p.calibrate_frames, clamp=p.clamp, clamp_margin=p.clamp_margin,
                                   filter=p.filter, min_cutoff=p.min_cutoff, beta=p.beta, d_cutoff=p.d_cutoff)
        self.trained = None
        if p.align or p.retarget or p.clamp:
            from facesynth.model.export_meta import read_meta  # bounded, typed, in range (a file someone sent)

            meta = read_meta(model_meta_path(p.model))
            if "landmark_stats" not in meta and p.store:
                meta["landmark_stats"] = await self.run_blocking(stats_from_store, p.store, int(meta["size"]))
            self.trained = TrainedLandmarks.from_meta(meta, int(meta.get("size", 0)) or None)
        self.streams: dict[str, Conditioner] = {}
        self.calibrations: dict[str, int] = {}
        self.frames = 0
        self.degenerate = 0

    def _stream(self, source: str) -> Conditioner:
        if source not in self.streams:
            self.streams[source] = Conditioner(self.trained, self.cfg)
        return self.streams[source]

    async def process(self, port: str, item: dict) -> list[Output]:
        source = str(item.get("source", ""))
        cond = self._stream(source)
        asked = int(item.get("calibrations", 0))
        if asked > self.calibrations.get(source, 0):
            cond.calibrate()
        self.calibrations[source] = max(asked, self.calibrations.get(source, 0))
        was = cond.calibrating
        try:
            pts = cond(item["landmarks"], float(item.get("t_recv", 0.0)))
        except InputDataError:  # degenerate input (stable points on top of each other): drop it
            self.degenerate += 1
            return []
        self.frames += 1
        if was and not cond.calibrating:
            self.ctx.report("live.calibrated", source=item.get("source"), frames=self.cfg.calibrate_frames)
        if self.frames % self.params.report_every == 0:
            self.ctx.report("live.condition", frames=self.frames, degenerate=self.degenerate,
                            clipped={k: c.clipped for k, c in self.streams.items()})
        return [Output("landmarks", {**item, "landmarks": pts, "calibrating": was})]  # this frame went into the neutral
