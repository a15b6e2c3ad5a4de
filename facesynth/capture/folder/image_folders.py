"""RGB-D frames from image folders, so existing data sets can be used without a recording.

Two layouts:
- the original Face Synthesizer's unprocessed capture: `<root>/{train,eval}/{Color,Depth,Infrared}/<i>.png`
  (colour 8-bit, depth 16-bit millimetres, infrared 16-bit; already registered to colour);
- plain RGB-D folders (TrueDepth exports, TUM, Redwood, ...): colour and depth images paired by
  name (`rgb_12.png` <-> `depth_12.png`, `color/0001.jpg` <-> `depth/0001.png`), by nearest
  timestamp for TUM-style numeric names, with a declared depth scale (mm per stored unit:
  Redwood 1, TUM 0.2, TrueDepth exports 0.1, the TrueDepth face sequence 0.0153).
Depth images must be 16-bit single-channel. Depth at another resolution than the colour (a
phone's depth map over the same field of view) is registered to it by scaling with both
intrinsics (capture/depth_scaling.py); camera_json.py reads them from a JSON beside the frames.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facesynth.capture.depth_scaling import ScaledRegistration, to_mm_u16
from facesynth.errors import InputDataError

IMAGE_EXT = {".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".tif", ".tiff", ".bmp"}
_COLOR_WORDS = re.compile(r"(colou?r|rgb|image|img)", re.IGNORECASE)
_DEPTH_WORDS = re.compile(r"(depth)", re.IGNORECASE)
_TS_MAX_DIFF = 0.02  # seconds: TUM's association tolerance


@dataclass(frozen=True)
class FramePaths:
    color: Path
    depth: Path
    ir: Path | None = None
    split: int | None = None   # 0 train, 1 eval (original layout), None = decide later


def _numbered(folder: Path) -> dict[int, Path]:
    out = {}
    if folder.is_dir():
        for p in folder.iterdir():
            if p.suffix.lower() in IMAGE_EXT and p.stem.isdigit():
                out[int(p.stem)] = p
    return out


def is_original_layout(root: Path) -> bool:
    return any((root / s / "Color").is_dir() for s in ("train", "eval"))


def list_original(root: str | Path) -> list[FramePaths]:
    """Frames of the original layout: train first then eval, each in numeric order."""
    root = Path(root)
    frames: list[FramePaths] = []
    for split, name in ((0, "train"), (1, "eval")):
        colors = _numbered(root / name / "Color")
        depths = _numbered(root / name / "Depth")
        irs = _numbered(root / name / "Infrared")
        for i in sorted(colors):
            if i not in depths:
                raise InputDataError(f"{colors[i]}: no matching depth image {root / name / 'Depth' / f'{i}.png'}")
            frames.append(FramePaths(colors[i], depths[i], irs.get(i), split))
    if not frames:
        raise InputDataError(f"{root}: no frames in train/Color or eval/Color")
    return frames


def _key(path: Path, words: re.Pattern) -> str:
    rel = path.with_suffix("").as_posix()
    return words.sub("", rel.lower()).strip("_-./ ")


def _as_time(path: Path) -> float | None:
    try:
        value = float(path.stem)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def list_rgbd(root: str | Path, color_glob: str | None = None, depth_glob: str | None = None) -> list[FramePaths]:
    """Colour/depth pairs of a plain RGB-D folder, in name order."""
    root = Path(root)
    if not root.is_dir():
        raise InputDataError(f"{root}: no such folder")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXT)
    rel = {p: p.relative_to(root) for p in files}
    if depth_glob:
        depths = sorted(root.glob(depth_glob))
    else:
        depths = [p for p in files if _DEPTH_WORDS.search(rel[p].as_posix())]
    if color_glob:
        colors = sorted(root.glob(color_glob))
    else:
        depth_set = set(depths)
        colors = [p for p in files if p not in depth_set and _COLOR_WORDS.search(rel[p].as_posix())]
    if not colors or not depths:
        raise InputDataError(f"{root}: found {len(colors)} colour and {len(depths)} depth images; "
                             "name them with 'color'/'rgb' and 'depth', or pass color_glob/depth_glob")
    by_key = {_key(rel.get(p, p.relative_to(root)), _DEPTH_WORDS): p for p in depths}
    pairs = []
    for c in colors:
        d = by_key.get(_key(rel.get(c, c.relative_to(root)), _COLOR_WORDS))
        if d is not None:
            pairs.append(FramePaths(c, d))
    if pairs:
        return pairs
    ctimes = [_as_time(c) for c in colors]
    dtimes = [_as_time(d) for d in depths]
    if all(t is not None for t in ctimes + dtimes):  # TUM: associate by nearest timestamp
        dt = np.asarray(dtimes, dtype=np.float64)
        for c, t in zip(colors, ctimes):
            j = int(np.argmin(np.abs(dt - t)))
            if abs(dt[j] - t) <= _TS_MAX_DIFF:
                pairs.append(FramePaths(c, depths[j]))
        if pairs:
            return pairs
    if len(colors) == len(depths):
        return [FramePaths(c, d) for c, d in zip(colors, depths)]
    raise InputDataError(f"{root}: cannot pair {len(colors)} colour with {len(depths)} depth images by name")


def read_color(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR_RGB)
    if img is None:
        raise InputDataError(f"{path}: not a readable image")
    return img


def read_u16(path: Path, what: str) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputDataError(f"{path}: not a readable image")
    if img.ndim != 2 or img.dtype != np.uint16:
        raise InputDataError(f"{path}: {what} must be a 16-bit single-channel image, "
                             f"not {img.dtype} with shape {img.shape}")
    return img


def load_frame(frame: FramePaths, depth_scale_mm: float = 1.0, registration: ScaledRegistration | None = None,
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(RGB uint8, depth uint16 mm, IR uint16 or None) of one frame, depth registered to the colour.

    Without `registration` the depth must already be at the colour's size; with it, the depth (and IR)
    must be at the registration's depth size and are mapped onto the colour pixels."""
    rgb = read_color(frame.color)
    raw = read_u16(frame.depth, "depth")
    if registration is None and raw.shape != rgb.shape[:2]:
        raise InputDataError(f"{frame.depth}: depth is {raw.shape[1]}x{raw.shape[0]} but {frame.color.name} is "
                             f"{rgb.shape[1]}x{rgb.shape[0]}; give the depth camera's intrinsics (param "
                             "depth_intrinsics, or a camera JSON beside the frames) or register depth to colour first")
    ir = read_u16(frame.ir, "infrared") if frame.ir is not None else None
    if ir is not None and ir.shape != raw.shape:
        raise InputDataError(f"{frame.ir}: infrared is {ir.shape[1]}x{ir.shape[0]}, depth {raw.shape[1]}x{raw.shape[0]}")
    depth = raw if depth_scale_mm == 1.0 else to_mm_u16(raw, depth_scale_mm)
    if registration is None:
        return rgb, depth, ir
    if rgb.shape[:2] != registration.color_shape:
        raise InputDataError(f"{frame.color}: image is {rgb.shape[1]}x{rgb.shape[0]}, the intrinsics are for "
                             f"{registration.color_shape[1]}x{registration.color_shape[0]}")
    if raw.shape != registration.depth_shape:
        raise InputDataError(f"{frame.depth}: depth is {raw.shape[1]}x{raw.shape[0]}, the depth intrinsics are "
                             f"for {registration.depth_shape[1]}x{registration.depth_shape[0]}")
    return rgb, registration.apply(depth), registration.apply(ir) if ir is not None else None


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) of an image file, read from its decoded pixels."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputDataError(f"{path}: not a readable image")
    return img.shape[0], img.shape[1]


def nominal_intrinsics(width: int, height: int, hfov_deg: float = 70.0) -> dict:
    """A pinhole guess when a folder declares no intrinsics (flagged `estimated`)."""
    f = 0.5 * width / math.tan(math.radians(hfov_deg) / 2)
    return {"fx": f, "fy": f, "cx": (width - 1) / 2, "cy": (height - 1) / 2,
            "width": int(width), "height": int(height), "estimated": True}
