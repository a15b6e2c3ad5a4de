"""Azure Kinect MKV recordings read without the Kinect SDK (our EBML walker, numpy/OpenCV decode).

A recording holds COLOR (MJPEG, or raw NV12/YUY2/BGRA), DEPTH and IR (16-bit big-endian, FourCC
`b16g`) tracks, an IMU track we ignore, and the factory calibration as a `calibration.json`
attachment. Blocks of the three image tracks with (nearly) the same timestamp form one capture.
PyAV reads the tracks, tags and attachment; the blocks are read by mkv_blocks.py.

Damage is reported, never papered over. A frame is damaged when an image is missing, has the
wrong size, or is a JPEG whose structure or Huffman data is broken (capture/jpeg_check.py, kinect/images.py); when
its cluster fails its CRC-32 or its sizes do not add up; data that cannot be read at all
(a broken stretch, random bytes to the end, a truncated file) is one damaged item standing
for the frames estimated to be lost in it (`frames_lost`, which also advance the frame index). Each damaged frame is an item with a message
naming the file, the frame index, its time and byte offset, and a `kind` (jpeg, size,
missing, checksum, structure, unreadable, truncated); `captures(on_error=...)` decides what
happens to it. Captures before the first complete one (cameras still starting) are skipped
without counting as frames. Not detectable: damage inside a cluster without a CRC-32 element
that leaves the images' sizes and JPEG structure intact (flipped bits in raw depth/IR); and,
under jpeg_check="auto", a JPEG damaged before it was recorded (its cluster's CRC-32 matches)
whose damage stays inside one restart interval: the Huffman walk that finds it costs about as
much as libjpeg's own Huffman decoding, so it runs only where no checksum vouches for the bytes
(jpeg_check="full": on every frame).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from facesynth.errors import InputDataError, MissingDependencyError
from facesynth.capture.kinect.calibration import (KinectCalibration, color_mode_for_size, depth_mode_for_size,
                                                 load_calibration, parse_calibration)
from facesynth.capture.damage_policy import apply_on_error
from facesynth.capture.jpeg_check import ImageDamage
from facesynth.capture.kinect.images import decode_color, decode_u16
from facesynth.capture.kinect.mkv_blocks import Broken, MkvFile

ROLES = ("color", "depth", "ir")
_TITLES = {"COLOR": "color", "DEPTH": "depth", "IR": "ir"}
_SYNC_US = 8000  # blocks closer than this (after removing the depth delay) belong to one capture


@dataclass
class Track:
    role: str
    index: int
    fmt: str          # mjpeg, nv12, yuy2, bgra, u16be, u16le
    width: int
    height: int


@dataclass
class Capture:
    """One synchronised capture. For a damaged frame (on_error skip/stop) `error` says why, `damage` is
    its kind, `frames_lost` estimates the frames inside an unreadable stretch, and the images are None."""

    index: int
    timestamp_us: int
    color: np.ndarray | None = None   # (H, W, 3) uint8 RGB
    depth: np.ndarray | None = None   # (h, w) uint16 mm, depth camera
    ir: np.ndarray | None = None      # (h, w) uint16, depth camera
    error: str | None = None
    damage: str | None = None
    frames_lost: int = 0


@dataclass
class _Group:
    ts: int
    blocks: dict[str, tuple[memoryview, int]] = field(default_factory=dict)  # role -> (payload, byte offset)
    suspect: str | None = None  # why some of its blocks cannot be trusted (from mkv_blocks)
    crc_ok: bool = True  # every block's cluster checksum matched


def _track_format(cc) -> str | None:
    tag = (cc.codec_tag or "").strip("\x00")
    pix = cc.pix_fmt or ""
    if cc.name == "mjpeg" or tag == "MJPG":
        return "mjpeg"
    if tag == "NV12" or pix == "nv12":
        return "nv12"
    if tag == "YUY2" or pix == "yuyv422":
        return "yuy2"
    if tag == "BGRA" or pix in ("bgra", "bgr0"):
        return "bgra"
    if tag == "b16g" or pix == "gray16be":
        return "u16be"
    if pix == "gray16le":
        return "u16le"
    return None


class KinectRecording:
    """An open Azure Kinect MKV file: tracks, tags, calibration, and its captures in order."""

    def __init__(self, path: str | os.PathLike, jpeg_check: str = "auto"):
        try:
            import av
        except ImportError:  # pragma: no cover - av is a core dependency
            raise MissingDependencyError("reading MKV needs PyAV: pip install av") from None
        self._av = av
        if jpeg_check not in ("auto", "full"):
            raise ValueError(f"jpeg_check must be auto or full, not {jpeg_check!r}")
        self.jpeg_check = jpeg_check  # full: Huffman-walk every JPEG; auto: only where no CRC-32 vouches for it
        self.path = Path(path)
        if not self.path.is_file():
            raise InputDataError(f"{self.path}: no such recording")
        try:
            with av.open(str(self.path)) as c:
                self.tags = {str(k): str(v) for k, v in c.metadata.items()}
                self.tracks: dict[str, Track] = {}
                self.calibration_json: bytes | None = None
                for s in c.streams:
                    title = (s.metadata or {}).get("title", "")
                    if s.type == "video" and title in _TITLES:
                        cc = s.codec_context
                        fmt = _track_format(cc)
                        if fmt is None:
                            raise InputDataError(f"{self.path}: {title} track has an unsupported format "
                                                 f"(codec {cc.name}, tag {cc.codec_tag!r}, pixels {cc.pix_fmt})")
                        self.tracks[_TITLES[title]] = Track(_TITLES[title], s.index, fmt, s.width, s.height)
                    elif s.type == "attachment" and getattr(s, "name", "") == "calibration.json":
                        self.calibration_json = bytes(s.data)
        except InputDataError:
            raise
        except Exception as exc:
            raise InputDataError(f"{self.path}: not a readable MKV recording ({exc})") from None
        for role in ("color", "depth"):
            if role not in self.tracks:
                raise InputDataError(f"{self.path}: no {role.upper()} track; facesynth needs colour and depth "
                                     f"(tracks: {', '.join(self.tracks) or 'none'})")
        try:
            self._mkv = MkvFile(self.path)
        except (OSError, ValueError) as exc:
            raise InputDataError(f"{self.path}: not a readable MKV recording ({exc})") from None
        numbers = self._mkv.layout.track_numbers
        self._roles = {numbers[t]: role for t, role in _TITLES.items() if role in self.tracks and t in numbers}
        if set(self._roles.values()) != set(self.tracks):
            raise InputDataError(f"{self.path}: the track list names no track number for "
                                 f"{', '.join(sorted(set(self.tracks) - set(self._roles.values())))}")
        self.depth_delay_us = int(self.tags.get("K4A_DEPTH_DELAY_NS", "0") or 0) // 1000
        self.start_offset_us = int(self.tags.get("K4A_START_OFFSET_NS", "0") or 0) // 1000

    @property
    def color_shape(self) -> tuple[int, int]:
        t = self.tracks["color"]
        return t.height, t.width

    @property
    def depth_shape(self) -> tuple[int, int]:
        t = self.tracks["depth"]
        return t.height, t.width

    def calibration(self, override: str | os.PathLike | None = None) -> KinectCalibration:
        """The calibration for this recording's modes, from the attachment or `override` (a JSON file)."""
        d, c = self.tracks["depth"], self.tracks["color"]
        depth_mode = self.tags.get("K4A_DEPTH_MODE") or depth_mode_for_size(d.width, d.height)
        color_mode = color_mode_for_size(c.width, c.height)
        if override is not None:
            return load_calibration(override, depth_mode, color_mode)
        if self.calibration_json is None:
            raise InputDataError(f"{self.path}: no calibration.json attachment; pass the device's "
                                 "calibration file (param `calibration`)")
        return parse_calibration(self.calibration_json, depth_mode, color_mode,
                                 source=f"{self.path} (calibration.json attachment)")

    def count_frames(self) -> int:
        """Number of frame slots (one pass over the block headers, nothing decoded), damaged ones included.

        Also sets `frames_digest`: a hash of every slot's time and byte offset, part of the
        recording's identity (two captures never share their timestamps).
        """
        digest = hashlib.sha256()
        n = 0
        for item in self._groups(verify=False):
            if isinstance(item, _Damage):
                digest.update(f"{item.index}:{item.kind};".encode())
                n += item.frames_lost
            else:
                digest.update(f"{item[0]}:{item[1].ts}:{min(p for _, p in item[1].blocks.values())};".encode())
                n += 1
        self.frames_digest = digest.hexdigest()
        return n

    def captures(self, start: int = 0, stop: int | None = None, decode: bool = True,
                 on_error: str = "fail") -> Iterator[Capture]:
        """Captures [start, stop) in order, decoded.

        on_error (capture/damage_policy.py): "fail" raises InputDataError at the first damaged frame
        (after yielding the frames before it); "skip" yields each damaged frame as a Capture with
        `.error` set and goes on where the file allows; "stop" yields the first damaged frame so, and ends.
        """
        return apply_on_error(self._captures(start, stop, decode), on_error, lambda c: c.error)

    def _captures(self, start: int, stop: int | None, decode: bool) -> Iterator[Capture]:
        """Every capture in [start, stop), a damaged one with `.error` set; ends after a fatal damage."""
        for item in self._groups(verify=decode):
            if isinstance(item, _Damage):
                dmg = item
            else:
                index, group = item
                if stop is not None and index >= stop:
                    return
                if index < start:
                    continue
                if not decode:
                    yield Capture(index, group.ts)
                    continue
                try:
                    yield self._decode(index, group)
                    continue
                except _Damage as exc:
                    dmg = exc
            if stop is not None and dmg.index >= stop:
                return
            if dmg.index < start and not dmg.fatal:
                continue
            yield Capture(max(dmg.index, start), dmg.ts, error=str(dmg), damage=dmg.kind, frames_lost=dmg.frames_lost)
            if dmg.fatal:
                return

    # ---- internals ----------------------------------------------------------------------
    def _where(self, index: int, ts: int | None, pos: int | None) -> str:
        t = f", t={ts / 1e6:.6f} s" if ts is not None else ""
        b = f", byte {pos}" if pos is not None and pos >= 0 else ""
        return f"{self.path}: frame {index}{t}{b}"

    def _decode(self, index: int, g: _Group) -> Capture:
        """The images of a complete capture; _Damage if one is damaged or its cluster's bytes are suspect."""
        cap = Capture(index, g.ts)
        for role, (data, pos) in g.blocks.items():
            t = self.tracks[role]
            try:
                if role == "color":  # a JPEG whose bytes a CRC-32 vouches for: markers only (jpeg_check auto)
                    cap.color = decode_color(data, t.fmt, t.width, t.height,
                                             huffman=self.jpeg_check == "full" or not g.crc_ok)
                else:
                    setattr(cap, role, decode_u16(data, t.fmt, t.width, t.height, role.upper()))
            except ImageDamage as exc:
                raise _Damage(f"{self._where(index, g.ts, pos)}: {role} image is corrupt: {exc}",
                              index, g.ts, exc.kind) from None
        if g.suspect is not None:
            pos = min(p for _, p in g.blocks.values())
            raise _Damage(f"{self._where(index, g.ts, pos)}: {g.suspect}", index, g.ts,
                          "checksum" if "CRC-32" in g.suspect else "structure")
        return cap

    def _frame_bytes(self) -> int:
        """Bytes one capture takes in the file, before any is seen: the raw images' sizes (MJPEG at 1/4)."""
        n = 0
        for t in self.tracks.values():
            per_pixel = {"mjpeg": 0.25, "nv12": 1.5, "yuy2": 2, "bgra": 4}.get(t.fmt, 2)
            n += int(t.width * t.height * per_pixel)
        return max(n, 1)

    def _groups(self, verify: bool = True) -> Iterator[tuple[int, _Group] | "_Damage"]:
        """Captures in order as (frame index, blocks), or a _Damage where the file is damaged.

        A damaged capture takes a frame index; a stretch of unreadable data is one item that takes
        as many indices as frames it is estimated to hold (its bytes over the bytes per frame so
        far), so the frames after it keep theirs; one that runs to the end of the file is the
        last item (fatal). `verify` checks cluster CRC-32s (the decode pass; counting skips it).
        """
        want = set(self.tracks)
        tol = _SYNC_US + abs(self.depth_delay_us)
        st = {"index": 0, "started": False, "span_sum": 0, "spans": 0, "last_pos": None}
        size = self._mkv.layout.file_size

        def take() -> int:
            st["index"] += 1
            return st["index"] - 1

        def frame_bytes() -> float:
            return st["span_sum"] / st["spans"] if st["spans"] else self._frame_bytes()

        def close(group: _Group) -> Iterator[tuple[int, _Group] | _Damage]:
            first = min(p for _, p in group.blocks.values())
            if set(group.blocks) == want:
                if st["last_pos"] is not None:
                    st["span_sum"] += first - st["last_pos"]
                    st["spans"] += 1
                st["last_pos"], st["started"] = first, True
                yield take(), group
            elif st["started"]:  # before that: cameras still starting, not a frame yet
                missing = ", ".join(sorted(want - set(group.blocks)))
                why = f" ({group.suspect})" if group.suspect else " (corrupt or dropped block)"
                yield _Damage(f"{self._where(st['index'], group.ts, first)}: {missing} image missing{why}",
                              st["index"], group.ts, "structure" if group.suspect else "missing")
                take()

        def broken(b: Broken, hit: _Group | None) -> _Damage:
            lost = b.end - b.pos + (sum(len(d) for d, _ in hit.blocks.values()) if hit else 0)
            n = max(1, int(round(lost / frame_bytes())))
            i, ts = st["index"], hit.ts if hit is not None else None
            pos = min(p for _, p in hit.blocks.values()) if hit is not None else b.pos
            if b.truncated:
                end = self._mkv.layout.declared_end
                total = f"{size} of {end} bytes" if end else f"{size} bytes, its last cluster cut short"
                text = (f"file is truncated ({total}), this frame is cut short or missing; "
                        f"the {i} frames before it are intact")
                kind = "truncated"
            elif hit is not None:
                missing = ", ".join(sorted(want - set(hit.blocks)))
                text = b.why + (f"; {missing} image missing" if missing else "")
                kind = "structure"
            else:
                tail = " to the end of the file" if b.at_end else ""
                text = (f"{b.end - b.pos} bytes of unreadable data{tail} ({b.why}); "
                        f"about {n} frame{'s' if n != 1 else ''} lost here")
                kind = "unreadable"
            return _Damage(f"{self._where(i, ts, pos)}: {text}", i, ts, kind, fatal=b.at_end, frames_lost=n)

        cur: _Group | None = None
        for item in self._mkv.blocks(verify_crc=verify):
            if isinstance(item, Broken):
                hit = cur if cur is not None and cur.suspect == item.why else None
                if cur is not None and hit is None:
                    yield from close(cur)
                cur, st["last_pos"] = None, None  # a span across the damage is no frame's size
                if hit is not None or item.end > item.pos or item.truncated or item.at_end:
                    dmg = broken(item, hit)
                    yield dmg
                    for _ in range(dmg.frames_lost):  # the frames after it keep their own indices
                        take()
                if item.at_end:
                    return
                continue
            role = self._roles.get(item.track)
            if role is None or len(item.payload) == 0:
                continue  # the IMU track, or an empty block
            sync_ts = item.ts_us - self.depth_delay_us if role != "color" else item.ts_us
            if cur is not None and (role in cur.blocks or abs(sync_ts - cur.ts) > tol):
                yield from close(cur)
                cur = None
            if cur is None:
                cur = _Group(sync_ts)
            cur.blocks[role] = (item.payload, item.pos)
            cur.suspect = cur.suspect or item.suspect
            cur.crc_ok = cur.crc_ok and item.crc_ok
        if cur is not None:
            yield from close(cur)


class _Damage(Exception):
    def __init__(self, message: str, index: int, ts: int | None, kind: str, fatal: bool = False,
                 frames_lost: int = 1):
        super().__init__(message)
        self.index, self.ts, self.kind, self.fatal, self.frames_lost = index, ts or 0, kind, fatal, frames_lost
