"""Record3D exports (the iPhone app's `.r3d` file, a ZIP, or its unzipped folder), read as untrusted files.

Layout, as Record3D writes it and public readers (nerfstudio, viser) read it:
- `metadata`: JSON. `K`: the colour camera's 3x3 intrinsics stored column-major (`reshape(3,3).T`);
  `w`, `h`: colour size; `dw`, `dh`: depth size (where present); `fps`; `poses`: one
  [qx, qy, qz, qw, tx, ty, tz] per frame; `frameTimestamps`: seconds per frame (where present).
- `rgbd/<i>.jpg`: colour; `rgbd/<i>.depth`: LZFSE-compressed little-endian float32 metres, `dh`
  rows x `dw` columns, 0 or NaN = no reading; `rgbd/<i>.conf`: LZFSE uint8 confidence 0/1/2 (optional).
Frames are numbered, not always contiguously; a frame's number is its source index here.
Without `dw`/`dh` the depth size is inferred from the first decodable depth map: its length
and the colour's aspect ratio. Front (FaceID) exports have depth over the colour's field of view
(e.g. 480x640), LiDAR exports 256x192: both are registered by scaling (capture/depth_scaling.py).

The file is someone else's: every member's size is checked in the ZIP directory before a byte of
it is decompressed (a size other than the metadata implies, or a compression ratio no deflate
stream reaches, is damage), LZFSE output is bounded to the expected size (lzfse_bounded.py),
colour JPEGs are checked before decoding (capture/jpeg_check.py) and the metadata is parsed
with the shared checks for received files (facesynth/input_files.py). A damaged frame is a
`DamagedFrame` naming the export, the frame and why, by kind: zip (the member does not read:
CRC-32, cut short, impossible sizes), file (in a folder: not a regular file, or too large), lzfse,
size (decodes to the wrong length), jpeg, missing.
"""
from __future__ import annotations

import hashlib
import math
import os
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from facesynth.capture.depth_scaling import intrinsics_dict, same_aspect, scaled_intrinsics
from facesynth.capture.jpeg_check import ImageDamage, jpeg_damage
from facesynth.capture.record3d.lzfse_bounded import LzfseDamage, decode
from facesynth.capture.recording_identity import recording_identity
from facesynth.errors import InputDataError
from facesynth.input_files import MB, check_regular, parse_json, read_bytes

MAX_METADATA = 64 * MB     # a long recording's poses and timestamps; far more than an hour at 60 fps
MAX_SIDE = 16384           # pixels: no phone image is larger
MAX_DEFLATE_RATIO = 1100   # deflate cannot expand more than ~1032:1
JPEG_SLACK = 1 * MB        # EXIF and thumbnails a JPEG may carry beyond its pixels
_MEMBER = re.compile(r"^rgbd/(\d{1,9})\.(jpg|depth|conf)$")
LIDAR_SIZES = ((192, 256), (256, 192))


@dataclass
class DamagedFrame:
    index: int
    timestamp_us: int
    kind: str
    error: str


@dataclass
class ExportFrame:
    index: int
    timestamp_us: int
    color: np.ndarray           # (h, w, 3) uint8 RGB
    depth_m: np.ndarray         # (dh, dw) float32 metres, 0/NaN = no reading (low confidence removed)


class _ZipMembers:
    """Members of an .r3d: sizes from the ZIP directory, reads checked against them."""

    def __init__(self, path: Path):
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise InputDataError(f"{path}: not a readable Record3D export (.r3d is a ZIP file: {exc})") from None
        self.infos = {i.filename: i for i in self._zip.infolist() if not i.is_dir()}

    def names(self) -> list[str]:
        return list(self.infos)

    def size(self, name: str) -> int:
        return self.infos[name].file_size

    def read(self, name: str, limit: int) -> bytes:
        info = self.infos[name]
        stored = info.compress_type == zipfile.ZIP_STORED
        if info.file_size > limit:
            raise ImageDamage(f"{name} declares {info.file_size} bytes, at most {limit} expected", "zip")
        if (stored and info.compress_size != info.file_size) or (
                not stored and info.file_size > MAX_DEFLATE_RATIO * max(info.compress_size, 1)):
            raise ImageDamage(f"{name} declares {info.file_size} bytes from {info.compress_size} compressed: "
                              "not a ratio its compression can reach", "zip")
        try:
            with self._zip.open(info) as f:
                data = f.read(limit + 1)
        except (zipfile.BadZipFile, EOFError, zlib.error, OSError, ValueError, NotImplementedError,
                RuntimeError) as exc:
            raise ImageDamage(f"{name} does not read from the ZIP ({exc})", "zip") from None
        if len(data) != info.file_size:
            raise ImageDamage(f"{name} holds {len(data)} bytes, the ZIP directory says {info.file_size}", "zip")
        return data

    def digest(self) -> str:
        """Names, sizes and CRC-32s of every member (the ZIP directory: no member is read)."""
        h = hashlib.sha256()
        for name in sorted(self.infos):
            i = self.infos[name]
            h.update(f"{name}:{i.file_size}:{i.CRC};".encode())
        return h.hexdigest()

    def close(self) -> None:
        self._zip.close()


