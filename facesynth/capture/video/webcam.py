"""A webcam by index, through OpenCV's VideoCapture (an integer only: never a URL or a pipeline string)."""
from __future__ import annotations

import time
from typing import Iterator

import cv2
import numpy as np

from facesynth.capture.video.video_file import MAX_PIXELS, VideoFrame
from facesynth.errors import InputDataError, MissingDependencyError

MAX_FAILED_READS = 30   # consecutive empty reads before the camera counts as gone


class Webcam:
    """An opened camera; `width`/`height` of its frames (after the requested size was applied)."""

    def __init__(self, device: int, width: int | None = None, height: int | None = None, fps: float | None = None,
                 max_pixels: int = MAX_PIXELS):
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # OpenCV warns per backend tried
        try:
            self._cap = cv2.VideoCapture(int(device))
            opened = self._cap.isOpened()
        finally:
            cv2.utils.logging.setLogLevel(level)
        if not opened:
            self._cap.release()
            raise MissingDependencyError(
                f"no camera at index {device} (OpenCV's VideoCapture could not open it): connect a webcam, "
                "pick another `device`, or give a video file with `path`")
        for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, width), (cv2.CAP_PROP_FRAME_HEIGHT, height),
                            (cv2.CAP_PROP_FPS, fps)):
            if value:
                self._cap.set(prop, float(value))
        self.device = int(device)
        self.max_pixels = max_pixels
        first = self._read()
        if first is None:
            self.close()
            raise MissingDependencyError(f"the camera at index {device} opened but gives no frames")
        self._first: np.ndarray | None = first
        self.height, self.width = first.shape[:2]
        self.fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0) or 30.0

    def _read(self) -> np.ndarray | None:
        ok, bgr = self._cap.read()
        if not ok or bgr is None:
            return None
        if bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.shape[0] * bgr.shape[1] > self.max_pixels:
            raise InputDataError(f"camera {self.device}: frame of shape {bgr.shape}, expected colour of at most "
                                 f"{self.max_pixels} pixels")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def frames(self, start: int = 0, stride: int = 1) -> Iterator[VideoFrame]:
        """Live frames, numbered from `start` (a camera cannot go back), every `stride`-th one."""
        index, failed, t0 = start, 0, time.monotonic()
        while True:
            rgb, self._first = (self._first, None) if self._first is not None else (self._read(), None)
            if rgb is None:
                failed += 1
                if failed >= MAX_FAILED_READS:
                    raise InputDataError(f"camera {self.device} stopped giving frames ({failed} empty reads)")
                continue
            failed = 0
            if rgb.shape[:2] != (self.height, self.width):
                raise InputDataError(f"camera {self.device}: frame size changed to {rgb.shape[1]}x{rgb.shape[0]}")
            if index % stride == 0:
                yield VideoFrame(index, int((time.monotonic() - t0) * 1e6), rgb)
            index += 1

    def close(self) -> None:
        self._cap.release()
