"""capture.folder: image folders (the original tool's train|eval layout, or RGB-D image pairs) -> raw/*."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field

from facesynth.capture.source import CaptureParams, CaptureSource, Frame, SourcePlan
from facesynth.errors import InputDataError
from facesynth.nodes.registry import register


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
        from facesynth.capture.folder import image_folders as f

        if not hasattr(self, "_frames"):
            root = Path(self.params.path)
            original = self.params.layout == "original" or (self.params.layout == "auto" and f.is_original_layout(root))
            self._original = original
            self._frames = f.list_original(root) if original else f.list_rgbd(root, self.params.color_glob,
                                                                                self.params.depth_glob)
        return self._frames

    def plan(self) -> SourcePlan:
        from facesynth.capture.folder import image_folders as f

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
        from facesynth.capture.folder import image_folders as f

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
