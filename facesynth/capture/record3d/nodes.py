"""capture.record3d: an iPhone's Record3D export (.r3d or its unzipped folder), or the app's live USB stream -> raw/*.

Depth (float metres at the depth camera's resolution, same field of view as the colour) is
registered to colour by scaling with the intrinsics (capture/depth_scaling.py) and stored as
uint16 millimetres. Damaged frames of an export follow `on_error` (capture/damage_policy.py), and
a store is tied to its export as to a recording (recording_identity.py). The store's
`depth_source` is truedepth or lidar.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from pydantic import Field, model_validator

from facesynth.capture.damage_policy import OnError, on_error_field
from facesynth.capture.source import CaptureParams, CaptureSource, Frame, SourcePlan
from facesynth.nodes.registry import register


class Record3dParams(CaptureParams):
    path: str | None = Field(None, description="Record3D export: the .r3d file or its unzipped folder")
    device: int | None = Field(None, ge=0, le=16, description="instead of path: the index of an iPhone streaming "
                                                              "live over USB (Record3D app; extra [record3d])")
    min_confidence: int = Field(0, ge=0, le=2, description="drop depth whose rgbd/<i>.conf is below this "
                                                           "(0 keeps every reading; frames without .conf keep all)")
    timeout_s: float = Field(10.0, gt=0, le=600, description="live: give up when the phone sends nothing this long")
    on_error: OnError = on_error_field()

    @model_validator(mode="after")
    def _one_source(self):
        if (self.path is None) == (self.device is None):
            raise ValueError("give exactly one of `path` (a Record3D export) or `device` (a live iPhone)")
        return self


@register
class Record3dSource(CaptureSource):
    kind = "capture.record3d"
    summary = "iPhone Record3D export (.r3d / folder) or live USB stream -> colour + depth registered by scaling"
    Params = Record3dParams

    def _export(self):
        if not hasattr(self, "_exp"):
            from facesynth.capture.record3d.export import Record3dExport

            self._exp = Record3dExport(self.params.path)
        return self._exp

    def _registration(self, color: dict, depth_shape: tuple[int, int]):
        from facesynth.capture.depth_scaling import ScaledRegistration

        if not hasattr(self, "_reg"):
            self._reg = ScaledRegistration.same_view(color, *depth_shape)
        return self._reg

    def plan(self) -> SourcePlan:
        p = self.params
        if p.device is not None:
            from facesynth.capture.record3d.live import LiveRecord3d

            self._live = LiveRecord3d(p.device, p.timeout_s)
            live = self._live
            return SourcePlan(available=None, height=live.intrinsics["height"], width=live.intrinsics["width"],
                              has_ir=False, intrinsics=live.intrinsics, calibration=None,
                              depth_source=live.depth_source,
                              capture={"source": self.kind, "device": p.device, "udid": live.udid,
                                       "depth_size": list(live.depth_shape[::-1])})
        exp = self._export()
        dh, dw = exp.infer_depth_shape()
        h, w = exp.color_shape
        return SourcePlan(available=len(exp.numbers), height=h, width=w, has_ir=False, intrinsics=exp.intrinsics,
                          calibration=None, depth_source=exp.depth_source,
                          capture={"source": self.kind, "path": str(Path(p.path).resolve()),
                                   "recording": exp.identity(), "depth_size": [dw, dh], "fps": exp.fps,
                                   "frames_numbered": [exp.numbers[0], exp.numbers[-1]],
                                   "min_confidence": p.min_confidence, "on_error": p.on_error})

    def check_store(self, store, plan: SourcePlan) -> None:
        from facesynth.capture.recording_identity import check_store_recording

        check_store_recording(store, plan.capture.get("recording"))

    def frames(self, start: int) -> Iterator[Frame]:
        from facesynth.capture.depth_scaling import to_mm_u16
        from facesynth.capture.record3d.export import DamagedFrame

        if self.params.device is not None:
            live = self._live
            reg = self._registration(live.intrinsics, live.depth_shape)
            for i, (ts, rgb, depth_m) in enumerate(live.frames()):
                yield Frame(start + i, ts, rgb, reg.apply(to_mm_u16(depth_m, 1000.0)))
            return
        exp = self._export()
        reg = self._registration(exp.intrinsics, exp.infer_depth_shape())

        def read() -> Iterator[Frame]:
            for fr in exp.frames(start, self.params.min_confidence):
                if isinstance(fr, DamagedFrame):
                    yield Frame(fr.index, fr.timestamp_us, None, None, error=fr.error, damage=fr.kind)
                else:
                    yield Frame(fr.index, fr.timestamp_us, fr.color, reg.apply(to_mm_u16(fr.depth_m, 1000.0)))

        yield from self.damage_ledger().frames(read())

    async def close(self) -> None:
        for name in ("_live", "_exp"):
            obj = getattr(self, name, None)
            if obj is not None:
                obj.close()
