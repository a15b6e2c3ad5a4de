"""Small video files for capture.video tests: written with PyAV from real or synthetic frames, damaged on purpose."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from facesynth.depth.testdata_realdepth import realdata_root

EXPRESSIONS = realdata_root() / "face_videos" / "pexels_wolfganglanger_expressions.mp4"
HAND_FRAMES = range(59, 229)  # a hand over the mouth / nose (looked at frame by frame)


def write_video(path: Path, frames: list[np.ndarray], codec: str = "libx264", fmt: str = "mp4",
                fps: int = 24) -> Path:
    import av

    h, w = frames[0].shape[:2]
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def read_frames(path: Path, indices=None) -> dict[int, np.ndarray]:
    """Frames of a video by decode order, read with PyAV directly (not through facesynth)."""
    import av

    want = None if indices is None else set(indices)
    out = {}
    with av.open(str(path)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if want is None or i in want:
                out[i] = frame.to_ndarray(format="rgb24")
            if want is not None and i >= max(want):
                break
    return out


def synthetic_frames(n: int, w: int = 96, h: int = 64) -> list[np.ndarray]:
    """Smooth gradients that differ per frame (JPEG keeps them within a few levels)."""
    y, x = np.mgrid[0:h, 0:w]
    return [np.stack([x * 2 + 3 * k, y * 2 + 4 * k, np.full_like(x, 12 * k)], axis=2).clip(0, 255).astype(np.uint8)
            for k in range(n)]


def damage_jpeg(avi: Path, frame: int, out: Path) -> Path:
    """A copy of an MJPEG AVI whose JPEG of `frame` declares 0 x 0 pixels in its frame header (SOF0): FFmpeg
    refuses that packet (damage inside the scan data it would conceal instead)."""
    data = bytearray(avi.read_bytes())
    soi = [m.start() for m in re.finditer(b"\xff\xd8\xff", data)]
    sof = data.index(b"\xff\xc0", soi[frame])
    data[sof + 5:sof + 9] = bytes(4)  # height, width
    out.write_bytes(bytes(data))
    return out


def hide_face(rgb: np.ndarray) -> np.ndarray:
    """The frame with nothing left of the person: every pixel the frame's mean colour."""
    return np.broadcast_to(rgb.reshape(-1, 3).mean(0).astype(np.uint8), rgb.shape).copy()


def count_faces_directly(frames: list[np.ndarray]) -> list[int]:
    """Faces per frame by mediapipe's own short-range face detector (not facesynth's landmarker)."""
    from mediapipe.python.solutions import face_detection

    with face_detection.FaceDetection(model_selection=0, min_detection_confidence=0.5) as det:
        return [len(det.process(np.ascontiguousarray(f)).detections or []) for f in frames]
