"""Intrinsics and depth units from a JSON file beside an RGB-D folder's frames.

Two formats are read:
- a `streams` list, as in the real TrueDepth face sequence's `info.json`: streams named Color and
  Depth, each with `shape` ([height, width] or [height, width, channels]) and
  `properties.intrinsics` {`focal`: [fx, fy], `pp`: [cx, cy], `scale`: millimetres per stored
  depth unit};
- facesynth's own: {"color": {fx, fy, cx, cy, width, height}, "depth": {...}, "depth_scale_mm": s}
  (each part optional).
Found automatically under the names in CAMERA_FILES; a file given by name must be one of these
formats, one found automatically that is neither is ignored (a data set's own metadata).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from facesynth.capture.depth_scaling import intrinsics_dict
from facesynth.errors import InputDataError
from facesynth.input_files import MB, read_json

CAMERA_FILES = ("info.json", "intrinsics.json", "camera.json")


@dataclass
class FolderCamera:
    color: dict | None          # intrinsics at the size they declare (fx, fy, cx, cy, width, height)
    depth: dict | None
    depth_scale_mm: float | None
    source: str                 # the file they came from


def find_camera_json(root: str | os.PathLike) -> Path | None:
    for name in CAMERA_FILES:
        p = Path(root) / name
        if p.is_file():
            return p
    return None


def read_camera_json(path: str | os.PathLike, required: bool = True) -> FolderCamera | None:
    """The file's intrinsics; InputDataError where a recognised file is wrong; None for an unknown format
    unless `required`."""
    path = Path(path)
    doc = read_json(path, max_bytes=4 * MB, what="camera JSON")
    if isinstance(doc, dict) and isinstance(doc.get("streams"), list):
        return _from_streams(doc["streams"], path)
    if isinstance(doc, dict) and ("color" in doc or "depth" in doc or "depth_scale_mm" in doc):
        color = _plain(doc.get("color"), path, "color")
        depth = _plain(doc.get("depth"), path, "depth")
        return FolderCamera(color, depth, _scale(doc.get("depth_scale_mm"), path), str(path))
    if required:
        raise InputDataError(f"{path}: not a camera JSON facesynth reads (a `streams` list with Color and Depth, "
                             "or {\"color\": {fx, fy, cx, cy, width, height}, \"depth\": {...}, \"depth_scale_mm\": s})")
    return None


def _number(v, path: Path, what: str) -> float:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        raise InputDataError(f"{path}: {what} is {v!r}, not a number")
    return float(v)


def _scale(v, path: Path) -> float | None:
    if v is None:
        return None
    s = _number(v, path, "the depth scale")
    if not 0 < s <= 1000:
        raise InputDataError(f"{path}: the depth scale {s} mm per unit is not in (0, 1000]")
    return s


def _plain(d, path: Path, what: str) -> dict | None:
    if d is None:
        return None
    if not isinstance(d, dict) or not all(k in d for k in ("fx", "fy", "cx", "cy", "width", "height")):
        raise InputDataError(f"{path}: `{what}` must hold fx, fy, cx, cy, width and height")
    vals = {k: _number(d[k], path, f"{what}.{k}") for k in ("fx", "fy", "cx", "cy", "width", "height")}
    return intrinsics_dict(**vals)


def _from_streams(streams: list, path: Path) -> FolderCamera:
    found: dict[str, dict] = {}
    scale = None
    for s in streams:
        if not isinstance(s, dict) or str(s.get("name", "")).lower() not in ("color", "colour", "depth"):
            continue
        name = "color" if str(s["name"]).lower().startswith("col") else "depth"
        shape = s.get("shape")
        intr = (s.get("properties") or {}).get("intrinsics") if isinstance(s.get("properties"), dict) else None
        if not isinstance(shape, list) or len(shape) < 2 or not isinstance(intr, dict):
            raise InputDataError(f"{path}: the {s['name']} stream needs `shape` and `properties.intrinsics`")
        focal, pp = intr.get("focal"), intr.get("pp")
        if not (isinstance(focal, list) and len(focal) == 2 and isinstance(pp, list) and len(pp) == 2):
            raise InputDataError(f"{path}: the {s['name']} stream's intrinsics need `focal` [fx, fy] and `pp` [cx, cy]")
        h, w = (_number(v, path, f"{s['name']} shape") for v in shape[:2])
        found[name] = intrinsics_dict(_number(focal[0], path, "focal"), _number(focal[1], path, "focal"),
                                      _number(pp[0], path, "pp"), _number(pp[1], path, "pp"), int(w), int(h))
        if name == "depth" and intr.get("scale") is not None:
            scale = _scale(intr["scale"], path)
    if not found:
        raise InputDataError(f"{path}: its `streams` hold no Color or Depth stream")
    return FolderCamera(found.get("color"), found.get("depth"), scale, str(path))
