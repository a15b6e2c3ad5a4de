"""iPhone TrueDepth portraits (HEIC and MPO JPEG) -> RGB + metric depth registered to it + intrinsics.

The portrait's depth is an 8-bit auxiliary *disparity* image (480x640 for a 2316x3088 photo, same
field of view). v in 0..255 maps linearly to disparity in 1/m between the image's dmin and dmax, so
z_mm = 1000 / (dmin + v / 255 * (dmax - dmin)). HEIC carries dmin/dmax in its depth metadata
(pillow-heif `d_min`/`d_max`); the MPO JPEG in the depth frame's XMP (apdi:FloatMinValue/MaxValue),
which also has the colour camera's intrinsic matrix. Without one, fx is estimated from the EXIF
35 mm-equivalent focal length (f35 * image diagonal / 43.27 mm; 1.2 % from the XMP matrix on
the JPEG here).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facesynth.errors import InputDataError, MissingDependencyError

FULL_FRAME_DIAGONAL_MM = 43.2666


@dataclass
class Portrait:
    rgb: np.ndarray            # (H, W, 3) uint8
    depth_mm: np.ndarray       # (H, W) uint16 mm, upsampled (nearest) to the colour image
    depth_lowres_mm: np.ndarray  # (h, w) float32 mm at the sensor's resolution
    intrinsics: dict           # fx, fy, cx, cy, width, height (colour px), source
    dmin: float
    dmax: float


def disparity_to_mm(v: np.ndarray, dmin: float, dmax: float) -> np.ndarray:
    """8-bit normalised disparity -> depth in mm (float32)."""
    disp = float(dmin) + np.asarray(v, dtype=np.float32) / 255.0 * (float(dmax) - float(dmin))
    return (1000.0 / np.maximum(disp, 1e-6)).astype(np.float32)


def load_portrait(path: str | Path) -> Portrait:
    """Decode a TrueDepth portrait (.heic or MPO .jpg)."""
    p = Path(path)
    if not p.exists():
        raise InputDataError(f"no such portrait: {p}")
    if p.suffix.lower() in (".heic", ".heif"):
        rgb, disp, dmin, dmax, exif, intr = _load_heic(p)
    else:
        rgb, disp, dmin, dmax, exif, intr = _load_mpo(p)
    h, w = rgb.shape[:2]
    if intr is None:
        intr = _intrinsics_from_exif(exif, w, h, p)
    low = disparity_to_mm(disp, dmin, dmax)
    full = cv2.resize(low, (w, h), interpolation=cv2.INTER_NEAREST)
    depth = np.clip(np.round(full), 0, 65535).astype(np.uint16)
    return Portrait(rgb, depth, low, intr, float(dmin), float(dmax))


def _load_heic(p: Path):
    try:
        import pillow_heif
    except ImportError as exc:
        raise MissingDependencyError("reading HEIC needs pillow-heif: `.venv/bin/pip install pillow-heif`") from exc
    heif = pillow_heif.open_heif(str(p), convert_hdr_to_8bit=True)
    depths = heif.info.get("depth_images") or []
    if not depths:
        raise InputDataError(f"{p} has no depth image (not a portrait photo?)")
    d = depths[0]
    meta = d.info.get("metadata") or {}
    if "d_min" not in meta or "d_max" not in meta:
        raise InputDataError(f"{p}: depth image has no d_min/d_max metadata")
    rgb = np.asarray(heif.to_pillow().convert("RGB"))
    disp = np.asarray(d.to_pillow().convert("L"))
    exif = heif.to_pillow().getexif()
    return rgb, disp, float(meta["d_min"]), float(meta["d_max"]), exif, None


def _load_mpo(p: Path):
    from PIL import Image

    im = Image.open(str(p))
    rgb = np.asarray(im.convert("RGB"))
    exif = im.getexif()
    for i in range(1, getattr(im, "n_frames", 1)):
        im.seek(i)
        xmp = im.info.get("xmp") or b""
        if isinstance(xmp, str):
            xmp = xmp.encode()
        if b"disparity" not in xmp and b"FloatMinValue" not in xmp:
            continue
        lo, hi = _xmp_float(xmp, b"FloatMinValue"), _xmp_float(xmp, b"FloatMaxValue")
        if lo is None or hi is None:
            continue
        disp = np.asarray(im.convert("L"))
        intr = _intrinsics_from_xmp(xmp, rgb.shape[1], rgb.shape[0])
        return rgb, disp, lo, hi, exif, intr
    raise InputDataError(f"{p} has no disparity frame with FloatMinValue/FloatMaxValue XMP")


def _xmp_float(xmp: bytes, name: bytes) -> float | None:
    m = re.search(rb"%s>\s*([-0-9.eE+]+)\s*<" % name, xmp) or re.search(rb'%s="([-0-9.eE+]+)"' % name, xmp)
    return float(m.group(1)) if m else None


def _intrinsics_from_xmp(xmp: bytes, w: int, h: int) -> dict | None:
    """Apple's depthData:IntrinsicMatrix (column-major 3x3) at IntrinsicMatrixReferenceWidth."""
    m = re.search(rb"IntrinsicMatrix>\s*<rdf:Seq>(.*?)</rdf:Seq>", xmp, re.S)
    if not m:
        return None
    vals = [float(v) for v in re.findall(rb"<rdf:li>([-0-9.eE+]+)</rdf:li>", m.group(1))]
    if len(vals) != 9:
        return None
    ref_w = _xmp_float(xmp, b"IntrinsicMatrixReferenceWidth") or float(w)
    k = np.array(vals).reshape(3, 3).T * (w / ref_w)  # column-major
    return {"fx": float(k[0, 0]), "fy": float(k[1, 1]), "cx": float(k[0, 2]), "cy": float(k[1, 2]),
            "width": int(w), "height": int(h), "source": "xmp IntrinsicMatrix"}


def _intrinsics_from_exif(exif, w: int, h: int, p: Path) -> dict:
    f35 = None
    try:
        f35 = exif.get_ifd(0x8769).get(0xA405)
    except Exception:
        f35 = None
    if not f35:
        raise InputDataError(f"{p}: no intrinsics in XMP and no EXIF FocalLengthIn35mmFilm to estimate them")
    f = float(f35) * float(np.hypot(w, h)) / FULL_FRAME_DIAGONAL_MM
    return {"fx": f, "fy": f, "cx": (w - 1) / 2.0, "cy": (h - 1) / 2.0, "width": int(w), "height": int(h),
            "source": f"exif FocalLengthIn35mmFilm={f35}"}
