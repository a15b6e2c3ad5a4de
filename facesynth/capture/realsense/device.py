"""Intel RealSense through pyrealsense2 (optional extra `[realsense]`): a live camera or a recording it wrote.

The SDK does the work: it plays recordings (`.bag`, ROS 1, from older SDKs and the RealSense
Viewer; `.db3`, ROS 2, which SDK 2.59 writes), aligns depth to colour (`rs.align`: every depth
pixel reprojected into the colour camera with the factory extrinsics) and says the depth unit.
pyrealsense2 is imported only here, when a RealSense is asked for; without it, libusb, a camera
or a readable recording the error says what to install or do.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from facesynth.capture.depth_scaling import intrinsics_dict, to_mm_u16
from facesynth.errors import InputDataError, MissingDependencyError
from facesynth.input_files import check_regular

INSTALL_HINT = ("install the RealSense extra: pip install 'facesynth[realsense]' (Intel's pyrealsense2 wheels: "
                "Linux x86-64, Windows, macOS; on Linux it also needs libusb-1.0, e.g. apt install libusb-1.0-0)")
RECORDING_SUFFIXES = (".bag", ".db3")
_COLOR = {"rgb8": None, "bgr8": cv2.COLOR_BGR2RGB, "rgba8": cv2.COLOR_RGBA2RGB, "bgra8": cv2.COLOR_BGRA2RGB,
          "yuyv": cv2.COLOR_YUV2RGB_YUY2}


def import_pyrealsense2():
    """pyrealsense2, or a MissingDependencyError that says how to get it (its own reason included:
    a wheel that installed but cannot load libusb says so)."""
    try:
        import pyrealsense2 as rs
    except ImportError as exc:
        raise MissingDependencyError(f"the RealSense needs pyrealsense2 ({exc}); {INSTALL_HINT}") from None
    return rs


class RealSense:
    """A started pipeline (live or playback) with depth aligned to colour."""

    def __init__(self, path: str | os.PathLike | None = None, serial: str | None = None, width: int = 1280,
                 height: int = 720, fps: int = 30, timeout_s: float = 5.0):
        self.playback = path is not None
        if path is not None:  # the file first: a wrong path is an input error with or without the SDK
            self.path = Path(path)
            if not self.path.exists():
                raise InputDataError(f"{self.path}: no such RealSense recording")
            check_regular(self.path, what="RealSense recording")
            if self.path.suffix.lower() not in RECORDING_SUFFIXES:
                raise InputDataError(f"{self.path}: a RealSense recording is a .bag or .db3 file")
        rs = import_pyrealsense2()
        self.rs, self.timeout_ms = rs, int(timeout_s * 1000)
        cfg = rs.config()
        if path is not None:
            cfg.enable_device_from_file(str(self.path), repeat_playback=False)
        else:
            found = [d.get_info(rs.camera_info.serial_number) for d in rs.context().query_devices()]
            if not found or (serial is not None and serial not in found):
                which = f"with serial {serial} " if serial else ""
                raise MissingDependencyError(f"no RealSense camera {which}found ({len(found)} connected); plug it "
                                             "into a USB 3 port and check it with realsense-viewer; or play a "
                                             "recording with params.path (.bag or .db3)")
            if serial is not None:
                cfg.enable_device(serial)
            cfg.enable_stream(rs.stream.depth, rs.format.z16, fps)
            cfg.enable_stream(rs.stream.color, width, height, rs.format.rgb8, fps)
        self.pipe = rs.pipeline()
        try:
            profile = self.pipe.start(cfg)
        except RuntimeError as exc:
            if self.playback:
                raise InputDataError(f"{self.path}: the RealSense SDK cannot play it ({exc})") from None
            raise MissingDependencyError(f"the RealSense camera does not start ({exc}); check it with "
                                         "realsense-viewer") from None
        device = profile.get_device()
        if self.playback:
            device.as_playback().set_real_time(False)  # every recorded frame, as fast as it is read
        streams = {s.stream_type(): s for s in profile.get_streams()}
        if rs.stream.depth not in streams or rs.stream.color not in streams:
            self.close()
            raise InputDataError(f"{self.path if self.playback else 'the camera'}: needs a depth and a colour stream "
                                 f"(has {', '.join(str(s) for s in streams) or 'none'})")
        color = streams[rs.stream.color].as_video_stream_profile()
        self.color_format = str(color.format()).split(".")[-1]
        if self.color_format not in _COLOR:
            self.close()
            raise InputDataError(f"colour format {self.color_format} is not read (rgb8, bgr8, rgba8, bgra8, yuyv)")
        k = color.get_intrinsics()
        self.intrinsics = intrinsics_dict(k.fx, k.fy, k.ppx, k.ppy, k.width, k.height, source="realsense colour",
                                          distortion=str(k.model).split(".")[-1])
        self.mm_per_unit = device.first_depth_sensor().get_depth_scale() * 1000.0
        self.serial = device.get_info(rs.camera_info.serial_number) if device.supports(
            rs.camera_info.serial_number) else ""
        self.align = rs.align(rs.stream.color)

    def frames(self) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
        """(frame number, timestamp us, RGB uint8, depth uint16 mm aligned to colour) until a recording ends."""
        while True:
            ok, frameset = self.pipe.try_wait_for_frames(self.timeout_ms)
            if not ok:
                if self.playback:
                    return  # the recording's end
                raise MissingDependencyError(f"the RealSense sent no frames for {self.timeout_ms / 1000:.0f} s; "
                                             "check the USB 3 connection")
            aligned = self.align.process(frameset)
            depth, color = aligned.get_depth_frame(), aligned.get_color_frame()
            if not depth or not color:
                continue
            img = np.asanyarray(color.get_data())
            code = _COLOR[self.color_format]
            rgb = np.ascontiguousarray(img) if code is None else cv2.cvtColor(img, code)
            mm = to_mm_u16(np.asanyarray(depth.get_data()), self.mm_per_unit)
            yield int(color.get_frame_number()), int(round(color.get_timestamp() * 1000)), rgb, mm

    def close(self) -> None:
        try:
            self.pipe.stop()
        except RuntimeError:  # never started, or already stopped
            pass
