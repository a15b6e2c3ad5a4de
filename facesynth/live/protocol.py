"""Wire formats of live inference: landmarks in (OSC, msgpack), RGBD frames out (msgpack).

Everything that arrives here is untrusted bytes from the network, so decoding is strict and
bounded: an exact OSC layout, msgpack with size limits on every container, exact binary lengths,
finite coordinates. A bad message raises ProtocolError carrying a short `reason` (used to count
drops by cause); nothing here ever unpickles or evaluates. See docs/live_protocol.md.

Stream framing (msgpack over TCP, both directions): each message is a 4-byte big-endian unsigned
length followed by that many bytes of msgpack.
"""
from __future__ import annotations

import math
import struct
import time
from typing import Any

import msgpack
import numpy as np

from facesynth.errors import InputDataError

VERSION = 1
N_POINTS = 70
N_FLOATS = 2 * N_POINTS
OSC_ADDRESS = "/landmarks"
LANDMARK_BIN_BYTES = N_FLOATS * 4          # float32 little-endian x0, y0, ... x69, y69
MAX_LANDMARK_MESSAGE = 16 * 1024           # a landmark message is ~600 B; anything far larger is hostile
MAX_FRAME_MESSAGE = 64 * 1024 * 1024       # RGBD frames: 512x512 rgb + depth + points fit easily
PREFIX = struct.Struct(">I")
COORD_LIMIT = 1.0e5                        # |x|, |y| above this (px) is garbage, whatever the size


class ProtocolError(InputDataError):
    """A live message that does not follow the protocol; `reason` names the cause for counting."""

    def __init__(self, reason: str, message: str):
        self.reason = reason
        super().__init__(f"{reason}: {message}")


# ---- landmarks ---------------------------------------------------------------------------
def check_landmarks(values: Any, size: int | None = None, margin: float = 1.0) -> np.ndarray:
    """140 numbers (or (70, 2)) -> (70, 2) float32; non-finite or far out of the image is an error.

    With `size`, points must lie within [-margin*size, (1+margin)*size] (a little outside the
    image is normal for a turned head; far outside means a wrong unit or a broken sender).
    """
    try:
        arr = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ProtocolError("wrong_type", f"landmarks are not numbers ({exc})") from None
    if arr.size != N_FLOATS:
        raise ProtocolError("wrong_length", f"expected {N_FLOATS} landmark values, got {arr.size}")
    pts = arr.reshape(N_POINTS, 2)
    if not np.isfinite(pts).all():
        raise ProtocolError("non_finite", "landmarks contain NaN or infinity")
    lo, hi = (-COORD_LIMIT, COORD_LIMIT) if size is None else (-margin * size, (1 + margin) * size)
    if pts.min() < lo or pts.max() > hi:
        raise ProtocolError("out_of_range", f"landmarks outside [{lo:g}, {hi:g}] px")
    return np.ascontiguousarray(pts)


# ---- OSC ---------------------------------------------------------------------------------
def _osc_string(data: bytes, pos: int) -> tuple[str, int]:
    end = data.find(b"\x00", pos)
    if end < 0:
        raise ProtocolError("bad_osc", "unterminated OSC string")
    try:
        text = data[pos:end].decode("ascii")
    except UnicodeDecodeError:
        raise ProtocolError("bad_osc", "OSC string is not ASCII") from None
    return text, (end + 4) & ~3  # padded to a multiple of 4 bytes, at least one NUL


def decode_osc_landmarks(data: bytes, size: int | None = None) -> np.ndarray:
    """An OSC datagram `/landmarks ,f*140 x0 y0 ... x69 y69` (float32 big-endian) -> (70, 2) float32.

    Strict: one message (no bundle), exactly this address, 140 'f' type tags, exact length.
    """
    if len(data) > MAX_LANDMARK_MESSAGE:
        raise ProtocolError("oversized", f"{len(data)} bytes > {MAX_LANDMARK_MESSAGE}")
    if data.startswith(b"#bundle"):
        raise ProtocolError("bad_osc", "OSC bundles are not accepted; send one /landmarks message")
    address, pos = _osc_string(data, 0)
    if address != OSC_ADDRESS:
        raise ProtocolError("wrong_address", f"OSC address {address[:40]!r}, expected {OSC_ADDRESS!r}")
    tags, pos = _osc_string(data, pos)
    if not tags.startswith(","):
        raise ProtocolError("bad_osc", "OSC type tag string must start with ','")
    if tags[1:] != "f" * N_FLOATS:
        n = len(tags) - 1
        kind = "wrong_length" if set(tags[1:]) <= {"f"} else "wrong_type"
        raise ProtocolError(kind, f"expected {N_FLOATS} float32 arguments, got type tags of {n}")
    if len(data) - pos != LANDMARK_BIN_BYTES:
        raise ProtocolError("wrong_length", f"{len(data) - pos} argument bytes, expected {LANDMARK_BIN_BYTES}")
    values = np.frombuffer(data, dtype=">f4", count=N_FLOATS, offset=pos)
    return check_landmarks(values.astype(np.float32), size)


