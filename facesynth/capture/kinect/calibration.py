"""Azure Kinect factory calibration (`calibration.json`) -> camera models for one capture mode.

The device stores each camera's intrinsics unitised and 0-cornered for the full sensor
(depth 1024x1024, colour 4096x3072) plus its pose in a common frame. A capture mode crops
and bins the sensor, so the pixel intrinsics depend on the mode; the mode tables here are the
ones the Kinect SDK uses, and pixel coordinates follow its (and OpenCV's) convention: (0, 0) is
the centre of the top-left pixel.

Lens model (Brown-Conrady with a rational radial part, as in the SDK):
    r2 = x^2 + y^2, d = (1 + k1 r2 + k2 r2^2 + k3 r2^3) / (1 + k4 r2 + k5 r2^2 + k6 r2^3)
    x' = x d + 2 p1 x y + p2 (r2 + 2 x^2),  y' = y d + p1 (r2 + 2 y^2) + 2 p2 x y
    u = fx x' + cx,  v = fy y' + cy
Points with r2 above metric_radius^2 are outside the calibrated field and invalid.
JSON parameter order: cx cy fx fy k1..k6 codx cody p2 p1; translations are in metres.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facesynth.errors import InputDataError

# mode -> (calibration image binned resolution, crop offset, output resolution), from the SDK
DEPTH_MODES: dict[str, tuple[tuple[int, int], tuple[int, int], tuple[int, int]]] = {
    "NFOV_2X2BINNED": ((512, 512), (96, 90), (320, 288)),
    "NFOV_UNBINNED": ((1024, 1024), (192, 180), (640, 576)),
    "WFOV_2X2BINNED": ((512, 512), (0, 0), (512, 512)),
    "WFOV_UNBINNED": ((1024, 1024), (0, 0), (1024, 1024)),
    "PASSIVE_IR": ((1024, 1024), (0, 0), (1024, 1024)),
}
COLOR_MODES: dict[str, tuple[tuple[int, int], tuple[int, int], tuple[int, int]]] = {
    "720P": ((1280, 960), (0, 120), (1280, 720)),
    "1080P": ((1920, 1440), (0, 180), (1920, 1080)),
    "1440P": ((2560, 1920), (0, 240), (2560, 1440)),
    "1536P": ((2048, 1536), (0, 0), (2048, 1536)),
    "2160P": ((3840, 2880), (0, 360), (3840, 2160)),
    "3072P": ((4096, 3072), (0, 0), (4096, 3072)),
}
DEFAULT_METRIC_RADIUS = 1.7  # the SDK's value when calibration left it 0 (about 120 degrees FoV)


@dataclass(frozen=True)
class CameraModel:
    """Pixel intrinsics and lens distortion of one camera in one capture mode."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    k: tuple[float, float, float, float, float, float] = (0.0,) * 6
    p1: float = 0.0
    p2: float = 0.0
    codx: float = 0.0
    cody: float = 0.0
    metric_radius: float = DEFAULT_METRIC_RADIUS

    def intrinsics(self) -> dict:
        """The store's `intrinsics` attribute: {fx, fy, cx, cy, width, height}."""
        return {"fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy,
                "width": self.width, "height": self.height}

    def to_dict(self) -> dict:
        d = self.intrinsics()
        d.update(k=list(self.k), p1=self.p1, p2=self.p2, codx=self.codx, cody=self.cody,
                 metric_radius=self.metric_radius)
        return d

    def distort(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Normalised undistorted (x, y) -> pixel (u, v) and a validity mask (vectorised)."""
        k1, k2, k3, k4, k5, k6 = self.k
        xp, yp = x - self.codx, y - self.cody
        rs = xp * xp + yp * yp
        valid = rs <= self.metric_radius ** 2
        a = 1 + rs * (k1 + rs * (k2 + rs * k3))
        b = 1 + rs * (k4 + rs * (k5 + rs * k6))
        d = a / np.where(b != 0, b, 1)
        xd = xp * d + (rs + 2 * xp * xp) * self.p2 + 2 * xp * yp * self.p1 + self.codx
        yd = yp * d + (rs + 2 * yp * yp) * self.p1 + 2 * xp * yp * self.p2 + self.cody
        return xd * self.fx + self.cx, yd * self.fy + self.cy, valid

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """3-D points (..., 3) in this camera's frame -> pixels (..., 2) and validity (z > 0, in field)."""
        p = np.asarray(points, dtype=np.float64)
        z = p[..., 2]
        safe = np.where(z > 0, z, 1.0)
        u, v, valid = self.distort(p[..., 0] / safe, p[..., 1] / safe)
        return np.stack([u, v], axis=-1), valid & (z > 0)

    def undistort(self, u: np.ndarray, v: np.ndarray, iterations: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pixels -> normalised rays (x, y) by Newton's method on distort(); valid where it converged.

        Vectorised over any array shape; the Jacobian is taken by central differences, which
        is accurate to well below 1e-6 px here and keeps the lens maths in one place.
        """
        u = np.asarray(u, dtype=np.float64)
        v = np.asarray(v, dtype=np.float64)
        x = (u - self.cx) / self.fx
        y = (v - self.cy) / self.fy
        h = 1e-6
        for _ in range(iterations):
            pu, pv, _ = self.distort(x, y)
            eu, ev = u - pu, v - pv
            ux1, vx1, _ = self.distort(x + h, y)
            ux0, vx0, _ = self.distort(x - h, y)
            uy1, vy1, _ = self.distort(x, y + h)
            uy0, vy0, _ = self.distort(x, y - h)
            j00, j10 = (ux1 - ux0) / (2 * h), (vx1 - vx0) / (2 * h)
            j01, j11 = (uy1 - uy0) / (2 * h), (vy1 - vy0) / (2 * h)
            det = j00 * j11 - j01 * j10
            det = np.where(np.abs(det) > 1e-12, det, 1e-12)
            x = x + (j11 * eu - j01 * ev) / det
            y = y + (-j10 * eu + j00 * ev) / det
        pu, pv, inside = self.distort(x, y)
        err = (u - pu) ** 2 + (v - pv) ** 2
        valid = inside & (err < 1e-6) & np.isfinite(err)
        return x, y, valid


@dataclass(frozen=True, eq=False)
class KinectCalibration:
    """Depth and colour camera models of one capture mode and the depth->colour transform (mm)."""

    depth: CameraModel
    color: CameraModel
    rotation: np.ndarray        # (3, 3): X_colour = R @ X_depth + t
    translation: np.ndarray     # (3,) millimetres
    depth_mode: str = ""
    color_mode: str = ""
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    def depth_to_color(self, points: np.ndarray) -> np.ndarray:
        """Points (..., 3) in the depth camera frame (mm) -> colour camera frame (mm)."""
        return np.asarray(points, dtype=np.float64) @ self.rotation.T + self.translation

    def to_dict(self) -> dict:
        """JSON-able summary for the store's `calibration` attribute."""
        return {"depth_mode": self.depth_mode, "color_mode": self.color_mode,
                "depth": self.depth.to_dict(), "color": self.color.to_dict(),
                "depth_to_color": {"rotation": self.rotation.ravel().tolist(),
                                   "translation_mm": self.translation.tolist()},
                "raw": self.raw}


def _mode_camera(params: list[float], metric_radius: float, mode) -> CameraModel:
    (bw, bh), (ox, oy), (w, h) = mode
    cx, cy, fx, fy = params[0] * bw - ox - 0.5, params[1] * bh - oy - 0.5, params[2] * bw, params[3] * bh
    k = tuple(float(v) for v in params[4:10])
    return CameraModel(width=w, height=h, fx=fx, fy=fy, cx=cx, cy=cy, k=k,  # type: ignore[arg-type]
                       codx=float(params[10]), cody=float(params[11]), p2=float(params[12]),
                       p1=float(params[13]),
                       metric_radius=metric_radius if metric_radius > 1e-4 else DEFAULT_METRIC_RADIUS)


def _camera_entry(cameras: list, location: str, source: str) -> dict:
    for cam in cameras:
        if cam.get("Location") == location:
            return cam
    found = ", ".join(str(c.get("Location")) for c in cameras) or "none"
    raise InputDataError(f"{source}: calibration has no camera '{location}' (has: {found})")


def _world_to_cam(cam: dict) -> tuple[np.ndarray, np.ndarray]:
    rt = cam["Rt"]
    r = np.asarray(rt["Rotation"], dtype=np.float64).reshape(3, 3)
    t = np.asarray(rt["Translation"], dtype=np.float64).reshape(3) * 1000.0
    return r, t


def depth_mode_for_size(width: int, height: int) -> str:
    """The depth mode that produces images of this size (WFOV unbinned for 1024x1024)."""
    for name, (_, _, (w, h)) in DEPTH_MODES.items():
        if (w, h) == (width, height):
            return name
    raise InputDataError(f"no Azure Kinect depth mode gives {width}x{height} images")


def color_mode_for_size(width: int, height: int) -> str:
    for name, (_, _, (w, h)) in COLOR_MODES.items():
        if (w, h) == (width, height):
            return name
    raise InputDataError(f"no Azure Kinect colour resolution gives {width}x{height} images")


def parse_calibration(text: str | bytes | dict, depth_mode: str, color_mode: str,
                      source: str = "calibration.json") -> KinectCalibration:
    """Parse the device's calibration JSON for the given depth mode and colour resolution.

    `color_mode` may carry a format prefix as in MKV tags ("MJPG_720P" -> "720P").
    """
    try:
        data = text if isinstance(text, dict) else json.loads(text)
        cameras = data["CalibrationInformation"]["Cameras"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InputDataError(f"{source}: not an Azure Kinect calibration ({exc})") from None
    depth_mode = depth_mode.upper()
    color_key = color_mode.upper().rsplit("_", 1)[-1]
    if depth_mode not in DEPTH_MODES:
        raise InputDataError(f"{source}: unknown depth mode '{depth_mode}' (known: {', '.join(DEPTH_MODES)})")
    if color_key not in COLOR_MODES:
        raise InputDataError(f"{source}: unknown colour resolution '{color_mode}' (known: {', '.join(COLOR_MODES)})")
    d_cam = _camera_entry(cameras, "CALIBRATION_CameraLocationD0", source)
    c_cam = _camera_entry(cameras, "CALIBRATION_CameraLocationPV0", source)
    try:
        models = []
        for cam in (d_cam, c_cam):
            intr = cam["Intrinsics"]
            if intr.get("ModelType") not in ("CALIBRATION_LensDistortionModelBrownConrady",
                                             "CALIBRATION_LensDistortionModelRational6KT"):
                raise InputDataError(f"{source}: unsupported lens model {intr.get('ModelType')!r}")
            params = [float(v) for v in intr["ModelParameters"]]
            if len(params) < 14:
                raise InputDataError(f"{source}: {cam['Location']} has {len(params)} lens parameters, need 14")
            models.append((params, float(cam.get("MetricRadius", 0.0)),
                           int(cam["SensorWidth"]), int(cam["SensorHeight"])))
        (dp, dr, dw, dh), (cp, cr, cw, ch) = models
        if (dw, dh) != (1024, 1024):
            raise InputDataError(f"{source}: depth sensor is {dw}x{dh}, expected 1024x1024")
        if cw * 9 // 16 == ch:  # legacy 16:9 calibration: convert to the 4:3 sensor (SDK does the same)
            cp = cp[:]
            cp[1] = (cp[1] * 2304 + 384) / 3072
            cp[3] = cp[3] * 2304 / 3072
        elif cw * 3 // 4 != ch:
            raise InputDataError(f"{source}: colour sensor {cw}x{ch} is neither 4:3 nor 16:9")
        depth = _mode_camera(dp, dr, DEPTH_MODES[depth_mode])
        color = _mode_camera(cp, cr, COLOR_MODES[color_key])
        rd, td = _world_to_cam(d_cam)
        rc, tc = _world_to_cam(c_cam)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputDataError(f"{source}: malformed calibration ({type(exc).__name__}: {exc})") from None
    # depth -> world -> colour: X_c = Rc (Rd^T (X_d - td)) + tc
    rotation = rc @ rd.T
    translation = tc - rotation @ td
    return KinectCalibration(depth=depth, color=color, rotation=rotation, translation=translation,
                             depth_mode=depth_mode, color_mode=color_key, raw=data)


def load_calibration(path: str | Path, depth_mode: str, color_mode: str) -> KinectCalibration:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise InputDataError(f"{p}: cannot read calibration ({exc.strerror})") from None
    return parse_calibration(text, depth_mode, color_mode, source=str(p))
