"""Loaders for the real sensor depth in ../shared/realdata (see its README for the encodings).

Hole filling is measured on real depth, not on synthetic surfaces: every loader returns a
`DepthFrame` with a guide image aligned pixel for pixel with the depth (colour where the
data set registers it, the infrared image for the Azure Kinect depth camera) and depth in
millimetres as uint16 with 0 = no reading, the same convention as the frame store.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facesynth.errors import InputDataError

OPEN3D = "nyu_tum_sun_redwood_open3d"
KINECT = "azure_kinect_mkv"
TRUEDEPTH_SEQUENCE = "truedepth_face_sequence"


@dataclass
class DepthFrame:
    """One real frame: guide image (H, W, 3) uint8 RGB and depth (H, W) uint16 mm (0 = hole)."""

    name: str
    color: np.ndarray
    depth: np.ndarray

    @property
    def hole_fraction(self) -> float:
        return float((self.depth == 0).mean())


def realdata_root(repo_root: str | os.PathLike | None = None) -> Path:
    """The real sensor captures that tests and benchmarks use: $FACESYNTH_REALDATA, else the first
    `shared/realdata` beside the repo or beside a folder above it (a CI clone may sit deeper than
    the working copy), else <repo>/../shared/realdata (absent: those tests say where they looked)."""
    if os.environ.get("FACESYNTH_REALDATA"):
        return Path(os.environ["FACESYNTH_REALDATA"]).resolve()
    root = (Path(repo_root) if repo_root is not None else Path(__file__).resolve().parents[2]).resolve()
    for folder in (root, *root.parents):
        found = folder.parent / "shared" / "realdata"
        if found.is_dir():
            return found
    return root.parent / "shared" / "realdata"


def _rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputDataError(f"{path}: not a readable colour image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _u16(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None or img.dtype != np.uint16 or img.ndim != 2:
        raise InputDataError(f"{path}: expected a single-channel 16-bit depth image")
    return img


def _to_mm(z_mm: np.ndarray, valid: np.ndarray) -> np.ndarray:
    z = np.where(valid & np.isfinite(z_mm) & (z_mm > 0) & (z_mm < 65535), np.rint(z_mm), 0)
    return z.astype(np.uint16)


def nyu_disparity_to_mm(raw: np.ndarray) -> np.ndarray:
    """Raw Kinect v1 disparity (2047 = invalid) -> mm, z_m = 351.3 / (1092.5 - raw)."""
    r = raw.astype(np.float64)
    valid = (raw < 2047) & (r < 1092.5)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = 351.3 / (1092.5 - r) * 1000.0
    return _to_mm(z, valid)


def read_pgm_le(path: Path) -> np.ndarray:
    """A 16-bit binary PGM whose samples are little-endian (the NYU toolbox's quirk)."""
    data = path.read_bytes()
    fields: list[bytes] = []
    i = 0
    while len(fields) < 4:
        while i < len(data) and data[i:i + 1].isspace():
            i += 1
        if data[i:i + 1] == b"#":
            i = data.index(b"\n", i) + 1
            continue
        j = i
        while j < len(data) and not data[j:j + 1].isspace():
            j += 1
        fields.append(data[i:j])
        i = j
    if fields[0] != b"P5":
        raise InputDataError(f"{path}: not a binary PGM (magic {fields[0]!r})")
    w, h, maxval = (int(f) for f in fields[1:])
    body = data[i + 1:]
    if maxval < 256 or len(body) < w * h * 2:
        raise InputDataError(f"{path}: expected {w}x{h} 16-bit samples, found {len(body)} bytes")
    return np.frombuffer(body[:w * h * 2], dtype="<u2").reshape(h, w)


def sun_to_mm(raw: np.ndarray) -> np.ndarray:
    """SUN RGB-D stores depth rotated by 3 bits: mm = (raw >> 3) | (raw << 13)."""
    r = raw.astype(np.uint16)
    return ((r >> 3) | (r << 13)).astype(np.uint16)


def load_open3d(root: Path | None = None) -> list[DepthFrame]:
    """NYU, SUN, TUM and the 5 Redwood frames (colour registered to depth, 640x480)."""
    d = (root or realdata_root()) / OPEN3D
    if not d.is_dir():
        raise InputDataError(f"{d}: real data folder absent")
    frames = [
        DepthFrame("nyu", _rgb(d / "NYU_color.ppm"), nyu_disparity_to_mm(read_pgm_le(d / "NYU_depth.pgm"))),
        DepthFrame("sun", _rgb(d / "SUN_color.jpg"), sun_to_mm(_u16(d / "SUN_depth.png"))),
        DepthFrame("tum", _rgb(d / "TUM_color.png"),
                   _to_mm(_u16(d / "TUM_depth.png").astype(np.float64) / 5.0, np.ones((1, 1), bool))),
    ]
    for k in range(5):
        frames.append(DepthFrame(f"redwood{k}", _rgb(d / f"redwood_color_{k:05d}.jpg"),
                                 _u16(d / f"redwood_depth_{k:05d}.png")))
    for f in frames:
        if f.color.shape[:2] != f.depth.shape:
            f.color = cv2.resize(f.color, f.depth.shape[::-1], interpolation=cv2.INTER_AREA)
    return frames


def ir_guide(ir: np.ndarray) -> np.ndarray:
    """Kinect IR (uint16, wide range) -> an 8-bit RGB guide image (log-ish tone map)."""
    x = np.log1p(ir.astype(np.float32))
    lo, hi = np.percentile(x, [1, 99.5]) if x.size else (0.0, 1.0)
    g = np.clip((x - lo) / max(hi - lo, 1e-6) * 255.0, 0, 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=2)


def load_kinect(root: Path | None = None, frames: int = 2) -> list[DepthFrame]:
    """The first `frames` Azure Kinect depth frames (640x576 NFOV) with the IR image as guide.

    Depth and IR come from the same sensor, so the guide is aligned without registration.
    """
    from facesynth.capture.kinect.recording import KinectRecording

    path = (root or realdata_root()) / KINECT / "recording.mkv"
    rec = KinectRecording(path)
    out: list[DepthFrame] = []
    for cap in rec.captures(0, None, on_error="stop"):
        if cap.depth is None:
            continue
        guide = ir_guide(cap.ir) if cap.ir is not None else np.zeros((*cap.depth.shape, 3), np.uint8)
        out.append(DepthFrame(f"kinect{cap.index}", guide, np.ascontiguousarray(cap.depth, dtype=np.uint16)))
        if len(out) >= frames:
            break
    if not out:
        raise InputDataError(f"{path}: no depth frames")
    return out


@dataclass
class TrueDepthSequence:
    """Frames of the iPhone TrueDepth face sequence: colour (N, 1280, 720, 3) RGB, depth (N, 640, 360)
    float32 mm (0 = no reading; colour pixel (x, y) is depth pixel (x/2, y/2)), the colour intrinsics."""

    indices: list[int]
    color: np.ndarray
    depth_mm: np.ndarray
    intrinsics: dict


def load_truedepth_sequence(indices: list[int] | None = None, root: Path | None = None) -> TrueDepthSequence:
    """The sequence's frames `indices` (all 34 when None), in mm with info.json's depth scale."""
    from facesynth.capture.folder.camera_json import read_camera_json

    d = (root or realdata_root()) / TRUEDEPTH_SEQUENCE
    if not d.is_dir():
        raise InputDataError(f"{d}: real data folder absent")
    cam = read_camera_json(d / "info.json")
    idx = list(range(len(list(d.glob("color_*.jpg"))))) if indices is None else list(indices)
    color = np.stack([_rgb(d / f"color_{i:02d}.jpg") for i in idx])
    depth = np.stack([_u16(d / f"depth_{i:02d}.png").astype(np.float32) * float(cam.depth_scale_mm) for i in idx])
    intr = {k: float(cam.color[k]) for k in ("fx", "fy", "cx", "cy")}
    return TrueDepthSequence(idx, color, depth, intr)


def load_all(root: Path | None = None, kinect_frames: int = 2) -> list[DepthFrame]:
    return load_open3d(root) + load_kinect(root, kinect_frames)


def center_crop(frame: DepthFrame, size: int = 256) -> DepthFrame:
    """A size x size crop around the frame's centre (the face-crop shape of the store)."""
    h, w = frame.depth.shape
    y0, x0 = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return DepthFrame(f"{frame.name}_c{size}", np.ascontiguousarray(frame.color[y0:y0 + size, x0:x0 + size]),
                      np.ascontiguousarray(frame.depth[y0:y0 + size, x0:x0 + size]))


def least_holes_crop(f: DepthFrame, size: int) -> DepthFrame:
    """The size x size window of `f` with the fewest sensor holes (integral-image search)."""
    holes = (f.depth == 0).astype(np.float64)
    ii = cv2.integral(holes)
    sums = ii[size:, size:] - ii[:-size, size:] - ii[size:, :-size] + ii[:-size, :-size]
    y, x = np.unravel_index(int(np.argmin(sums)), sums.shape)
    return DepthFrame(f"{f.name}@{y},{x}", np.ascontiguousarray(f.color[y:y + size, x:x + size]),
                      np.ascontiguousarray(f.depth[y:y + size, x:x + size]))


@dataclass
class FaceLikeCrops:
    """Crops of real frames shaped like face.crop output, with known depth under removed pixels.

    color (N,S,S,3) u8, depth (N,S,S) u16 with holes (0 outside the silhouette), mask (N,S,S)
    bool = measured pixels inside the silhouette (as crop/mask), truth (N,S,S) u16 sensor depth
    before removal, removed (N,S,S) bool, silhouette (N,S,S) bool (the ellipse).
    """

    color: np.ndarray
    depth: np.ndarray
    mask: np.ndarray
    truth: np.ndarray
    removed: np.ndarray
    silhouette: np.ndarray


def face_like_crops(frames: list[DepthFrame], n: int, size: int = 128, fraction: float = 0.03,
                    seed: int = 0) -> FaceLikeCrops:
    """`n` elliptical 'face' crops cut from real frames at random places, with realistic holes.

    Real depth stands in for face depth (no real face RGB-D with dense depth is in realdata);
    the ellipse plays the face silhouette: depth outside it is background (0, mask False).
    """
    from facesynth.depth.testdata_hole_masks import make_holes

    rng = np.random.default_rng(seed)
    donors = [f.depth == 0 for f in frames]
    out = {k: [] for k in ("color", "depth", "mask", "truth", "removed", "silhouette")}
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for i in range(n):
        f = frames[i % len(frames)]
        h, w = f.depth.shape
        y0, x0 = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
        color = f.color[y0:y0 + size, x0:x0 + size]
        truth = f.depth[y0:y0 + size, x0:x0 + size].copy()
        ay, ax = size * rng.uniform(0.36, 0.46), size * rng.uniform(0.28, 0.38)
        sil = ((yy - size / 2) / ay) ** 2 + ((xx - size / 2) / ax) ** 2 <= 1.0
        truth[~sil] = 0
        inner = cv2.erode(sil.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0  # holes the outline does not open
        removed = make_holes(truth, fraction, seed=int(rng.integers(1 << 30)), donors=donors,
                             margin=max(2, size // 32), allowed=inner)
        depth = truth.copy()
        depth[removed] = 0
        for k, v in (("color", color), ("depth", depth), ("mask", depth > 0), ("truth", truth),
                     ("removed", removed), ("silhouette", sil)):
            out[k].append(np.ascontiguousarray(v))
    return FaceLikeCrops(**{k: np.stack(v) for k, v in out.items()})
