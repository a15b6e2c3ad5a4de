"""capture.recording (an Azure Kinect MKV recording) and capture.kinect (a live Azure Kinect) -> raw/*.

Recordings: damaged frames counted.

Damaged frames (recording.py says which and why) follow `on_error`, the policy every capture
source shares (capture/damage_policy.py): skip (default: left out, reported and counted by kind),
stop, or fail. The store records the recording's identity; a rerun with another recording on
that store is refused (recording_identity.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Literal

from pydantic import Field

from facesynth.capture.damage_policy import OnError, on_error_field
from facesynth.capture.source import CaptureParams, CaptureSource, Frame, SourcePlan
from facesynth.nodes.registry import register


class RecordingParams(CaptureParams):
    path: str = Field(..., description="Azure Kinect .mkv recording")
    calibration: str | None = Field(None, description="calibration.json to use instead of the attached one")
    register_ir: bool = True
    max_step_mm: float = Field(50.0, ge=0, le=10_000,
                               description="no depth drawn across steps larger than this (0: SDK behaviour)")
    threads: int = Field(1, ge=0, le=256, description="registration threads (0: all cores)")
    jpeg_check: Literal["auto", "full"] = Field(
        "auto", description="Huffman-walk each colour JPEG: where no cluster CRC-32 vouches for its bytes (auto), "
                            "or always (full: also finds JPEGs damaged before recording, ~+50 % colour decode time)")
    on_error: OnError = on_error_field()


@register
class RecordingSource(CaptureSource):
    kind = "capture.recording"
    summary = "Azure Kinect MKV recording -> colour + depth/IR registered to colour (no Kinect SDK needed)"
    Params = RecordingParams

    def _open(self):
        from facesynth.capture.kinect.recording import KinectRecording
        from facesynth.capture.kinect.registration import Registration

        if not hasattr(self, "_rec"):
            self._rec = KinectRecording(self.params.path, jpeg_check=self.params.jpeg_check)
            self._cal = self._rec.calibration(self.params.calibration)
            self._reg = Registration(self._cal, max_step_mm=self.params.max_step_mm, threads=self.params.threads)
        return self._rec, self._cal, self._reg

    def plan(self) -> SourcePlan:
        from facesynth.capture.recording_identity import recording_identity

        rec, cal, _ = self._open()
        h, w = rec.color_shape
        available = rec.count_frames()
        return SourcePlan(available=available, height=h, width=w,
                          has_ir=self.params.register_ir and "ir" in rec.tracks,
                          intrinsics=cal.color.intrinsics(), calibration=cal.to_dict(), depth_source="azure_kinect",
                          capture={"source": self.kind, "path": str(Path(self.params.path).resolve()),
                                   "recording": recording_identity(rec.path, rec.calibration_json, rec.frames_digest),
                                   "depth_mode": cal.depth_mode, "color_mode": cal.color_mode,
                                   "tags": rec.tags, "on_error": self.params.on_error})

    def check_store(self, store, plan: SourcePlan) -> None:
        from facesynth.capture.recording_identity import check_store_recording

        check_store_recording(store, plan.capture.get("recording"))

    def frames(self, start: int) -> Iterator[Frame]:
        rec, _, reg = self._open()
        want_ir = self.params.register_ir and "ir" in rec.tracks

        def read() -> Iterator[Frame]:
            for cap in rec.captures(start=start, on_error="skip"):  # the policy is applied by the ledger
                if cap.error is not None:
                    yield Frame(cap.index, cap.timestamp_us, None, None, error=cap.error, damage=cap.damage,
                                frames_lost=cap.frames_lost)
                    continue
                depth, extra = reg.register(cap.depth, *([cap.ir] if want_ir else []))
                yield Frame(cap.index, cap.timestamp_us, cap.color, depth, extra[0] if want_ir else None)

        yield from self.damage_ledger().frames(read())


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
            from facesynth.capture.kinect.live import open_device

            p = self.params
            self._dev = open_device(p.device, p.color_resolution, p.depth_mode, p.fps)
        return self._dev

    def plan(self) -> SourcePlan:
        from facesynth.capture.kinect.registration import Registration

        dev = self._device()
        self._reg = Registration(dev.calibration, max_step_mm=self.params.max_step_mm, threads=self.params.threads)
        cal = dev.calibration
        return SourcePlan(available=None, height=cal.color.height, width=cal.color.width,
                          has_ir=self.params.register_ir, intrinsics=cal.color.intrinsics(),
                          calibration=cal.to_dict(), depth_source="azure_kinect",
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
