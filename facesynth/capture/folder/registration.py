"""Which colour intrinsics an image folder has, and how its depth reaches the colour pixels.

Pure decisions from the image sizes and what is known (params first, then the camera JSON):
- colour intrinsics: params, else the JSON's (scaled when the images are the same view at
  another size), else a nominal guess flagged `estimated`;
- depth: at the colour's size with no depth intrinsics, used as it is (already registered);
  otherwise registered by scaling through the depth camera's intrinsics, or, when only the
  colour's are known, the colour's scaled to the depth size (same field of view: the aspect
  ratios must match, else the depth intrinsics are needed).
"""
from __future__ import annotations

from facesynth.capture.depth_scaling import ScaledRegistration, intrinsics_dict, same_aspect, scaled_intrinsics
from facesynth.capture.folder.image_folders import nominal_intrinsics
from facesynth.errors import InputDataError


def _at_size(k: dict, h: int, w: int, what: str, source: str) -> dict:
    """Intrinsics `k` for images of h x w: as they are, or scaled when they declare another size of the same view."""
    if (k["height"], k["width"]) == (h, w):
        return k
    if not same_aspect((k["height"], k["width"]), (h, w)):
        raise InputDataError(f"{source}: the {what} intrinsics are for {k['width']}x{k['height']} images, "
                             f"the {what} images are {w}x{h} (another aspect ratio)")
    return scaled_intrinsics(k, w, h)


def folder_geometry(color_shape: tuple[int, int], depth_shape: tuple[int, int], color_param=None,
                    depth_param=None, camera=None) -> tuple[dict, ScaledRegistration | None]:
    """(colour intrinsics for the store, registration of the depth or None when it is already registered).

    color_param/depth_param: the node's Intrinsics params (pixels of their own images) or None;
    camera: a camera_json.FolderCamera or None."""
    (h, w), (dh, dw) = color_shape, depth_shape
    source = camera.source if camera is not None else "params"
    if color_param is not None:
        color = intrinsics_dict(**color_param.model_dump(), width=w, height=h)
    elif camera is not None and camera.color is not None:
        color = dict(_at_size(camera.color, h, w, "colour", source), source=source)
    else:
        color = nominal_intrinsics(w, h)
    if depth_param is not None:
        depth = intrinsics_dict(**depth_param.model_dump(), width=dw, height=dh)
    elif camera is not None and camera.depth is not None:
        depth = _at_size(camera.depth, dh, dw, "depth", source)
    else:
        depth = None
    if depth is None:
        if (dh, dw) == (h, w):
            return color, None
        if not same_aspect((dh, dw), (h, w)):
            raise InputDataError(f"depth images are {dw}x{dh}, colour images {w}x{h} (another aspect ratio): give the "
                                 "depth camera's intrinsics (param depth_intrinsics, or a camera JSON beside the frames)")
        return color, ScaledRegistration.same_view(color, dh, dw)
    return color, ScaledRegistration(color, depth)
