"""One frame of the synthetic face: the jaw's tear and the features drawn from the landmarks.

frame_maps() copies the identity's static base (face_model.base_maps), tears it
along the mouth line when the jaw opens, then draws lips, mouth opening and teeth, eyes (lids,
iris, pupil), brows and smile folds *from the 70 landmarks* into the height and colour maps,
so what the camera sees follows the landmarks exactly. Maps are planar (C, H, W) float32.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facesynth.capture.synthetic.face_model import (
    _BALL, _FADE_Y, _SHIFT, JAW_DROP_MM, NEUTRAL, TEXEL_MM, FaceParams, _gauss, _jaw_weight, base_maps,
    expression_landmarks, grid, to_texel,
)


# ---- one frame: jaw tear + features drawn from the landmarks ---------------------------
@dataclass(frozen=True)
class FrameMaps:
    height: np.ndarray      # (H, W) float32 S(x, y) mm
    grad_x: np.ndarray      # (H, W) float32 dS/dx
    grad_y: np.ndarray      # (H, W) float32 dS/dy
    spec: np.ndarray        # (H, W) float32 specular strength
    tex: np.ndarray         # (4, H, W) float32 planes: R, G, B albedo, head mask
    landmarks: np.ndarray   # (70, 3) float32 head-frame points on the surface (mm)


def _spline(pts: np.ndarray, closed: bool, per: int = 8) -> np.ndarray:
    """Uniform Catmull-Rom curve through the points (per samples per segment)."""
    p = np.asarray(pts, np.float32)
    n = len(p)
    if closed:
        idx = np.arange(n)
        p0, p1, p2, p3 = p[(idx - 1) % n], p, p[(idx + 1) % n], p[(idx + 2) % n]
    else:
        q = np.concatenate([p[:1], p, p[-1:]])
        p0, p1, p2, p3 = q[:-3], q[1:-2], q[2:-1], q[3:]
    t = np.linspace(0, 1, per, endpoint=False, dtype=np.float32)[None, :, None]
    a, b, c, d = (x[:, None, :] for x in (p0, p1, p2, p3))
    out = 0.5 * (2 * b + (c - a) * t + (2 * a - 5 * b + 4 * c - d) * t ** 2 + (3 * b - a - 3 * c + d) * t ** 3)
    out = out.reshape(-1, 2)
    return out if closed else np.concatenate([out, p[-1:]])


class _Crop:
    """A window of the frame maps around one feature, with its head-plane coordinates."""

    def __init__(self, maps: dict[str, np.ndarray], pts: np.ndarray, margin: tuple[float, float]):
        (x0, y0), (x1, y1) = pts.min(0) - margin, pts.max(0) + margin
        c0, r0 = (int(np.floor(v)) for v in to_texel(x0, y0))
        c1, r1 = (int(np.ceil(v)) + 1 for v in to_texel(x1, y1))
        h, w = maps["S"].shape
        c0, r0, c1, r1 = max(c0, 0), max(r0, 0), min(c1, w), min(r1, h)
        self.win = (slice(r0, r1), slice(c0, c1))
        self.origin = np.array([c0, r0], np.float32)
        self.shape = (r1 - r0, c1 - c0)
        xs, ys = grid()
        self.X, self.Y = np.meshgrid(xs[c0:c1], ys[r0:r1])
        self.maps = maps

    def __getitem__(self, name: str) -> np.ndarray:
        if name == "albedo":
            return self.maps["tex"][(slice(0, 3),) + self.win]
        return self.maps[name][self.win]   # a view: edits land in the frame maps

    def draw(self, curve_mm: np.ndarray, closed: bool, thickness_mm: float = 0.0) -> np.ndarray:
        """Anti-aliased coverage (0..1) of a filled polygon (thickness 0) or a polyline."""
        img = np.zeros(self.shape, np.uint8)
        tx, ty = to_texel(curve_mm[:, 0], curve_mm[:, 1])
        pts = np.round((np.stack([tx, ty], 1) - self.origin) * _BALL).astype(np.int32).reshape(-1, 1, 2)
        if thickness_mm <= 0:
            cv2.fillPoly(img, [pts], 255, cv2.LINE_AA, _SHIFT)
        else:
            cv2.polylines(img, [pts], closed, 255, max(1, int(round(thickness_mm / TEXEL_MM))), cv2.LINE_AA, _SHIFT)
        return img.astype(np.float32) / 255.0


def _blur(m: np.ndarray, sigma_mm: float) -> np.ndarray:
    return cv2.GaussianBlur(m, (0, 0), sigma_mm / TEXEL_MM)


def _mix(dst: np.ndarray, colour: np.ndarray, alpha: np.ndarray) -> None:
    """Blend planar colour (3,) or (3, h, w) into planar dst (3, h, w) with coverage alpha (h, w)."""
    colour = np.asarray(colour, np.float32)
    if colour.ndim == 1:
        colour = colour[:, None, None]
    dst *= 1.0 - alpha
    dst += colour * alpha


def _mouth(maps: dict, L: np.ndarray) -> None:
    c = _Crop(maps, L[48:68], (8.0, 8.0))
    m_out = c.draw(_spline(L[48:60], True), True)
    m_in = c.draw(_spline(L[60:68], True), True)
    upper = _spline(L[60:65], False)
    band = min(4.5, 0.4 * max(float(L[66, 1] - L[62, 1]), 0.0))   # barely any teeth while nearly closed
    teeth = c.draw(np.concatenate([upper, upper[::-1] + [0, band]]), True) * m_in
    lips = np.clip(m_out - m_in, 0, 1)
    stripes = 1.0 + 0.3 * (maps["strands"][c.win] - 1.0)
    _mix(c["albedo"], np.array([0.62, 0.30, 0.30], np.float32)[:, None, None] * stripes, lips)
    inner = (np.array([0.12, 0.04, 0.05], np.float32)[:, None, None] * (1 - teeth)
             + np.array([0.88, 0.86, 0.78], np.float32)[:, None, None] * teeth)
    _mix(c["albedo"], inner, m_in)
    c["S"][...] += -3.0 * _blur(m_out, 2.0) + (14.0 - 10.0 * teeth) * _blur(m_in, 0.8)
    c["spec"][...] = c["spec"] * (1 - m_out) + (0.35 * lips + (0.05 + 0.4 * teeth) * m_in)


def _eye(maps: dict, L: np.ndarray, contour: slice, pupil: int, iris_rgb: np.ndarray) -> None:
    pts = L[contour]
    c = _Crop(maps, pts, (6.0, 9.0))
    opening = c.draw(_spline(pts, True), True)
    px, py = L[pupil]
    rho = np.hypot(c.X - px, c.Y - py)
    iris = np.clip(5.6 - rho + 0.5, 0, 1)
    pupil_m = np.clip(2.2 - rho + 0.5, 0, 1)
    glint = np.clip(0.7 - np.hypot(c.X - px + 1.3, c.Y - py + 1.3) + 0.5, 0, 1)
    ball = np.broadcast_to(np.array([0.90, 0.86, 0.82], np.float32)[:, None, None], (3,) + c.shape).copy()
    _mix(ball, iris_rgb[:, None, None] * (0.6 + 0.6 * np.clip(rho / 5.6, 0, 1)), iris)
    _mix(ball, np.array([0.03, 0.03, 0.03], np.float32), pupil_m)
    _mix(ball, np.array([0.97, 0.97, 0.97], np.float32), glint)
    _mix(c["albedo"], ball, opening)
    ring = np.concatenate([pts, pts[:1]])
    upper, lower = ring[0:4], ring[3:7]
    _mix(c["albedo"], np.array([0.08, 0.06, 0.05], np.float32), 0.85 * c.draw(_spline(upper, False), False, 1.0))
    _mix(c["albedo"], np.array([0.30, 0.20, 0.17], np.float32), 0.35 * c.draw(_spline(lower, False), False, 0.5))
    crease = NEUTRAL[contour][[0, 1, 2, 3]] + [[0, -1.5], [0, -4.0], [0, -4.0], [0, -1.5]]
    c["albedo"][...] *= 1 - 0.25 * _blur(c.draw(_spline(crease, False), False, 0.6), 0.4)
    c["S"][...] += 1.8 * opening - 0.6 * iris * opening
    c["spec"][...] = c["spec"] * (1 - opening) + 0.9 * opening


def _brow(maps: dict, L: np.ndarray, idx: slice, inner_first: bool, hair_rgb: np.ndarray) -> None:
    pts = L[idx]
    c = _Crop(maps, pts, (5.0, 5.0))
    curve = _spline(pts, False)
    inner = pts[:3] if inner_first else pts[2:]
    m = np.maximum(c.draw(curve, False, 3.6), c.draw(_spline(inner, False), False, 5.0))
    m = _blur(m, 0.35)
    strands = maps["strands"][c.win]
    _mix(c["albedo"], hair_rgb[:, None, None] * 1.2 * strands, 0.85 * m)
    c["S"][...] -= 1.0 * m


def _smile_lines(maps: dict, L: np.ndarray, s: float) -> None:
    for sx, corner in ((-1, 48), (1, 54)):
        line = np.array([[16 * sx, 37], [(21 + 2 * s) * sx, 47], L[corner] + [2.5 * sx, 0]], np.float32)
        c = _Crop(maps, line, (3.0, 3.0))
        fold = _blur(c.draw(_spline(line, False), False, 1.0), 0.6)
        c["albedo"][...] *= 1 - (0.06 + 0.22 * s) * fold
        c["S"][...] += (0.3 + 1.0 * s) * fold
        if s > 0.01:  # the cheeks rise
            centre = np.array([[38.0 * sx, 26 - 4 * s]], np.float32)
            c = _Crop(maps, centre, (42.0, 36.0))
            c["S"][...] -= 4.0 * s * _gauss(c.X - centre[0, 0], c.Y - centre[0, 1], 14, 12)


def frame_maps(p: FaceParams, identity: int = 0) -> FrameMaps:
    """The head's height, normals and colour for one expression (head frame, no pose)."""
    base = base_maps(identity)
    L = expression_landmarks(p)
    drop = JAW_DROP_MM * float(np.clip(p.jaw_open, 0, 1))
    maps = {"S": base.height.copy(), "tex": base.tex.copy(), "spec": base.spec.copy(), "strands": base.strands}
    if drop >= 1e-3:  # backward map of the tear
        xs, ys = grid()
        r0, r1 = int(np.searchsorted(ys, -5.0)), int(np.searchsorted(ys, _FADE_Y[1])) + 1
        X, Y = np.meshgrid(xs, ys[r0:r1])
        src_r = to_texel(X, Y - drop * _jaw_weight(X, Y, drop))[1] - r0
        src_c = np.broadcast_to(np.arange(len(xs), dtype=np.float32), X.shape)
        for plane in (maps["S"], maps["spec"], *maps["tex"]):
            plane[r0:r1] = cv2.remap(plane[r0:r1], src_c, src_r, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    _mouth(maps, L)
    _eye(maps, L, slice(36, 42), 68, base.iris_rgb)
    _eye(maps, L, slice(42, 48), 69, base.iris_rgb)
    _brow(maps, L, slice(17, 22), False, base.hair_rgb)
    _brow(maps, L, slice(22, 27), True, base.hair_rgb)
    _smile_lines(maps, L, float(np.clip(p.smile, 0, 1)))
    S, tex = maps["S"], maps["tex"]
    S *= tex[3] > 0.5
    gx = cv2.Sobel(S, cv2.CV_32F, 1, 0, ksize=3, scale=1 / (8 * TEXEL_MM))
    gy = cv2.Sobel(S, cv2.CV_32F, 0, 1, ksize=3, scale=1 / (8 * TEXEL_MM))
    tx, ty = to_texel(L[:, 0], L[:, 1])
    z = cv2.remap(S, tx[None, :], ty[None, :], cv2.INTER_LINEAR)[0]
    return FrameMaps(S, gx, gy, maps["spec"], tex, np.column_stack([L, z]).astype(np.float32))