class _FolderMembers:
    """The unzipped export: `metadata` and `rgbd/` in a folder; every read is a checked regular file."""

    def __init__(self, root: Path):
        self.root = root
        rgbd = root / "rgbd"
        if not rgbd.is_dir():
            raise InputDataError(f"{root}: no rgbd/ folder (an unzipped Record3D export has metadata and rgbd/)")
        self._names = ["metadata"] + [f"rgbd/{p.name}" for p in rgbd.iterdir()]

    def names(self) -> list[str]:
        return self._names

    def size(self, name: str) -> int:
        return os.stat(self.root / name).st_size

    def read(self, name: str, limit: int) -> bytes:
        try:
            return read_bytes(self.root / name, limit, what=f"Record3D {name}")
        except InputDataError as exc:  # not a regular file, or larger than the frame can be
            raise ImageDamage(str(exc), "file") from None
        except OSError as exc:
            raise ImageDamage(f"{name} does not read ({exc})", "missing") from None

    def digest(self) -> str:
        h = hashlib.sha256()
        for name in sorted(self._names):
            h.update(f"{name}:{self.size(name)};".encode())
        return h.hexdigest()

    def close(self) -> None:
        pass


class Record3dExport:
    """An open export: metadata, intrinsics, the frame numbers, and its frames in order."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if self.path.is_dir():
            self._members: _ZipMembers | _FolderMembers = _FolderMembers(self.path)
            if not (self.path / "metadata").exists():
                raise InputDataError(f"{self.path}: no metadata file (an unzipped Record3D export has metadata and rgbd/)")
        elif self.path.exists():
            check_regular(self.path, what="Record3D export")
            self._members = _ZipMembers(self.path)
            if "metadata" not in self._members.names():
                raise InputDataError(f"{self.path}: no `metadata` member: not a Record3D export")
        else:
            raise InputDataError(f"{self.path}: no such Record3D export (.r3d file or unzipped folder)")
        try:
            self.metadata_json = self._members.read("metadata", MAX_METADATA)
        except ImageDamage as exc:
            raise InputDataError(f"{self.path}: the metadata does not read: {exc}") from None
        meta = parse_json(self.metadata_json, f"{self.path} (metadata)", what="Record3D metadata")
        self._parse_metadata(meta)
        self._list_frames()
        self.depth_shape: tuple[int, int] | None = None
        if self._meta_depth is not None:
            self.depth_shape = self._meta_depth

    # ---- metadata ---------------------------------------------------------------------------
    def _parse_metadata(self, meta) -> None:
        where = f"{self.path} (metadata)"
        if not isinstance(meta, dict):
            raise InputDataError(f"{where}: not a JSON object")

        def size(key: str, required: bool) -> int | None:
            v = meta.get(key)
            if v is None and not required:
                return None
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v != int(v) or not 0 < v <= MAX_SIDE:
                raise InputDataError(f"{where}: `{key}` is {v!r}, not an image size in pixels (1..{MAX_SIDE})")
            return int(v)

        w, h = size("w", True), size("h", True)
        dw, dh = size("dw", False), size("dh", False)
        self._meta_depth = (dh, dw) if dw is not None and dh is not None else None
        k = meta.get("K")
        if (not isinstance(k, list) or len(k) != 9
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in k)):
            raise InputDataError(f"{where}: `K` must be the 9 numbers of the colour intrinsics (column-major 3x3)")
        km = np.asarray(k, np.float64).reshape(3, 3).T  # stored column-major
        self.intrinsics = intrinsics_dict(km[0, 0], km[1, 1], km[0, 2], km[1, 2], w, h, source="record3d metadata K")
        fps = meta.get("fps", 30)
        self.fps = float(fps) if isinstance(fps, (int, float)) and not isinstance(fps, bool) and 0 < fps <= 1000 else 30.0
        ts = meta.get("frameTimestamps")
        self._timestamps = ts if isinstance(ts, list) else []
        poses = meta.get("poses")
        self.pose_count = len(poses) if isinstance(poses, list) else 0

    @property
    def color_shape(self) -> tuple[int, int]:
        return self.intrinsics["height"], self.intrinsics["width"]

    @property
    def depth_intrinsics(self) -> dict:
        """The colour intrinsics scaled to the depth map (same field of view); needs depth_shape."""
        dh, dw = self.depth_shape
        return scaled_intrinsics(self.intrinsics, dw, dh)

    @property
    def depth_source(self) -> str:
        """lidar for the back camera's 256x192 maps, else truedepth (the front FaceID camera)."""
        return "lidar" if self.depth_shape in LIDAR_SIZES else "truedepth"

    def timestamp_us(self, number: int) -> int:
        """frameTimestamps[number] (seconds) where the export has it, else number / fps."""
        if 0 <= number < len(self._timestamps):
            t = self._timestamps[number]
            if isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t):
                return int(round(t * 1e6))
        return int(round(number * 1e6 / self.fps))

    # ---- frames -------------------------------------------------------------------------------
    def _list_frames(self) -> None:
        parts: dict[int, set[str]] = {}
        for name in self._members.names():
            m = _MEMBER.match(name)
            if m:
                parts.setdefault(int(m.group(1)), set()).add(m.group(2))
        self._parts = parts
        self.numbers = sorted(n for n, p in parts.items() if "jpg" in p or "depth" in p)
        if not self.numbers:
            raise InputDataError(f"{self.path}: no frames (rgbd/<i>.jpg and rgbd/<i>.depth)")

    def identity(self) -> dict:
        """Which export a store was captured from (recording_identity.py): path, size and a hash of its
        metadata and every frame member's name, size (and CRC-32 for an .r3d)."""
        if isinstance(self._members, _FolderMembers):
            return recording_identity(self.path / "metadata", self.metadata_json, self._members.digest())
        return recording_identity(self.path, self.metadata_json, self._members.digest())

    def infer_depth_shape(self, tries: int = 10) -> tuple[int, int]:
        """The depth size: the metadata's dw/dh, else from the first decodable depth map (its float count
        and the colour's aspect ratio)."""
        if self.depth_shape is not None:
            return self.depth_shape
        h, w = self.color_shape
        why = f"none of the first {tries} depth maps decodes"
        for number in [n for n in self.numbers if "depth" in self._parts[n]][:tries]:
            try:
                raw = self._depth_bytes(number, 4 * h * w)
            except ImageDamage:
                continue
            px = len(raw) // 4
            dw = int(round(math.sqrt(px * w / h))) if len(raw) % 4 == 0 else 0
            if dw and px % dw == 0 and same_aspect((px // dw, dw), (h, w)):
                self.depth_shape = (px // dw, dw)
                return self.depth_shape
            why = (f"frame {number}'s {len(raw)} depth bytes are no float32 map with the colour's "
                   f"{w}x{h} aspect ratio")
        raise InputDataError(f"{self.path}: the metadata gives no depth size (dw, dh) and {why}")

    def _depth_bytes(self, number: int, expected: int) -> bytes:
        data = self._members.read(f"rgbd/{number}.depth", expected + 4096)
        try:
            return decode(data, expected)
        except LzfseDamage as exc:
            raise ImageDamage(f"rgbd/{number}.depth: {exc}", "lzfse") from None

    def read_frame(self, number: int, min_confidence: int = 0) -> ExportFrame:
        """One frame, checked (ImageDamage with its kind when a part is damaged or missing)."""
        h, w = self.color_shape
        dh, dw = self.infer_depth_shape()
        parts = self._parts.get(number, set())
        for part in ("jpg", "depth"):
            if part not in parts:
                raise ImageDamage(f"rgbd/{number}.{part} is missing", "missing")
        jpeg = self._members.read(f"rgbd/{number}.jpg", 3 * h * w + JPEG_SLACK)
        why = jpeg_damage(jpeg, True, (w, h))
        if why:
            raise ImageDamage(f"rgbd/{number}.jpg: {why}", "jpeg")
        color = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR_RGB)
        if color is None or color.shape != (h, w, 3):
            raise ImageDamage(f"rgbd/{number}.jpg does not decode to {w}x{h} colour", "jpeg")
        raw = self._depth_bytes(number, 4 * dh * dw)
        if len(raw) != 4 * dh * dw:
            raise ImageDamage(f"rgbd/{number}.depth decodes to {len(raw)} bytes, a {dw}x{dh} float32 map is "
                              f"{4 * dh * dw}", "size")
        depth = np.frombuffer(raw, "<f4").reshape(dh, dw).astype(np.float32)
        if min_confidence > 0 and "conf" in parts:
            try:
                conf = decode(self._members.read(f"rgbd/{number}.conf", dh * dw + 4096), dh * dw)
            except LzfseDamage as exc:
                raise ImageDamage(f"rgbd/{number}.conf: {exc}", "lzfse") from None
            if len(conf) != dh * dw:
                raise ImageDamage(f"rgbd/{number}.conf decodes to {len(conf)} bytes, expected {dh * dw}", "size")
            depth[np.frombuffer(conf, np.uint8).reshape(dh, dw) < min_confidence] = 0
        return ExportFrame(number, self.timestamp_us(number), color, depth)

    def frames(self, start: int = 0, min_confidence: int = 0) -> Iterator[ExportFrame | DamagedFrame]:
        """Frames numbered `start` and on, in order; a damaged one as a DamagedFrame."""
        for number in self.numbers:
            if number < start:
                continue
            try:
                yield self.read_frame(number, min_confidence)
            except ImageDamage as exc:
                yield DamagedFrame(number, self.timestamp_us(number), exc.kind,
                                   f"{self.path}: frame {number}: {exc}")

    def close(self) -> None:
        self._members.close()
