"""The image payloads of an Azure Kinect recording: checked, then decoded to numpy.

JPEG colour is checked by capture/jpeg_check.py before it is decoded; raw depth/IR/colour
payloads must have exactly the size their track declares.
"""
from __future__ import annotations

import cv2
import numpy as np

from facesynth.capture.jpeg_check import ImageDamage, jpeg_damage


def decode_color(data: bytes | memoryview, fmt: str, width: int, height: int, huffman: bool = True) -> np.ndarray:
    """One colour block -> (H, W, 3) uint8 RGB; ImageDamage says what is wrong with it.

    huffman=False skips the Huffman walk of a JPEG (for bytes already proven intact by a checksum)."""
    buf = np.frombuffer(data, np.uint8)
    if fmt == "mjpeg":
        why = jpeg_damage(buf, huffman, (width, height))
        if why:
            raise ImageDamage(why, "jpeg")
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR_RGB)
        if img is None:
            raise ImageDamage("JPEG does not decode", "jpeg")
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
        raise ImageDamage(f"colour image is {img.shape[1]}x{img.shape[0]}, the track says {width}x{height}", "size")
    return img


def decode_u16(data: bytes | memoryview, fmt: str, width: int, height: int, what: str) -> np.ndarray:
    """A 16-bit depth or IR block -> (h, w) native uint16."""
    buf = np.frombuffer(data, np.uint8)
    _need(buf, width * height * 2, what)
    return buf.view(">u2" if fmt == "u16be" else "<u2").reshape(height, width).astype(np.uint16)


def _need(buf: np.ndarray, n: int, what: str) -> None:
    if buf.size != n:
        raise ImageDamage(f"{what} block has {buf.size} bytes, expected {n}", "size")
