"""iPhone TrueDepth portraits (HEIC and MPO JPEG) -> RGB + metric depth registered to it + intrinsics.

The portrait's depth is an 8-bit auxiliary *disparity* image (480x640 for a 2316x3088 photo, same
field of view). v in 0..255 maps linearly to disparity in 1/m between the image's dmin and dmax, so
z_mm = 1000 / (dmin + v / 255 * (dmax - dmin)). HEIC carries dmin/dmax in its depth metadata
(pillow-heif `d_min`/`d_max`); the MPO JPEG in the depth frame's XMP (apdi:FloatMinValue/MaxValue),
which also has the colour camera's intrinsic matrix. Without one, fx is estimated from the EXIF
35 mm-equivalent focal length (f35 * image diagonal / 43.27 mm; 1.2 % from the XMP matrix on
the JPEG here).

A photo is a file someone may have sent: it is a regular file of at most `MAX_PORTRAIT_BYTES`,
recognised by its first bytes (not its name), and every image in it (colour, depth) declares at
most `MAX_PORTRAIT_PIXELS`, read from the headers before anything is decoded: a 176-megapixel
JPEG, or a few hundred bytes declaring 65535 x 65535, would otherwise be decoded into gigabytes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facesynth.capture.jpeg_check import jpeg_frame_size
from facesynth.errors import InputDataError, MissingDependencyError
from facesynth.input_files import MB, read_bytes

FULL_FRAME_DIAGONAL_MM = 43.2666
MAX_PORTRAIT_BYTES = 200 * MB       # an iPhone portrait is 2-15 MB
MAX_PORTRAIT_PIXELS = 64_000_000    # the 48 MP sensors give 8064 x 6048 (48.8 MP); portraits are 12 MP
MAX_MPO_FRAMES = 8                  # colour, disparity, and a few more (gain maps...)
HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"heif")


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


def photo_kind(head: bytes) -> str | None:
    """"jpeg" or "heic" from a file's first bytes (its name may say anything), else None."""
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS:
        return "heic"
    return None


def check_pixels(p: Path, what: str, width: int, height: int) -> None:
    """Refuse an image whose declared size is over MAX_PORTRAIT_PIXELS (or empty), before decoding it."""
    if width <= 0 or height <= 0 or width * height > MAX_PORTRAIT_PIXELS:
        raise InputDataError(f"{p}: its {what} declares {width} x {height} pixels ({width * height / 1e6:.0f} MP), "
                             f"more than the {MAX_PORTRAIT_PIXELS // 1_000_000} MP a portrait can have (or none); "
                             "refused before decoding it")


def load_portrait(path: str | Path) -> Portrait:
    """Decode a TrueDepth portrait (HEIC or MPO JPEG, told apart by content)."""
    p = Path(path)
    if not p.exists():
        raise InputDataError(f"no such portrait: {p}")
    head = read_bytes(p, MAX_PORTRAIT_BYTES, what="photo", first=1 * MB)  # a regular file, within the limit
    kind = photo_kind(head)
    if kind is None:
        raise InputDataError(f"{p} is not a JPEG or HEIC photo (it begins with {head[:12]!r}); give an iPhone "
                             "portrait (.heic, or the MPO .jpg with its depth)")
    if kind == "heic":
        rgb, disp, dmin, dmax, exif, intr = _load_heic(p)
    else:
        size = jpeg_frame_size(head)
        if size is None:
            raise InputDataError(f"{p}: no JPEG frame header in its first MB (a damaged or not a real JPEG)")
        check_pixels(p, "JPEG", *size)
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
    try:  # reads the boxes only; pixels are decoded below, once their sizes are known
        heif = pillow_heif.open_heif(str(p), convert_hdr_to_8bit=True)
        check_pixels(p, "HEIC image", *heif.size)
        depths = heif.info.get("depth_images") or []
        for d in depths:
            check_pixels(p, "depth image", *d.size)
    except (ValueError, RuntimeError, OSError, TypeError) as e:
        raise InputDataError(f"{p} is not a readable HEIC file ({type(e).__name__}: {str(e)[:200]})") from None
    if not depths:
        raise InputDataError(f"{p} has no depth image (not a portrait photo?)")
    d = depths[0]
    meta = d.info.get("metadata") or {}
    if "d_min" not in meta or "d_max" not in meta:
        raise InputDataError(f"{p}: depth image has no d_min/d_max metadata")
    try:
        rgb = np.asarray(heif.to_pillow().convert("RGB"))
        disp = np.asarray(d.to_pillow().convert("L"))
        exif = heif.to_pillow().getexif()
    except (ValueError, RuntimeError, OSError) as e:  # damaged image data
        raise InputDataError(f"{p}: its HEIC image data does not decode ({str(e)[:200]})") from None
    return rgb, disp, float(meta["d_min"]), float(meta["d_max"]), exif, None


def _load_mpo(p: Path):
    try:
        return _read_mpo(p)
    except (OSError, ValueError, SyntaxError, EOFError) as e:  # PIL: unidentified, truncated, broken MPF
        raise InputDataError(f"{p}: the JPEG does not decode ({type(e).__name__}: {str(e)[:200]})") from None


def _read_mpo(p: Path):
    from PIL import Image

    im = Image.open(str(p), formats=["JPEG", "MPO"])
    check_pixels(p, "JPEG", *im.size)
    rgb = np.asarray(im.convert("RGB"))
    exif = im.getexif()
    for i in range(1, min(getattr(im, "n_frames", 1), MAX_MPO_FRAMES)):
        im.seek(i)
        check_pixels(p, f"frame {i}", *im.size)
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