def _pad(b: bytes) -> bytes:
    b += b"\x00"
    return b + b"\x00" * (-len(b) % 4)


def encode_osc_landmarks(points: np.ndarray) -> bytes:
    """(70, 2) points -> the OSC datagram the original live tools send (for senders and tests)."""
    pts = np.asarray(points, dtype=np.float32).reshape(-1)
    if pts.size != N_FLOATS:
        raise ValueError(f"expected {N_FLOATS} values, got {pts.size}")
    return _pad(OSC_ADDRESS.encode()) + _pad(("," + "f" * N_FLOATS).encode()) + pts.astype(">f4").tobytes()


# ---- msgpack landmark messages -------------------------------------------------------------
def _unpack(data: bytes, limit: int, max_array: int, max_bin: int) -> Any:
    if len(data) > limit:
        raise ProtocolError("oversized", f"{len(data)} bytes > {limit}")
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True,
                               max_bin_len=max_bin, max_str_len=256, max_array_len=max_array,
                               max_map_len=32, max_ext_len=0)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError,
            TypeError, UnicodeDecodeError) as exc:
        raise ProtocolError("bad_msgpack", f"{type(exc).__name__}: {str(exc)[:80]}") from None


def encode_landmark_message(points: np.ndarray, seq: int, t: float | None = None, binary: bool = True,
                            calibrate: bool = False) -> bytes:
    """{"v":1,"seq","t","landmarks"} with landmarks as float32 LE bytes (or a list of 140 floats);
    `calibrate` asks live.condition to take the driver's neutral again from this frame on."""
    pts = np.asarray(points, dtype=np.float32).reshape(-1)
    lm: Any = pts.astype("<f4").tobytes() if binary else [float(x) for x in pts]
    msg = {"v": VERSION, "seq": int(seq), "t": time.time() if t is None else float(t), "landmarks": lm}
    if calibrate:
        msg["calibrate"] = True
    return msgpack.packb(msg, use_bin_type=True)


def decode_landmark_message(data: bytes, size: int | None = None) -> dict:
    """Untrusted msgpack bytes -> {"seq": int, "t": float|None, "landmarks": (70, 2) float32}."""
    msg = _unpack(data, MAX_LANDMARK_MESSAGE, max_array=N_FLOATS, max_bin=LANDMARK_BIN_BYTES)
    if not isinstance(msg, dict):
        raise ProtocolError("wrong_type", f"message is a {type(msg).__name__}, expected a map")
    if msg.get("v") != VERSION:
        raise ProtocolError("wrong_version", f"v={msg.get('v')!r}, expected {VERSION}")
    seq, t = msg.get("seq", 0), msg.get("t")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < 2 ** 63:
        raise ProtocolError("wrong_type", "seq must be a non-negative integer")
    if t is not None and (not isinstance(t, (int, float)) or isinstance(t, bool) or not math.isfinite(t)):
        raise ProtocolError("wrong_type", "t must be a finite number (sender's unix time)")
    raw = msg.get("landmarks")
    if isinstance(raw, bytes):
        if len(raw) != LANDMARK_BIN_BYTES:
            raise ProtocolError("wrong_length", f"landmarks are {len(raw)} bytes, expected {LANDMARK_BIN_BYTES}")
        values: Any = np.frombuffer(raw, dtype="<f4")
    elif isinstance(raw, list):
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in raw):
            raise ProtocolError("wrong_type", "landmarks list must hold numbers only")
        values = raw
    else:
        raise ProtocolError("wrong_type", "landmarks must be 560 bytes (float32 LE) or a list of 140 numbers")
    calibrate = msg.get("calibrate", False)
    if not isinstance(calibrate, bool):
        raise ProtocolError("wrong_type", "calibrate must be true or false")
    return {"seq": seq, "t": None if t is None else float(t), "landmarks": check_landmarks(values, size),
            "calibrate": calibrate}


