"""A live Azure Kinect through pyk4a (optional extra `[kinect]`, which needs Microsoft's libk4a).

pyk4a is imported only here and only when a device is asked for, so everything else works
without it; when it, libk4a or the device is missing the error says what to install. An Orbbec
Femto Bolt or Mega runs the same code through Orbbec's K4A wrapper, a libk4a of its own that pyk4a
loads instead of Microsoft's (docs/capture_devices.md: how, and its known gaps).
The device's raw calibration goes through the same parser and registration as recordings.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np

from facesynth.errors import MissingDependencyError
from facesynth.capture.kinect.calibration import KinectCalibration, parse_calibration

INSTALL_HINT = ("install the Azure Kinect extra: pip install 'facesynth[kinect]' (pyk4a), and Microsoft's "
                "Azure Kinect Sensor SDK (libk4a1.4 + k4a-tools on Ubuntu from packages.microsoft.com; the "
                "SDK installer on Windows); for an Orbbec Femto Bolt or Mega install Orbbec's K4A wrapper "
                "(OrbbecSDK_K4A_Wrapper) instead and let pyk4a load its libk4a (K4A_DLL_DIR=<wrapper>/bin on "
                "Windows, LD_LIBRARY_PATH=<wrapper>/lib on Linux; see docs/capture_devices.md); or replay a "
                "recording with capture.recording")


def import_pyk4a():
    """pyk4a, or a MissingDependencyError that says how to get it."""
    try:
        import pyk4a  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(f"the live Azure Kinect needs pyk4a ({exc}); {INSTALL_HINT}") from None
    except OSError as exc:  # pyk4a present, libk4a not loadable
        raise MissingDependencyError(f"pyk4a cannot load libk4a ({exc}); {INSTALL_HINT}") from None
    return pyk4a


def make_config(pyk4a, color_resolution: str, depth_mode: str, fps: int):
    return pyk4a.Config(
        color_resolution=getattr(pyk4a.ColorResolution, f"RES_{color_resolution}"),
        depth_mode=getattr(pyk4a.DepthMode, depth_mode),
        camera_fps=getattr(pyk4a.FPS, f"FPS_{fps}"),
        color_format=pyk4a.ImageFormat.COLOR_BGRA32,
        synchronized_images_only=True,
    )


class LiveKinect:
    """A started device: calibration, serial number and a stream of synchronised captures."""

    def __init__(self, device, calibration: KinectCalibration, serial: str):
        self.device, self.calibration, self.serial = device, calibration, serial

    def captures(self, skip: int = 0) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        """(timestamp us, RGB uint8, depth uint16 mm, IR uint16) per capture, depth camera geometry."""
        n = 0
        while True:
            cap = self.device.get_capture()
            if cap.color is None or cap.depth is None:
                continue
            n += 1
            if n <= skip:
                continue
            rgb = np.ascontiguousarray(cap.color[..., 2::-1])
            ir = cap.ir if cap.ir is not None else np.zeros_like(cap.depth)
            yield int(cap.color_timestamp_usec), rgb, cap.depth.astype(np.uint16), ir.astype(np.uint16)

    def close(self) -> None:
        try:
            self.device.stop()
        except Exception:  # already stopped or unplugged: nothing left to release
            pass


def open_device(device: int = 0, color_resolution: str = "720P", depth_mode: str = "NFOV_UNBINNED",
                fps: int = 30) -> LiveKinect:
    """Start device `device`; MissingDependencyError when pyk4a, libk4a or the device is absent."""
    pyk4a = import_pyk4a()
    config = make_config(pyk4a, color_resolution, depth_mode, fps)
    k4a = pyk4a.PyK4A(config=config, device_id=device)
    try:
        k4a.start()
    except Exception as exc:
        raise MissingDependencyError(f"no Azure Kinect (or Orbbec Femto through its K4A wrapper) at device index "
                                     f"{device} ({exc}); plug it in (USB 3 + power) and check it with k4aviewer"
                                     ) from None
    cal = parse_calibration(k4a.calibration_raw, depth_mode, color_resolution, source=f"Azure Kinect {device}")
    return LiveKinect(k4a, cal, str(getattr(k4a, "serial", "")))


def record(path: str | os.PathLike, device: int = 0, color_resolution: str = "720P",
           depth_mode: str = "NFOV_UNBINNED", fps: int = 30, seconds: float | None = None,
           frames: int | None = None, on_frame=None) -> int:
    """Write a live session to an MKV the SDK and capture.recording can replay; returns captures written.

    Colour is recorded as MJPEG (as k4arecorder does). Stops after `seconds` or `frames`, or on
    KeyboardInterrupt; the file is always closed properly.
    """
    import time

    pyk4a = import_pyk4a()
    config = pyk4a.Config(
        color_resolution=getattr(pyk4a.ColorResolution, f"RES_{color_resolution}"),
        depth_mode=getattr(pyk4a.DepthMode, depth_mode),
        camera_fps=getattr(pyk4a.FPS, f"FPS_{fps}"),
        color_format=pyk4a.ImageFormat.COLOR_MJPG,
        synchronized_images_only=True,
    )
    k4a = pyk4a.PyK4A(config=config, device_id=device)
    try:
        k4a.start()
    except Exception as exc:
        raise MissingDependencyError(f"no Azure Kinect at device index {device} ({exc}); plug it in and "
                                     "check it with k4aviewer") from None
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    rec = pyk4a.PyK4ARecord(device=k4a, config=config, path=str(path))
    rec.create()
    n, t0 = 0, time.monotonic()
    try:
        while (frames is None or n < frames) and (seconds is None or time.monotonic() - t0 < seconds):
            rec.write_capture(k4a.get_capture())
            n += 1
            if on_frame is not None:
                on_frame(n, time.monotonic() - t0)
    except KeyboardInterrupt:
        pass
    finally:
        rec.flush()
        rec.close()
        k4a.stop()
    return n
