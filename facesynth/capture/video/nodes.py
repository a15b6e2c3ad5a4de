"""capture.video: a video file (PyAV) or a webcam (OpenCV) -> colour + depth estimated from the face mesh.

Every frame read is a frame of the store (raw/source_index is its number in the video). Its depth
is the face mesh rasterised into a metric depth map (mesh_depth.py); a frame where mediapipe finds
no face or several faces keeps its colour with depth 0 everywhere ("no reading"): face.landmarks
then skips it and counts it (landmarks.skipped, by reason), and capture.rejects counts it here too
(`face_mesh`). The store records `depth_source: face_mesh`, so every figure made from it can say
that its depth is estimated. The metric scale is measured once per video on `scale_frames` frames
spread over the part the capture reads and saved in the capture attribute (`face_scale`).

A video file is untrusted input (video_file.py); its damaged frames follow `on_error` like every
reader's (damage_policy.py: skip, counted, a capture.damaged event each; stop; fail), and a store is
tied to its video file like to a recording (recording_identity.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
from pydantic import Field, model_validator

from facesynth.capture.damage_policy import OnError, on_error_field
from facesynth.capture.source import CaptureParams, CaptureSource, Frame, Intrinsics, SourcePlan
from facesynth.capture.video.video_file import MAX_PIXELS
from facesynth.errors import InputDataError, SourceMismatchError
from facesynth.nodes.registry import register


class VideoParams(CaptureParams):
    path: str | None = Field(None, description="video file (mp4, mov, mkv, webm, avi, ...); or give `device`")
    device: int | None = Field(None, ge=0, le=63, description="webcam index (OpenCV); instead of `path`")
    stride: int = Field(1, ge=1, le=1000, description="use every n-th frame of the video")
    intrinsics: Intrinsics | None = Field(None, description="colour camera fx, fy, cx, cy in px; else `hfov_deg`")
    hfov_deg: float = Field(70.0, ge=20.0, le=150.0, description="nominal horizontal field of view without intrinsics")
    iris_mm: float = Field(11.7, ge=8.0, le=16.0, description="iris diameter the metric scale is taken from")
    ipd_mm: float | None = Field(None, ge=40.0, le=90.0,
                                 description="the person's interpupillary distance; used instead of the iris when given")
    scale_frames: int = Field(24, ge=1, le=500, description="frames the face's metric size is measured on")
    max_pixels: int = Field(MAX_PIXELS, ge=64 * 64, le=7680 * 4320, description="largest frame accepted (w x h)")
    on_error: OnError = on_error_field()

    @model_validator(mode="after")
    def _one_source(self) -> "VideoParams":
        if (self.path is None) == (self.device is None):
            raise ValueError("give exactly one of `path` (a video file) and `device` (a webcam index)")
        return self


@register
class VideoSource(CaptureSource):
    kind = "capture.video"
    summary = "Video file (PyAV) or webcam -> colour + depth estimated from the face mesh (depth_source face_mesh)"
    Params = VideoParams

    def _reader(self):
        if not hasattr(self, "_video"):
            p = self.params
            if p.path is not None:
                from facesynth.capture.video.video_file import VideoFile

                self._video = VideoFile(p.path, max_pixels=p.max_pixels)
            else:
                from facesynth.capture.video.webcam import Webcam

                self._video = Webcam(p.device, max_pixels=p.max_pixels)
            self._faces = {"depth_frames": 0, "no_face": 0, "several_faces": 0}
        return self._video

    def _landmarker(self):
        if getattr(self, "_fl", None) is None:
            from facesynth.face.landmarks_mediapipe import FaceMeshLandmarker

            self._fl = FaceMeshLandmarker()
        return self._fl

    def plan(self) -> SourcePlan:
        from facesynth.capture.folder.image_folders import nominal_intrinsics
        from facesynth.capture.recording_identity import recording_identity

        p, video = self.params, self._reader()
        w, h = video.width, video.height
        self._intr = (dict(p.intrinsics.model_dump(), width=w, height=h) if p.intrinsics
                      else nominal_intrinsics(w, h, p.hfov_deg))
        self._scale = self._measure_scale()
        capture = {"source": self.kind, "stride": p.stride, "face_scale": self._scale.to_dict(),
                   "intrinsics_from": "params" if p.intrinsics else f"nominal {p.hfov_deg:g} deg field of view",
                   "on_error": p.on_error, "fps": video.fps}
        available = None
        if p.path is not None:
            capture.update(path=str(Path(p.path).resolve()), recording=recording_identity(video.path),
                           format=video.format, codec=video.codec, frames_in_file=video.frame_count,
                           rotation_deg=90 * video.rotation)
            if video.frame_count is not None:
                available = -(-video.frame_count // p.stride)
        else:
            capture.update(device=p.device)
        return SourcePlan(available=available, height=h, width=w, has_ir=False, intrinsics=self._intr,
                          calibration=None, capture=capture, depth_source="face_mesh")

    def _measure_scale(self):
        """The face's metric size from `scale_frames` frames spread over the frames the capture reads
        (a webcam: its next frames with a face, at most 10x as many looked at); a resumed capture keeps
        the size its frames were made with (measured the same way)."""
        from facesynth.capture.video.mesh_depth import FaceScale, calibrate_face_size

        p, video = self.params, self._video
        method, ref = ("ipd", p.ipd_mm) if p.ipd_mm is not None else ("iris", p.iris_mm)
        old = (self.ctx.store().attrs.get("capture") or {}).get("face_scale") if self.ctx.done else None
        if isinstance(old, dict) and old.get("method") == method and old.get("reference_mm") == ref:
            try:
                return FaceScale(float(old["size_mm"]), method, float(ref), int(old["samples"]), float(old["spread"]))
            except (KeyError, TypeError, ValueError):
                pass  # not what this node writes: measure again (check_store compares)
        wanted = p.frames.train + p.frames.eval
        meshes = []
        if p.path is not None:
            span = wanted * p.stride if video.frame_count is None else min(video.frame_count, wanted * p.stride)
            slots = max(1, -(-span // p.stride))
            picks = {int(k) * p.stride for k in np.unique(np.linspace(0, slots - 1, min(p.scale_frames, slots)).round())}
            for fr in video.frames(0, p.stride):
                if fr.rgb is not None and fr.index in picks:
                    meshes += self._single_mesh(fr.rgb)
                if fr.index >= max(picks):
                    break
        else:
            for looked, fr in enumerate(video.frames(0, 1)):
                meshes += self._single_mesh(fr.rgb)
                if len(meshes) >= p.scale_frames or looked >= 10 * p.scale_frames:
                    break
        if not meshes:
            raise InputDataError(f"{p.path if p.path is not None else f'camera {p.device}'}: mediapipe finds no "
                                 "single face in the frames sampled for the metric scale, so there is no face to "
                                 "estimate depth for")
        return calibrate_face_size(meshes, iris_mm=p.iris_mm, ipd_mm=p.ipd_mm)

    def _single_mesh(self, rgb: np.ndarray) -> list[np.ndarray]:
        faces = self._landmarker().detect(rgb)
        return [faces[0].mesh] if len(faces) == 1 else []

    def check_store(self, store, plan: SourcePlan) -> None:
        from facesynth.capture.recording_identity import check_store_recording

        check_store_recording(store, plan.capture.get("recording"))
        stored = store.attrs.get("capture")
        stored = stored if isinstance(stored, dict) else {}
        old = (stored.get("face_scale") or {}).get("size_mm")
        new = plan.capture["face_scale"]["size_mm"]
        if self.ctx.done and old is not None and abs(float(old) - new) > 1e-3 * new:
            raise SourceMismatchError(
                f"store {store.path} holds depth made with a face size of {float(old):.2f} mm, this run measures "
                f"{new:.2f} mm (another iris_mm or ipd_mm?): rerun with the "
                "earlier parameters, or with --restart to capture again from scratch")

    def damage_summary(self) -> dict:
        """Damaged frames by kind, and how many frames got mesh depth (no face / several: depth 0)."""
        return {**super().damage_summary(), "face_mesh": dict(getattr(self, "_faces", {}))}

    def frames(self, start: int) -> Iterator[Frame]:
        video = self._reader()

        def read() -> Iterator[Frame]:
            for fr in video.frames(start, self.params.stride):
                if fr.error is not None:
                    yield Frame(fr.index, fr.timestamp_us, None, None, error=fr.error, damage=fr.damage,
                                frames_lost=fr.frames_lost)
                else:
                    yield Frame(fr.index, fr.timestamp_us, fr.rgb, self._depth(fr.rgb))

        yield from self.damage_ledger().frames(read())

    def _depth(self, rgb: np.ndarray) -> np.ndarray:
        from facesynth.capture.video.mesh_depth import face_depth_map

        faces = self._landmarker().detect(rgb)
        h, w = rgb.shape[:2]
        if len(faces) != 1:
            self._faces["no_face" if not faces else "several_faces"] += 1
            return np.zeros((h, w), np.uint16)
        self._faces["depth_frames"] += 1
        return face_depth_map(faces[0].mesh, self._scale.size_mm, self._intr, h, w)

    async def close(self) -> None:
        for name in ("_fl", "_video"):
            obj = getattr(self, name, None)
            if obj is not None and hasattr(obj, "close"):
                obj.close()
