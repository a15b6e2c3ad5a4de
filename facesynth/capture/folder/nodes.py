"""capture.folder: image folders (the original tool's train|eval layout, or RGB-D image pairs) -> raw/*.

Intrinsics come from params, else a camera JSON beside the frames (folder/camera_json.py: e.g. the
TrueDepth face sequence's info.json), else a nominal 70-degree guess (flagged `estimated`). Depth at
another size than the colour is registered by scaling (capture/depth_scaling.py): with the depth
camera's own intrinsics where known, else with the colour's scaled to it when the aspect ratios
match (the same field of view). The depth scale is the param's, else the JSON's, else 1 mm.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Literal

from pydantic import Field

from facesynth.capture.source import CaptureParams, CaptureSource, Frame, Intrinsics, SourcePlan
from facesynth.errors import InputDataError
from facesynth.nodes.registry import register


class FolderParams(CaptureParams):
    path: str = Field(..., description="dataset folder")
    layout: Literal["auto", "original", "rgbd"] = "auto"
    depth_scale_mm: float | None = Field(None, gt=0, le=1000,
                                         description="millimetres per stored depth unit (TUM 0.2, TrueDepth 0.0153); "
                                                     "default: the camera JSON's scale, else 1")
    color_glob: str | None = None
    depth_glob: str | None = None
    intrinsics: Intrinsics | None = Field(None, description="colour camera (pixels of the colour images)")
    depth_intrinsics: Intrinsics | None = Field(None, description="depth camera, for depth at another size "
                                                                  "(pixels of the depth images)")
    camera_json: str | None = Field(None, description="intrinsics JSON; default: info.json, intrinsics.json or "
                                                      "camera.json in the folder, where one is there")


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

    def _camera(self):
        """The camera JSON's intrinsics (given, or found beside the frames), or None."""
        from facesynth.capture.folder import camera_json as cj

        if self.params.camera_json is not None:
            return cj.read_camera_json(self.params.camera_json)
        found = cj.find_camera_json(self.params.path)
        return cj.read_camera_json(found, required=False) if found is not None else None

    def plan(self) -> SourcePlan:
        from facesynth.capture.folder import image_folders as f
        from facesynth.capture.folder.registration import folder_geometry

        p = self.params
        frames = self._list()
        cam = self._camera()
        h, w = f.image_size(frames[0].color)
        dh, dw = f.image_size(frames[0].depth)
        intr, self._reg = folder_geometry((h, w), (dh, dw), p.intrinsics, p.depth_intrinsics, cam)
        self._scale = p.depth_scale_mm or (cam.depth_scale_mm if cam is not None else None) or 1.0
        _, _, ir = f.load_frame(frames[0], self._scale, self._reg)
        return SourcePlan(available=len(frames), height=h, width=w, has_ir=ir is not None, intrinsics=intr,
                          calibration=None,
                          capture={"source": self.kind, "path": str(Path(p.path).resolve()),
                                   "layout": "original" if self._original else "rgbd",
                                   "depth_scale_mm": self._scale, "depth_size": [dw, dh],
                                   "camera_json": cam.source if cam is not None else None})

    def frames(self, start: int) -> Iterator[Frame]:
        from facesynth.capture.folder import image_folders as f

        frames = self._list()
        shape = None
        for i in range(start, len(frames)):
            rgb, depth, ir = f.load_frame(frames[i], self._scale, self._reg)
            if shape is None:
                shape = rgb.shape
            elif rgb.shape != shape:
                raise InputDataError(f"{frames[i].color}: image is {rgb.shape[1]}x{rgb.shape[0]}, "
                                     f"earlier frames are {shape[1]}x{shape[0]}")
            yield Frame(i, i, rgb, depth, ir)

    def default_split(self, frame: Frame) -> int | None:
        return self._list()[frame.index].split if self._original else None
