"""A video file read with PyAV (FFmpeg), treated as untrusted input.

Before anything is decoded: the path must be a regular file (no FIFO, device or URL), FFmpeg may
open local files only (`protocol_whitelist=file`: no network) and only the container formats in
`FORMATS` (no playlists or concat lists, which name other files or URLs), and the stream's
width x height must be within `max_pixels`. Every decoded frame must have the stream's size
before it is converted to an array.

Damage FFmpeg reports is yielded in order among the good frames, as a VideoFrame with `error`
set, for the `on_error` policy to decide (capture/damage_policy.py): a packet it cannot decode is a
damaged frame ("undecodable"); the container failing to give further packets ends the video
("unreadable"); fewer frames than the container declared is a cut ("truncated", frames_lost the
difference). Damage a decoder conceals (smeared blocks in an H.264 stream) is not detected.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from facesynth.errors import InputDataError, MissingDependencyError
from facesynth.input_files import check_regular

#: FFmpeg demuxers allowed to open a file: common video containers and raw streams
FORMATS = ("mov", "mp4", "matroska", "webm", "avi", "flv", "mpegts", "mpeg", "ogg", "asf", "h264", "hevc",
           "m4v", "mjpeg", "gif", "yuv4mpegpipe")
MAX_PIXELS = 3840 * 2160        # 4K UHD
MAX_SIDE = 16384


@dataclass
class VideoFrame:
    """One decoded frame (RGB uint8, upright), or a damaged one (rgb None, error and damage set)."""

    index: int                     # decode order, damaged frames included
    timestamp_us: int
    rgb: np.ndarray | None
    error: str | None = None
    damage: str | None = None      # undecodable | unreadable | truncated
    frames_lost: int = 0


def _av():
    try:
        import av
    except ImportError as exc:
        raise MissingDependencyError(f"reading video files needs PyAV (`pip install av`): {exc}") from None
    return av


class VideoFile:
    """Stream facts on open (`width`, `height`, `fps`, `frame_count`, `codec`, `format`); frames on demand."""

    def __init__(self, path: str | Path, max_pixels: int = MAX_PIXELS):
        self.path = Path(path)
        try:
            self.size_bytes = check_regular(self.path, what="video file").st_size
        except FileNotFoundError:
            raise InputDataError(f"{self.path}: no such video file") from None
        av = _av()
        with self._open(av) as c:
            stream = c.streams.video[0]
            cc = stream.codec_context
            w, h = int(cc.width or 0), int(cc.height or 0)
            if w <= 0 or h <= 0 or w > MAX_SIDE or h > MAX_SIDE or w * h > max_pixels:
                raise InputDataError(f"{self.path}: the video stream declares {w}x{h} pixels; accepted are "
                                     f"1..{MAX_SIDE} a side and at most {max_pixels} pixels (max_pixels)")
            self.format = c.format.name
            self.codec = cc.name
            rate = stream.average_rate or stream.guessed_rate or Fraction(30)
            self.fps = float(rate) if 0 < float(rate) <= 1000 else 30.0
            self.frame_count = int(stream.frames) if stream.frames and stream.frames > 0 else None
            self.rotation = 0
            for frame in c.decode(stream):  # the display rotation travels with the frames
                self.rotation = _quarter_turns(frame)
                break
        self.width, self.height = (h, w) if self.rotation % 2 else (w, h)
        self._stream_size = (w, h)

    def _open(self, av):
        try:
            c = av.open(str(self.path), options={"protocol_whitelist": "file", "format_whitelist": ",".join(FORMATS)})
        except av.error.FFmpegError as exc:
            raise InputDataError(f"{self.path}: not a video file facesynth reads ({_why(exc)}; containers: "
                                 f"{', '.join(FORMATS)})") from None
        if not c.streams.video:
            c.close()
            raise InputDataError(f"{self.path}: the file has no video stream")
        return c

    def frames(self, start: int = 0, stride: int = 1) -> Iterator[VideoFrame]:
        """Frames with index >= start and index % stride == 0, in order, damaged ones included (module doc)."""
        av = _av()
        index = 0
        with self._open(av) as c:
            stream = c.streams.video[0]
            packets = c.demux(stream)
            while True:
                try:
                    packet = next(packets)
                except StopIteration:
                    break
                except av.error.FFmpegError as exc:
                    yield self._damaged(index, "unreadable", f"the container stops giving packets ({_why(exc)})")
                    return
                try:
                    decoded = packet.decode()
                except av.error.FFmpegError as exc:
                    if index >= start:
                        yield self._damaged(index, "undecodable", f"a packet does not decode ({_why(exc)})")
                    index += 1
                    continue
                for frame in decoded:
                    if index >= start and index % stride == 0:
                        yield self._frame(index, frame)
                    index += 1
        if self.frame_count is not None and index < self.frame_count:
            yield self._damaged(index, "truncated", f"the file ends after {index} of the {self.frame_count} "
                                "frames its container declares (cut short?)", lost=self.frame_count - index)

    def _frame(self, index: int, frame) -> VideoFrame:
        if (frame.width, frame.height) != self._stream_size:
            raise InputDataError(f"{self.path}: frame {index} is {frame.width}x{frame.height}, the stream "
                                 f"{self._stream_size[0]}x{self._stream_size[1]} (a size change is not supported)")
        rgb = frame.to_ndarray(format="rgb24")
        if self.rotation:
            rgb = np.ascontiguousarray(np.rot90(rgb, self.rotation))
        ts = frame.time
        ts_us = int(round(ts * 1e6)) if ts is not None else int(round(index * 1e6 / self.fps))
        return VideoFrame(index, ts_us, rgb)

    def _damaged(self, index: int, kind: str, why: str, lost: int = 1) -> VideoFrame:
        return VideoFrame(index, int(round(index * 1e6 / self.fps)), None, error=f"{self.path}: frame {index}: {why}",
                          damage=kind, frames_lost=lost)


def _quarter_turns(frame) -> int:
    """Counter-clockwise quarter turns that make a frame upright: FFmpeg's display matrix rotates the
    picture counter-clockwise by `frame.rotation` degrees for presentation."""
    angle = float(getattr(frame, "rotation", 0) or 0)
    return int(round(angle / 90.0)) % 4


def _why(exc: Exception) -> str:
    """FFmpeg's reason without the file path it repeats."""
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).split(": '")[0]
