"""Azure Kinect MKV recordings read without the Kinect SDK (PyAV demuxes, numpy/OpenCV decode).

A recording holds COLOR (MJPEG, or raw NV12/YUY2/BGRA), DEPTH and IR (16-bit big-endian, FourCC
`b16g`) tracks, an IMU track we ignore, and the factory calibration as a `calibration.json`
attachment. Blocks of the three image tracks with (nearly) the same timestamp form one capture.

Damage is reported, never papered over: a truncated file, a capture missing an image after
the stream started, an image of the wrong size or a JPEG whose entropy data holds stray markers
raise InputDataError naming the file, the frame index, its time and byte offset, after every
intact frame before it has been yielded. Captures before the first complete one (cameras still
starting) are skipped without counting as frames. Not detectable without checksums (k4arecord
writes none): flipped bits inside raw depth/IR, and whole captures lost at the very end of a
file whose Segment size is unknown.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from facesynth.errors import InputDataError, MissingDependencyError
from facesynth.capture.kinect_calibration import (KinectCalibration, color_mode_for_size, depth_mode_for_size,
                                                 load_calibration, parse_calibration)

ROLES = ("color", "depth", "ir")
_TITLES = {"COLOR": "color", "DEPTH": "depth", "IR": "ir"}
_GAP_BYTES = 65536  # more than this between captures means the demuxer skipped damaged data
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
    """One synchronised capture. `error` is set (and images are None) for a damaged frame kept under on_error='skip'."""

    index: int
    timestamp_us: int
    color: np.ndarray | None = None   # (H, W, 3) uint8 RGB
    depth: np.ndarray | None = None   # (h, w) uint16 mm, depth camera
    ir: np.ndarray | None = None      # (h, w) uint16, depth camera
    error: str | None = None


@dataclass
class _Group:
    ts: int
    blocks: dict[str, tuple[memoryview, int]] = field(default_factory=dict)  # role -> (payload, byte offset)


def jpeg_damage(buf: bytes | memoryview | np.ndarray) -> str | None:
    """Why a baseline JPEG is damaged (missing SOI/EOI, stray marker in the scan), or None.

    Inside entropy-coded data 0xFF may only be followed by 0x00 (stuffing) or RST0-7; random
    corruption or a cut almost always breaks that, while decoders silently paint grey blocks.
    """
    b = np.frombuffer(buf, np.uint8) if not isinstance(buf, np.ndarray) else buf
    if b.size < 4 or b[0] != 0xFF or b[1] != 0xD8:
        return "no JPEG start marker"
    end = b.size
    while end > 2 and b[end - 1] == 0:  # allow zero padding after EOI
        end -= 1
    if b[end - 2] != 0xFF or b[end - 1] != 0xD9:
        return "JPEG data is cut short (no end marker)"
    i = 2
    while i + 4 <= end:  # walk the header segments up to the first scan
        if b[i] != 0xFF:
            return f"bad JPEG segment at byte {i}"
        marker = int(b[i + 1])
        if marker == 0xFF:
            i += 1
            continue
        seg = int(b[i + 2]) << 8 | int(b[i + 3])
        if marker in (0xC2, 0xC6, 0xCA, 0xCE):
            return None  # progressive: several scans, not checked
        if marker == 0xDA:
            scan = b[i + 2 + seg:end - 2]
            ff = np.flatnonzero(scan[:-1] == 0xFF)
            nxt = scan[ff + 1]
            bad = (nxt != 0x00) & ((nxt < 0xD0) | (nxt > 0xD7)) & (nxt != 0xFF)
            if scan.size and scan[-1] == 0xFF:
                return "JPEG scan ends inside a marker"
            if bad.any():
                return f"JPEG scan data corrupt (stray marker 0xFF{int(nxt[bad][0]):02X})"
            return None
        i += 2 + seg
    return "JPEG has no scan data"


def decode_color(data: bytes | memoryview, fmt: str, width: int, height: int) -> np.ndarray:
    """One colour block -> (H, W, 3) uint8 RGB; ValueError says what is wrong with it."""
    buf = np.frombuffer(data, np.uint8)
    if fmt == "mjpeg":
        why = jpeg_damage(buf)
        if why:
            raise ValueError(why)
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR_RGB)
        if img is None:
            raise ValueError("JPEG does not decode")
    elif fmt == "nv12":
        _need(buf, width * height * 3 // 2, "NV12 colour")
        img = cv2.cvtColor(buf.reshape(height * 3 // 2, width), cv2.COLOR_YUV2RGB_NV12)
    elif fmt == "yuy2":
        _need(buf, width * height * 2, "YUY2 colour")
        img = cv2.cvtColor(buf.reshape(height, width, 2), cv2.COLOR_YUV2RGB_YUY2)
    elif fmt == "bgra":
        _need(buf, width * height * 4, "BGRA colour")
        img = np.ascontiguousarray(buf.reshape(height, width, 4)[..., 2::-1])
    else:
        raise ValueError(f"unsupported colour format {fmt}")
    if img.shape != (height, width, 3):
        raise ValueError(f"colour image is {img.shape[1]}x{img.shape[0]}, the track says {width}x{height}")
    return img


def decode_u16(data: bytes | memoryview, fmt: str, width: int, height: int, what: str) -> np.ndarray:
    """A 16-bit depth or IR block -> (h, w) native uint16."""
    buf = np.frombuffer(data, np.uint8)
    _need(buf, width * height * 2, what)
    return buf.view(">u2" if fmt == "u16be" else "<u2").reshape(height, width).astype(np.uint16)


def _need(buf: np.ndarray, n: int, what: str) -> None:
    if buf.size != n:
        raise ValueError(f"{what} block has {buf.size} bytes, expected {n}")


def _vint(b: bytes, i: int, keep_marker: bool = False) -> tuple[int, int]:
    first = b[i]
    length, mask = 1, 0x80
    while length <= 8 and not first & mask:
        mask >>= 1
        length += 1
    if length > 8 or i + length > len(b):
        raise ValueError("bad EBML number")
    value = first if keep_marker else first & (mask - 1)
    for k in range(1, length):
        value = value << 8 | b[i + k]
    return value, length


def declared_end(path: Path) -> int | None:
    """Byte where the Matroska Segment says it ends (None if its size is unknown or unreadable)."""
    with open(path, "rb") as f:
        head = f.read(256)
    try:
        eid, n = _vint(head, 0, True)
        size, m = _vint(head, n)
        i = n + m + size
        sid, n = _vint(head, i, True)
        ssize, m = _vint(head, i + n)
    except (ValueError, IndexError):
        return None
    if eid != 0x1A45DFA3 or sid != 0x18538067 or ssize == (1 << (7 * m)) - 1:
        return None
    return i + n + m + ssize


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

    def __init__(self, path: str | os.PathLike):
        try:
            import av
        except ImportError:  # pragma: no cover - av is a core dependency
            raise MissingDependencyError("reading MKV needs PyAV: pip install av") from None
        self._av = av
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
        """Number of frame slots (one pass over the packets, nothing decoded), damaged ones included."""
        return sum(1 for _ in self._groups())

    def captures(self, start: int = 0, stop: int | None = None, decode: bool = True,
                 on_error: str = "fail") -> Iterator[Capture]:
        """Captures [start, stop) in order, decoded.

        on_error: "fail" raises InputDataError at the first damaged frame (after yielding the
        frames before it); "skip" yields a damaged frame as a Capture with `.error` set and goes
        on where the file allows; "stop" ends quietly before it.
        """
        if on_error not in ("fail", "skip", "stop"):
            raise ValueError(f"on_error must be fail, skip or stop, not {on_error!r}")
        for item in self._groups():
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
            if on_error == "fail":
                raise InputDataError(str(dmg))
            if on_error == "stop":
                return
            if dmg.index >= start:
                yield Capture(dmg.index, dmg.ts, error=str(dmg))
            if dmg.fatal:
                return

    # ---- internals ----------------------------------------------------------------------
    def _where(self, index: int, ts: int | None, pos: int | None) -> str:
        t = f", t={ts / 1e6:.6f} s" if ts is not None else ""
        b = f", byte {pos}" if pos is not None and pos >= 0 else ""
        return f"{self.path}: frame {index}{t}{b}"

    def _decode(self, index: int, g: _Group) -> Capture:
        cap = Capture(index, g.ts)
        for role, (data, pos) in g.blocks.items():
            t = self.tracks[role]
            try:
                if role == "color":
                    cap.color = decode_color(data, t.fmt, t.width, t.height)
                else:
                    setattr(cap, role, decode_u16(data, t.fmt, t.width, t.height, role.upper()))
            except ValueError as exc:
                raise _Damage(f"{self._where(index, g.ts, pos)}: {role} image is corrupt: {exc}",
                              index, g.ts) from None
        return cap

    def _groups(self) -> Iterator[tuple[int, _Group] | "_Damage"]:
        """Captures in order as (frame index, blocks), or a _Damage where the file is damaged.

        A damaged capture still takes a frame index; a fatal one (unreadable data, truncation)
        is the last item. Where the demuxer silently skipped a damaged stretch, the image blocks
        before and after it lie far apart (between captures there are only a few small IMU
        blocks): such a gap is reported as a lost frame.
        """
        roles = {t.index: t.role for t in self.tracks.values()}
        want = set(self.tracks)
        tol = _SYNC_US + abs(self.depth_delay_us)
        state = {"index": 0, "started": False, "prev_end": 0, "prev_ok": True}
        end = declared_end(self.path)
        size = self.path.stat().st_size

        def close(group: _Group) -> Iterator[tuple[int, _Group] | _Damage]:
            first = min(p for _, p in group.blocks.values())
            gap = first - state["prev_end"]
            if state["started"] and state["prev_ok"] and gap > _GAP_BYTES:
                i = state["index"]
                state["index"] += 1
                yield _Damage(f"{self._where(i, None, state['prev_end'])}: {gap} bytes of unreadable data "
                              "before the next capture; a frame is lost here", i, None)
            state["prev_end"] = max(p + len(d) for d, p in group.blocks.values())
            state["prev_ok"] = set(group.blocks) == want
            if set(group.blocks) == want:
                state["started"] = True
                state["index"] += 1
                yield state["index"] - 1, group
            elif state["started"]:  # before that: cameras still starting, not a frame yet
                missing = ", ".join(sorted(want - set(group.blocks)))
                i = state["index"]
                state["index"] += 1
                yield _Damage(f"{self._where(i, group.ts, first)}: {missing} image missing "
                              "(corrupt or dropped block)", i, group.ts)

        cur: _Group | None = None
        last_pos = 0
        with self._av.open(str(self.path)) as c:
            packets = c.demux([c.streams[i] for i in roles])
            while True:
                try:
                    pkt = next(packets)
                except StopIteration:
                    break
                except self._av.error.FFmpegError as exc:
                    ts = cur.ts if cur else None
                    yield _Damage(f"{self._where(state['index'], ts, last_pos)}: unreadable data: {exc}",
                                  state["index"], ts, fatal=True)
                    return
                if pkt.size == 0 or pkt.pts is None:
                    continue
                role = roles[pkt.stream.index]
                ts = int(round(float(pkt.pts * pkt.time_base) * 1e6))
                sync_ts = ts - self.depth_delay_us if role != "color" else ts
                last_pos = pkt.pos if pkt.pos is not None and pkt.pos >= 0 else last_pos
                if cur is not None and (role in cur.blocks or abs(sync_ts - cur.ts) > tol):
                    yield from close(cur)
                    cur = None
                if cur is None:
                    cur = _Group(sync_ts)
                cur.blocks[role] = (memoryview(pkt), last_pos)  # no copy: the view keeps the packet
        truncated = end is not None and size < end
        if cur is not None and (set(cur.blocks) == want or not truncated):
            yield from close(cur)
            cur = None
        if truncated:
            ts = cur.ts if cur is not None else None
            pos = min(p for _, p in cur.blocks.values()) if cur is not None else None
            i = state["index"]
            yield _Damage(f"{self._where(i, ts, pos)}: file is truncated ({size} of {end} bytes), "
                          f"this frame is cut short or missing; the {i} frames before it are intact",
                          i, ts, fatal=True)


class _Damage(Exception):
    def __init__(self, message: str, index: int, ts: int | None, fatal: bool = False):
        super().__init__(message)
        self.index, self.ts, self.fatal = index, ts or 0, fatal
