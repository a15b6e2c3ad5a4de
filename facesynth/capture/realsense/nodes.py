"""capture.realsense: an Intel RealSense, live or from a recording (.bag / .db3) -> raw/*.

Depth is aligned to colour by the SDK (device.py). A store made from a recording is tied to it
as to a Kinect recording (recording_identity.py); the store's `depth_source` is realsense.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from pydantic import Field

from facesynth.capture.source import CaptureParams, CaptureSource, Frame, SourcePlan
from facesynth.nodes.registry import register


class RealSenseParams(CaptureParams):
    path: str | None = Field(None, description="a RealSense recording (.bag or .db3); none: a live camera")
    serial: str | None = Field(None, max_length=64, description="live: the camera's serial number (default: the first)")
    width: int = Field(1280, ge=16, le=4096, description="live colour width")
    height: int = Field(720, ge=16, le=4096, description="live colour height")
    fps: int = Field(30, ge=1, le=300)
    timeout_s: float = Field(5.0, gt=0, le=600, description="a recording ends, a live camera fails, after this "
                                                            "long without frames")


@register
class RealSenseSource(CaptureSource):
    kind = "capture.realsense"
    summary = "Intel RealSense live or .bag/.db3 recording (pyrealsense2, extra [realsense]) -> colour + aligned depth"
    Params = RealSenseParams

    def _device(self):
        if not hasattr(self, "_dev"):
            from facesynth.capture.realsense.device import RealSense

            p = self.params
            self._dev = RealSense(p.path, p.serial, p.width, p.height, p.fps, p.timeout_s)
        return self._dev

    def plan(self) -> SourcePlan:
        from facesynth.capture.recording_identity import recording_identity

        p = self.params
        dev = self._device()
        capture = {"source": self.kind, "serial": dev.serial, "depth_mm_per_unit": dev.mm_per_unit}
        if p.path is not None:
            capture.update(path=str(Path(p.path).resolve()), recording=recording_identity(p.path))
        return SourcePlan(available=None, height=dev.intrinsics["height"], width=dev.intrinsics["width"],
                          has_ir=False, intrinsics=dev.intrinsics, calibration=None, depth_source="realsense",
                          capture=capture)

    def check_store(self, store, plan: SourcePlan) -> None:
        from facesynth.capture.recording_identity import check_store_recording

        check_store_recording(store, plan.capture.get("recording"))

    def frames(self, start: int) -> Iterator[Frame]:
        dev = self._device()
        for i, (_, ts, rgb, depth) in enumerate(dev.frames()):
            if dev.playback and i < start:
                continue  # a rerun goes on after the frames a recording already gave
            yield Frame(i if dev.playback else start + i, ts, rgb, depth)

    async def close(self) -> None:
        dev = getattr(self, "_dev", None)
        if dev is not None:
            dev.close()
