"""A live iPhone through the Record3D app's USB streaming and the `record3d` package (optional extra `[record3d]`).

The package is imported only here and only when a live phone is asked for; when it or the phone
is missing the error says what to do. The app streams RGB (with the intrinsics of that RGB frame)
and float32 depth in metres over the same field of view at the depth camera's resolution; the
node registers it by scaling, as for an export. Not tested with a phone (none here): the calls
are the package's documented ones (Record3DStream: get_connected_devices, connect, on_new_frame,
get_rgb_frame, get_depth_frame, get_intrinsic_mat, get_device_type).
"""
from __future__ import annotations

import threading
import time
from typing import Iterator

import numpy as np

from facesynth.capture.depth_scaling import intrinsics_dict
from facesynth.errors import InputDataError, MissingDependencyError

INSTALL_HINT = ("install the Record3D extra: pip install 'facesynth[record3d]' (the record3d package; on Linux "
                "also usbmuxd, e.g. apt install usbmuxd, for the iPhone's USB link); or export the recording "
                "from the Record3D app as .r3d and read it with capture.record3d path=FILE.r3d")
PHONE_HINT = ("connect the iPhone by USB, open the Record3D app, turn on USB streaming in its settings and "
              "press the record button; or export the recording as .r3d and give its path")
DEVICE_TYPES = {0: "truedepth", 1: "lidar"}


def import_record3d():
    """The record3d package, or a MissingDependencyError that says how to get it."""
    try:
        import record3d
    except ImportError as exc:
        raise MissingDependencyError(f"the live iPhone stream needs the record3d package ({exc}); "
                                     f"{INSTALL_HINT}") from None
    return record3d


class LiveRecord3d:
    """A connected phone: the first frame's sizes and intrinsics, then a stream of frames."""

    def __init__(self, device: int = 0, timeout_s: float = 10.0):
        record3d = import_record3d()
        devices = record3d.Record3DStream.get_connected_devices()
        if len(devices) <= device:
            raise MissingDependencyError(f"no iPhone streaming over USB at device index {device} "
                                         f"({len(devices)} found); {PHONE_HINT}")
        self.timeout_s = timeout_s
        self._new = threading.Event()
        self._stopped = threading.Event()
        self.session = record3d.Record3DStream()
        self.session.on_new_frame = self._new.set
        self.session.on_stream_stopped = self._stopped.set
        self.udid = str(getattr(devices[device], "udid", ""))
        try:
            self.session.connect(devices[device])
        except Exception as exc:
            raise MissingDependencyError(f"cannot connect to the iPhone at device index {device} ({exc}); "
                                         f"{PHONE_HINT}") from None
        self._t0 = time.monotonic()
        first = self._next()
        if first is None:
            raise MissingDependencyError(f"the iPhone sent no frame within {timeout_s:.0f} s; {PHONE_HINT}")
        self._first = first
        rgb, depth = first
        k = self.session.get_intrinsic_mat()
        h, w = rgb.shape[:2]
        self.intrinsics = intrinsics_dict(k.fx, k.fy, k.tx, k.ty, w, h, source="record3d stream")
        self.depth_shape = depth.shape[:2]
        self.depth_source = DEVICE_TYPES.get(int(self.session.get_device_type()), "truedepth")

    def _next(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The next (RGB, depth metres) pair, or None when the stream stopped or went quiet."""
        while not self._stopped.is_set():
            if not self._new.wait(self.timeout_s):
                return None
            self._new.clear()
            rgb = np.array(self.session.get_rgb_frame(), dtype=np.uint8, copy=True)
            depth = np.array(self.session.get_depth_frame(), dtype=np.float32, copy=True)
            if rgb.ndim == 3 and rgb.shape[2] == 3 and depth.ndim == 2:
                return rgb, depth
        return None

    def frames(self) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(time since connecting in us, RGB uint8, depth float32 metres) until the stream stops."""
        item, first = self._first, True
        while item is not None:
            rgb, depth = item
            if rgb.shape[:2] != (self.intrinsics["height"], self.intrinsics["width"]) or depth.shape != self.depth_shape:
                raise InputDataError(f"the iPhone stream changed size mid-way ({rgb.shape[1]}x{rgb.shape[0]} colour, "
                                     f"{depth.shape[1]}x{depth.shape[0]} depth); restart the capture")
            yield int((time.monotonic() - self._t0) * 1e6) if not first else 0, rgb, depth
            first = False
            item = self._next()

    def close(self) -> None:
        try:
            self.session.disconnect()
        except Exception:  # already gone: nothing left to release
            pass