# ---- stream framing ------------------------------------------------------------------------
def frame_bytes(body: bytes) -> bytes:
    """Length-prefix one message for a TCP stream."""
    return PREFIX.pack(len(body)) + body


class StreamDecoder:
    """Splits a byte stream into length-prefixed messages; a prefix over `limit` is fatal for the stream."""

    def __init__(self, limit: int):
        self.limit = limit
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes of a message begun but not complete (a stream ending now cuts it short)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out = []
        while len(self._buf) >= PREFIX.size:
            (n,) = PREFIX.unpack_from(self._buf)
            if n > self.limit:
                raise ProtocolError("oversized", f"length prefix {n} > {self.limit}; stream cannot be resynced")
            if len(self._buf) < PREFIX.size + n:
                break
            out.append(bytes(self._buf[PREFIX.size:PREFIX.size + n]))
            del self._buf[:PREFIX.size + n]
        return out


# ---- RGBD frames out -----------------------------------------------------------------------
def encode_frame(rgb: np.ndarray, depth: np.ndarray, *, seq: int, source: str, t_recv: float,
                 depth_unit_mm: float, landmarks: np.ndarray | None = None, points: np.ndarray | None = None,
                 t_sent: float | None = None, extra: dict | None = None) -> bytes:
    """One RGBD frame as msgpack: rgb uint8 (S,S,3), depth uint16 LE (S,S) in depth_unit_mm, 0 = none."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    depth = np.ascontiguousarray(depth, dtype="<u2")
    if rgb.ndim != 3 or rgb.shape[2] != 3 or depth.shape != rgb.shape[:2]:
        raise ValueError(f"rgb {rgb.shape} and depth {depth.shape} do not make one frame")
    msg: dict[str, Any] = {"v": VERSION, "seq": int(seq), "source": str(source), "t_recv": float(t_recv),
                           "t_sent": time.time() if t_sent is None else float(t_sent),
                           "size": [int(rgb.shape[0]), int(rgb.shape[1])],
                           "rgb": rgb.tobytes(), "depth": depth.tobytes(), "depth_unit_mm": float(depth_unit_mm)}
    if landmarks is not None:
        msg["landmarks"] = np.asarray(landmarks, "<f4").reshape(-1).tobytes()
    if points is not None:
        pts = np.ascontiguousarray(points, dtype="<f4")
        if pts.ndim != 2 or pts.shape[1] != 6:
            raise ValueError(f"points must be (N, 6) xyz+rgb, got {pts.shape}")
        msg["points"], msg["n_points"] = pts.tobytes(), int(len(pts))
    if extra:
        msg.update({k: v for k, v in extra.items() if k not in msg})
    return msgpack.packb(msg, use_bin_type=True)


def decode_frame(data: bytes, limit: int = MAX_FRAME_MESSAGE) -> dict:
    """RGBD frame bytes -> dict with numpy arrays (rgb, depth, depth_mm float32, landmarks, points)."""
    msg = _unpack(data, limit, max_array=64, max_bin=limit)
    if not isinstance(msg, dict) or msg.get("v") != VERSION:
        raise ProtocolError("wrong_version", "not a version-1 RGBD frame")
    try:
        h, w = (int(x) for x in msg["size"])
        rgb = np.frombuffer(msg["rgb"], np.uint8).reshape(h, w, 3)
        depth = np.frombuffer(msg["depth"], "<u2").reshape(h, w)
        out = {**msg, "rgb": rgb, "depth": depth,
               "depth_mm": depth.astype(np.float32) * np.float32(msg["depth_unit_mm"])}
        if "landmarks" in msg:
            out["landmarks"] = np.frombuffer(msg["landmarks"], "<f4").reshape(N_POINTS, 2)
        if "points" in msg:
            out["points"] = np.frombuffer(msg["points"], "<f4").reshape(int(msg["n_points"]), 6)
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError("bad_frame", f"{type(exc).__name__}: {exc}") from None
    return out
